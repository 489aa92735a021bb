"""LSD accuracy against the latents drawn for the basis, on the shipped networks: the curve behind `--per-set auto`.

    python benchmarks/bench_per_set.py [--per-set 100 250 500 1000 2000 5000] [--tolerance 0.1]
        [--seeds 0 1 2] [--trials 5] [--dataset mnist] [--networks DIR] [--precision auto] [--json]

For each V (and for --per-set auto at each --tolerance): the basis as `reproduce` builds it (set 1 encoded, the rest
sampled, symmetric orthogonalisation) with each basis seed, then LSD top-1 and top-4 of the test set over --trials
stochastic encodings (`reproduce`'s classification stage, encoding seed 0 for every basis); per V the mean over the
basis seeds and its standard error (sample std / sqrt(seeds)), the latents drawn (every round's, for auto), the
seconds of the basis, each set's relative standard error, and for auto the rounds (V, share of labels changed).
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
from latentspectra.config import AUTO, TOLERANCE, ReproduceConfig
from latentspectra.data import images_to_tensor, load_dataset
from latentspectra.evaluation import summarise
from latentspectra.experiments.networks import load_networks
from latentspectra.experiments.reproduce import classification_study, study_basis


def mean_and_error(values: list[float]) -> dict[str, float]:
    """Mean and standard error of the mean (`evaluation.summarise`'s sample std / sqrt(n); 0 for one value)."""
    found = summarise(values)
    return {"mean": float(found["mean"]), "standard_error": float(found["std"]) / math.sqrt(len(values))}


def point(networks, dataset, config: ReproduceConfig, seeds: list[int]) -> dict:
    """The basis at ``config.per_set`` with each basis seed, and LSD top-1 / top-4 of the test set."""
    train = images_to_tensor(dataset.train.images).to(networks.compute.device)
    test = images_to_tensor(dataset.test.images).to(networks.compute.device)
    labels = torch.from_numpy(dataset.test.labels).to(networks.compute.device)
    top1, top4, draws, seconds, rounds, errors = [], [], [], [], [], []
    for seed in seeds:
        began = time.perf_counter()
        built = study_basis(networks, train, replace(config, seed=seed), progress=False)
        seconds.append(time.perf_counter() - began)
        found = classification_study(networks, {}, built.basis, test, labels, replace(config, seed=0), progress=False)
        top1.append(found.lsd_top1["mean"])
        top4.append(found.topn_cumulative[3])
        draws.append(built.stats["samples_drawn"])
        rounds.append(built.stats.get("rounds"))
        errors.append(built.stats["relative_standard_error_per_set"])
    return {
        "per_set": config.per_set,
        "tolerance": config.tolerance if config.per_set == AUTO else None,
        "top1": mean_and_error(top1),
        "top4": mean_and_error(top4),
        "draws": mean_and_error([float(count) for count in draws]),
        "seconds": mean_and_error(seconds),
        "rounds": rounds,
        "relative_standard_error_per_set": errors,
        "per_seed": {"top1": top1, "top4": top4, "draws": draws},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", nargs="+", type=int, default=[100, 250, 500, 1000, 2000, 5000])
    parser.add_argument("--tolerance", nargs="*", type=float, default=[TOLERANCE])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--networks", default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    compute = Compute.select("cpu", args.precision)
    networks = load_networks(args.networks, compute, dataset=args.dataset)
    dataset = load_dataset(args.dataset)
    base = ReproduceConfig(dataset=args.dataset, trials=args.trials)
    configs = [replace(base, per_set=value) for value in args.per_set]
    configs += [replace(base, per_set=AUTO, tolerance=value) for value in args.tolerance]
    points = []
    for config in configs:
        points.append(point(networks, dataset, config, args.seeds))
        if not args.json:
            found = points[-1]
            rule = "" if found["tolerance"] is None else f" (tolerance {found['tolerance']})"
            print(
                f"V = {found['per_set']}{rule}: "
                f"top-1 {found['top1']['mean']:.4f} +- {found['top1']['standard_error']:.4f}, "
                f"top-4 {found['top4']['mean']:.4f} +- {found['top4']['standard_error']:.4f}, "
                f"{found['draws']['mean']:,.0f} draws, {found['seconds']['mean']:.1f} s",
                flush=True,
            )
    record = {"device": describe_device(compute.device), "precision": compute.precision, "points": points}
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(record["device"], compute.precision)


if __name__ == "__main__":
    main()
