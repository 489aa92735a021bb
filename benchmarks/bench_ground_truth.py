"""What compare's ground-truth track costs on ``sprites`` (docs/compare.md, "The ground-truth track").

    python benchmarks/bench_ground_truth.py [--images 1000] [--networks DIR] [--json]

The factor regressor at compare's settings (`config.FactorRegressorConfig`), trained into a temporary cache
directory (never the user's): its training seconds, parameters and accuracy on the test split, and the seconds
a second call takes to read it back. Then one method's ground-truth track at compare's defaults (K = 10 random
orthonormal directions, the encoder's means of the first ``--images`` test images, 200 edited latents, t = 3),
split into its parts: the edits (G and the regressor on 2,200 images), MIG, DCI and SAP. The networks:
``--networks`` (a models directory for sprites), else untrained package networks of the sprites shape (M = 100):
the metrics' cost depends on the number of images, codes and factor values, not on how good the networks are.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from latentspectra.config import CompareConfig
from latentspectra.data import images_to_tensor, load_dataset
from latentspectra.disentanglement import GroundTruthSettings, dci, direction_coordinates, mig, sap
from latentspectra.experiments.compare import factor_changes, ground_truth_inputs
from latentspectra.experiments.image_latents import latents_of_images
from latentspectra.experiments.networks import load_networks
from latentspectra.methods.factor_regressor import cached_factor_regressor
from latentspectra.models import Classifier, GaussianEncoder, Generator
from latentspectra.models.files import save_model

SHAPE = (1, 32, 32)


def untrained_networks(directory: Path) -> Path:
    """A models directory of untrained package networks of the sprites shape (M = 100, 3 labels)."""
    for name, model in (
        ("generator", Generator(100, 32, 512, SHAPE)),
        ("classifier", Classifier(3, 16, 128, SHAPE)),
        ("encoder", GaussianEncoder(100, 32, 256, SHAPE)),
    ):
        save_model(directory, name, model.eval(), {"seed": 0})
    return directory


def timed(function) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="test images scored (--ground-truth-images)")
    parser.add_argument("--networks", default=None, help="a models directory for sprites (default: untrained)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset, config = load_dataset("sprites"), CompareConfig(ground_truth_images=args.images)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["XDG_CACHE_HOME"] = scratch  # the regressor's cache: never the user's
        began = time.perf_counter()
        reader = cached_factor_regressor(dataset, config.factor_regressor)
        trained = time.perf_counter() - began
        read_back = timed(lambda: cached_factor_regressor(dataset, config.factor_regressor))
        networks = load_networks(args.networks or untrained_networks(Path(scratch) / "models"))
        images = images_to_tensor(dataset.test.images[: args.images])
        latents = latents_of_images(images, networks, "encoder").latents
        truth = ground_truth_inputs(dataset, config, latents, reader)
        assert truth is not None  # sprites has factors
        rng = torch.Generator().manual_seed(0)
        directions = torch.linalg.qr(torch.randn(networks.latent_dim, 10, generator=rng)).Q.T
        codes = direction_coordinates(directions.double().numpy(), truth.latents.double().numpy())
        settings = GroundTruthSettings()
        seconds = {
            "edits": timed(lambda: factor_changes(networks, reader, directions, truth.latents[:200], config.shift)),
            "mig": timed(lambda: mig(codes, truth.factors, settings)),
            "dci": timed(lambda: dci(codes, truth.factors, settings)),
            "sap": timed(lambda: sap(codes, truth.factors, settings)),
        }
    found = {
        "images": len(truth.latents),
        "regressor": {
            "trained_seconds": trained,
            "read_back_seconds": read_back,
            "parameters": reader.record["parameters"],
            "test_accuracy": reader.record["test_accuracy"],
        },
        "seconds_per_method_and_seed": {**seconds, "total": sum(seconds.values())},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(found, indent=2))
        return
    parameters = found["regressor"]["parameters"]
    print(f"factor regressor: trained in {trained:.1f} s, read back in {read_back:.2f} s, {parameters:,} parameters")
    for name, scores in reader.record["test_accuracy"]["factors"].items():
        accuracy = "n/a" if scores["accuracy"] is None else f"{scores['accuracy']:.3f}"
        print(f"  {name}: R^2 {scores['r2']:.3f}, accuracy {accuracy}")
    print(
        f"per method and seed, {found['images']} images: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in found["seconds_per_method_and_seed"].items())
    )


if __name__ == "__main__":
    main()
