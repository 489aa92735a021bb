"""GAN inversion on the shipped networks (docs/inversion.md): how well the encoder, optimisation from the prior and
the hybrid reconstruct real images against the descent's steps, and LSD classification through their latents.

    python benchmarks/bench_inversion.py reconstruction [--images 200] [--steps 25 50 100 200 400]
        [--methods optimize hybrid] [--dataset mnist] [--networks DIR] [--precision auto] [--json]
    python benchmarks/bench_inversion.py classification [--images 1000] [--steps 50] [--per-set 500]
        [--trials 5] [--methods optimize hybrid] [--dataset mnist] [--networks DIR] [--precision auto] [--json]

reconstruction: `invert_study` (what `latentspectra invert --count N --steps S --start prior|encoder` measures) on
the first --images test images at each number of steps: pixel MSE, feature distance and label kept of G(z) against
the image, for the encoder's means and each method, with images per second of the descent and its mean Adam steps
per image (all restarts).

classification: the LSD basis as `reproduce` builds it (V = --per-set, seed 0, set 1 encoded, symmetric), then LSD
top-1 (Eq. 10) of the first --images test images through: the encoder's means; --trials stochastic encodings
(`reproduce`'s latents, the mean over the trials); each method's latents at --steps steps. Each with its standard
error over the images (for the trials, of the per-image mean), the accuracy of C(G(z)) (encode-decode), and for the
methods the paired difference from the encoder's means with its standard error.

single: each of the first --images test images inverted alone on one thread, as `explore` inverts a test image,
a drawing or an upload (--steps, default 200): the seconds per image of each method.

    python benchmarks/bench_inversion.py single [--images 3] [--steps 200] [--methods optimize hybrid]

Prints the CPU (`lscpu`'s model name, torch's capability) and the precision beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace

import torch

from latentspectra.compute import Compute, describe_device
from latentspectra.config import SEEDS, InversionSettings, InvertConfig, ReproduceConfig, derived_seed
from latentspectra.data import images_to_tensor, load_dataset
from latentspectra.experiments.common import predict
from latentspectra.experiments.image_latents import latents_of_images
from latentspectra.experiments.invert import invert_study
from latentspectra.experiments.networks import load_networks
from latentspectra.experiments.reproduce import study_basis, trial_latents
from latentspectra.threads import single_thread

STARTS = {"optimize": "prior", "hybrid": "encoder"}  # each method as `invert --start` names it


def mean_and_error(values: torch.Tensor) -> dict[str, float]:
    """The mean of per-image ``values`` and its standard error (sample std / sqrt(n))."""
    values = values.double()
    return {"mean": values.mean().item(), "standard_error": values.std().item() / math.sqrt(len(values))}


def reconstruction(networks, dataset, arguments) -> dict:
    """Each method's reconstruction measures and speed at each number of steps, and the encoder's."""
    base = InvertConfig(count=arguments.images, device="cpu", precision=networks.compute.precision)
    rows: dict = {}
    for method in arguments.methods:
        for steps in arguments.steps:
            began = time.perf_counter()
            found = invert_study(networks, dataset, replace(base, steps=steps, start=STARTS[method]), progress=False)
            record = found.record("")
            rows.setdefault("encoder", found.reconstruction.get("encoder"))
            rows[f"{method} {steps}"] = {
                **found.reconstruction[method],
                "images_per_second": record["images_per_second"],
                "steps_per_image": record["inversion"]["optimisation"]["steps_per_image"],
                "reached": record["inversion"]["optimisation"]["reached"],
                "seconds": time.perf_counter() - began,
            }
            print(f"{method} {steps}: {json.dumps(rows[f'{method} {steps}'])}", flush=True)
    return rows


def classification(networks, dataset, arguments) -> dict:
    """LSD top-1 of the first test images through the encoder's means, stochastic encodings and each method."""
    device = networks.compute.device
    config = ReproduceConfig(per_set=arguments.per_set, trials=arguments.trials, device="cpu")
    began = time.perf_counter()
    train = images_to_tensor(dataset.train.images).to(device)
    basis = study_basis(networks, train, config, progress=False).basis
    basis_seconds = time.perf_counter() - began
    images = images_to_tensor(dataset.test.images[: arguments.images]).to(device)
    labels = torch.from_numpy(dataset.test.labels[: arguments.images]).long().to(device)

    def hits(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z.to(device)
        return (basis.label_ranks(z, labels) == 1).double(), (predict(networks, z) == labels).double()

    means = latents_of_images(images, networks, "encoder").latents
    lsd_means, kept_means = hits(means)
    trials = [hits(z) for z in trial_latents(networks, images, config, None)]
    rows = {
        "encoder means": {"lsd_top1": mean_and_error(lsd_means), "encode_decode": mean_and_error(kept_means)},
        f"encoder, {arguments.trials} stochastic encodings": {
            "lsd_top1": mean_and_error(torch.stack([lsd for lsd, _ in trials]).mean(0)),
            "encode_decode": mean_and_error(torch.stack([kept for _, kept in trials]).mean(0)),
        },
    }
    for method in arguments.methods:
        began = time.perf_counter()
        found = latents_of_images(
            images,
            networks,
            method,
            InversionSettings(steps=arguments.steps),
            seed=derived_seed(0, SEEDS.inversion),
        )
        seconds = time.perf_counter() - began
        lsd, kept = hits(found.latents)
        rows[f"{method} {arguments.steps}"] = {
            "lsd_top1": mean_and_error(lsd),
            "encode_decode": mean_and_error(kept),
            "lsd_top1_minus_encoder_means": mean_and_error(lsd - lsd_means),
            "images_per_second": len(images) / seconds,
        }
        print(f"{method}: {json.dumps(rows[f'{method} {arguments.steps}'])}", flush=True)
    return {"per_set": arguments.per_set, "basis_seconds": basis_seconds, "images": len(images), "rows": rows}


def single(networks, dataset, arguments) -> dict:
    """The seconds each method takes for one image at a time, on one thread."""
    images = images_to_tensor(dataset.test.images[: arguments.images])
    rows = {}
    with single_thread():
        for method in arguments.methods:
            seconds = []
            for index in range(len(images)):
                began = time.perf_counter()
                latents_of_images(images[index : index + 1], networks, method, InversionSettings(steps=arguments.steps))
                seconds.append(time.perf_counter() - began)
            rows[f"{method} {arguments.steps}"] = {"seconds_per_image": seconds}
            print(f"{method}: {json.dumps(rows[f'{method} {arguments.steps}'])}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=("reconstruction", "classification", "single"))
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", choices=tuple(STARTS), default=list(STARTS))
    parser.add_argument("--per-set", type=int, default=500)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--networks", default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    if arguments.part == "reconstruction":
        arguments.images = arguments.images or 200
        arguments.steps = arguments.steps or [25, 50, 100, 200, 400]
    elif arguments.part == "classification":
        arguments.images = arguments.images or 1000
        arguments.steps = (arguments.steps or [50])[0]
    else:
        arguments.images = arguments.images or 3
        arguments.steps = (arguments.steps or [200])[0]
    compute = Compute.select("cpu", arguments.precision)
    networks = load_networks(arguments.networks, compute, dataset=arguments.dataset)
    dataset = load_dataset(arguments.dataset)
    print(f"device: {describe_device(compute.device)}; precision {compute.precision}", flush=True)
    measure = {"reconstruction": reconstruction, "classification": classification, "single": single}[arguments.part]
    result = {"device": describe_device(compute.device), "precision": compute.precision, **arguments.__dict__}
    result["result"] = measure(networks, dataset, arguments)
    print(json.dumps(result, indent=2) if arguments.json else json.dumps(result["result"], indent=1))


if __name__ == "__main__":
    main()
