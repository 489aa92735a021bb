"""The budgets `latentspectra compare` needs on the shipped MNIST networks, measured: how many sampled latents make
InterFaceGAN's normals the same for two seeds, and how many steps make the learned directions' reconstructor
accuracy converge.

    python benchmarks/bench_compare_budgets.py [--samples 5000 20000 50000 100000] [--steps 16000]
        [--batch-size 64] [--learning-rate 3e-3] [--step-parts 100] [--json]

InterFaceGAN: for each sample count, the method as compare fits it (one normal per label, scored by C(G(z)) on z ~
N(0, I)) with seeds 0 and 1; per label the |cos| between the two normals; the minimum and median over the labels,
and the fit's seconds. Learned directions: one fit with --steps steps (compare's default budget: batch 64, rate 3e-3,
K = 10, seed 0, all the steps; --batch-size and --learning-rate try others) whose `convergence_` curve is R's
held-out accuracy at each halving of the steps down to 125 (`checkpoint_steps`); the gain of each doubling.
--step-parts N: what one training step of the learned directions costs, in milliseconds over N repetitions (after
10 untimed), at --batch-size through the float32 generator compare trains them through: G's pass without gradients
(G(z)), G's pass with gradients to z (G(z + eps a_k)), R's pass on the pair with its gradients and those of the
moved image, and a whole `training_step` (those three, the loss, Adam and the draws).
Prints the CPU (`lscpu`'s model name, torch's capability) and the precision beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from latentspectra.compute import Compute, describe_device
from latentspectra.config import LEARNED_BUDGETS
from latentspectra.experiments.compare import sampled_scores
from latentspectra.experiments.networks import load_networks
from latentspectra.methods import get
from latentspectra.methods.learned import direction_rows, draw_shifts, frozen, seeded_reconstructor, training_step
from latentspectra.models.files import shipped_models_dir


def interfacegan_stability(networks, samples: int) -> dict:
    """Two seeds' normals at ``samples`` sampled latents: per-label |cos|, its minimum and median, seconds."""
    normals, began = [], time.perf_counter()
    for seed in (0, 1):
        method = get("interfacegan", n_samples=samples, latent_dim=networks.latent_dim, seed=seed)
        method.fit(latents=None, scores=sampled_scores(method, networks))
        normals.append(method.directions_.double())
    cosines = (normals[0] * normals[1]).sum(1).abs()
    return {
        "samples": samples,
        "cos": cosines.tolist(),
        "min_cos": cosines.min().item(),
        "median_cos": cosines.median().item(),
        "seconds_two_fits": time.perf_counter() - began,
    }


def learned_convergence(networks, steps: int, batch_size: int, learning_rate: float) -> dict:
    """One learned-directions fit of ``steps`` steps (K = 10, compare's default budget at ``batch_size`` and
    ``learning_rate``, without its stopping tolerance, so that every point of the curve is trained): its
    convergence curve."""
    params = {
        **LEARNED_BUDGETS["default"],
        "steps": steps,
        "tolerance": None,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
    }
    began = time.perf_counter()
    method = get("learned", n_directions=10, latent_dim=networks.latent_dim, **params).fit(generator=networks.generator)
    curve = method.convergence_
    gains = [b - a for a, b in zip(curve["reconstructor_accuracy"], curve["reconstructor_accuracy"][1:])]
    return {**curve, "doubling_gains": gains, "seconds": time.perf_counter() - began}


def milliseconds(step: Callable[[], object], repeats: int) -> float:
    """The mean milliseconds of ``step()`` over ``repeats`` calls, after 10 untimed ones."""
    for _ in range(10):
        step()
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - began) / repeats * 1e3


def step_parts(batch_size: int, learning_rate: float, repeats: int) -> dict:
    """The milliseconds of one learned-directions training step and of its parts (module docstring), K = 10, on the
    shipped generator as compare trains through it (float32, exact)."""
    networks = load_networks(shipped_models_dir("mnist"), Compute.select("cpu", "float32"), exact=True)
    generator, dim, rng = networks.generator, networks.latent_dim, torch.Generator().manual_seed(0)
    method = get("learned", n_directions=10, latent_dim=dim, **LEARNED_BUDGETS["default"])  # its shifts, deformator
    count = method.n_directions

    def draw():
        return draw_shifts(rng, batch_size, dim, count, method.min_shift, method.max_shift, torch.device("cpu"))

    free = torch.randn(dim, count, generator=rng).requires_grad_()
    batch = draw()
    with torch.enable_grad(), frozen(generator):
        reconstructor = seeded_reconstructor(generator, batch, count, method.seed).train()
        optimizer = torch.optim.Adam([free, *reconstructor.parameters()], lr=learning_rate, foreach=True)
        with torch.no_grad():
            images = generator(batch.z)
        moved, moved_images = batch.z.clone().requires_grad_(), images.clone().requires_grad_()

        def reconstructor_pass() -> None:
            logits, shift = reconstructor(images, moved_images)
            (logits.sum() + shift.sum()).backward()

        parts = {
            "G(z) without gradients": milliseconds(lambda: generator(batch.z).detach(), repeats),
            "G(z + eps a_k) with gradients to z": milliseconds(lambda: generator(moved).sum().backward(), repeats),
            "R on the pair, with its gradients and the moved image's": milliseconds(reconstructor_pass, repeats),
            "training_step": milliseconds(
                lambda: training_step(
                    generator, reconstructor, direction_rows(free, method.deformator, count), optimizer, draw()
                ),
                repeats,
            ),
        }
    return {"batch_size": batch_size, "threads": torch.get_num_threads(), "milliseconds": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="*", default=[5000, 20000, 50000, 100000])
    parser.add_argument("--steps", type=int, default=16000, help="learned directions' budget (0: skip)")
    default = LEARNED_BUDGETS["default"]
    parser.add_argument("--batch-size", type=int, default=default["batch_size"], help="learned directions' batch")
    parser.add_argument("--learning-rate", type=float, default=default["learning_rate"], help="learned directions'")
    parser.add_argument("--step-parts", type=int, default=0, help="repetitions of the step timing (0: skip)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    compute = Compute.select("cpu", args.precision)
    networks = load_networks(shipped_models_dir("mnist"), compute)
    found = {
        "cpu": describe_device(compute.device),
        "precision": compute.precision,
        "interfacegan": [interfacegan_stability(networks, samples) for samples in args.samples],
    }
    if args.steps:
        found["learned"] = {
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            **learned_convergence(networks, args.steps, args.batch_size, args.learning_rate),
        }
    if args.step_parts:
        found["step_parts"] = step_parts(args.batch_size, args.learning_rate, args.step_parts)
    if args.json:
        print(json.dumps(found, indent=2))
        return
    print(f"{found['cpu']}, {found['precision']}")
    for row in found["interfacegan"]:
        print(
            f"InterFaceGAN n_samples {row['samples']:>7}: |cos| of two seeds' normals min {row['min_cos']:.3f}, "
            f"median {row['median_cos']:.3f} ({row['seconds_two_fits']:.1f} s for both)"
        )
    if "learned" in found:
        curve = found["learned"]
        for steps, accuracy in zip(curve["steps"], curve["reconstructor_accuracy"]):
            print(f"learned, {steps:>6} steps: reconstructor accuracy {accuracy:.3f}")
        print(f"learned (batch {curve['batch_size']}, rate {curve['learning_rate']:g}): {curve['seconds']:.0f} s")
    if "step_parts" in found:
        parts = found["step_parts"]
        for part, spent in parts["milliseconds"].items():
            print(f"learned step, batch {parts['batch_size']}, {parts['threads']} threads: {part} {spent:.1f} ms")


if __name__ == "__main__":
    with torch.inference_mode(False):
        main()
