"""What the sprites dataset costs on this machine: dSprites' whole product (64 x 64, 737,280 images) against the
dataset ``sprites`` (32 x 32, 103,680 images).

    python benchmarks/bench_sprites.py [--steps 5] [--rounds 3] [--json]

For each grid, in a process of its own (so that its peak memory is its own): the seconds `render_sprites`
takes, the bytes of its uint8 pixels and of the float32 tensors training holds, and the process' peak resident
memory; for ``sprites`` also the seconds and bytes of its cache file (written to and read back from a temporary
directory). Then the images/s of one float32 training step of each network (default configs, batches of a
small grid of the same image size; bench_speed.py's timing; the best of interleaved rounds) and what `train
all`'s default epochs would take on each grid's training split at those rates, beside the same for MNIST's
60,000 training images of 28 x 28 (rates measured on 28 x 28 sprites in the same rounds): absolute speeds
drift on shared machines, the ratios hold better.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latentspectra.data.sprites import DSPRITES_GRID, SPRITES, SpritesGrid, load_sprites, render_sprites

GRIDS = {"dsprites": DSPRITES_GRID, "sprites": SPRITES}


def peak_memory_gib() -> float:
    """This process' peak resident memory: VmHWM (Linux; getrusage's maximum would count the parent's, which
    an exec'd child inherits), else getrusage's."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def render_cost(name: str) -> dict:
    """Render seconds, bytes and peak memory of grid ``name`` (run in a fresh process); for ``sprites`` also
    its cache file's write and read seconds and size."""
    grid = GRIDS[name]
    began = time.perf_counter()
    dataset = render_sprites(grid)
    seconds = time.perf_counter() - began
    pixels = dataset.train.images.nbytes + dataset.test.images.nbytes
    cost = {
        "grid": vars(grid),
        "images": grid.count,
        "train": len(dataset.train),
        "render_s": seconds,
        "uint8_gib": pixels / 2**30,
        "float32_train_gib": dataset.train.images.size * 4 / 2**30,
        "peak_rss_gib": peak_memory_gib(),
    }
    if name == "sprites":
        del dataset
        with tempfile.TemporaryDirectory() as directory:
            began = time.perf_counter()
            load_sprites(directory, grid)  # renders and writes
            cost["render_and_cache_s"] = time.perf_counter() - began
            began = time.perf_counter()
            load_sprites(directory, grid)  # reads and checks
            cost["cached_read_s"] = time.perf_counter() - began
            cost["cache_file_mib"] = (Path(directory) / grid.file_name).stat().st_size / 2**20
    return cost


def training_rates(size: int, steps: int) -> dict[str, float]:
    """Images/s of one float32 training step of each network on ``size`` x ``size`` sprites."""
    from bench_speed import images_per_second  # beside this script
    from latentspectra.compute import Compute
    from latentspectra.config import TrainConfig
    from latentspectra.training.classifier import ClassifierJob
    from latentspectra.training.encoder import EncoderJob
    from latentspectra.training.gan import GANJob

    dataset = render_sprites(SpritesGrid(size=size, orientations=8, positions=8))
    config, compute = TrainConfig(), Compute(precision="float32")
    classifier = ClassifierJob(dataset, config.classifier, 0, compute)
    gan = GANJob(dataset, config.gan, 0, compute=compute)
    rates = {
        "classifier": images_per_second(classifier, config.classifier.batch_size, steps),
        "gan": images_per_second(gan, config.gan.batch_size, steps),
    }
    encoder = EncoderJob(dataset, config.encoder, 0, gan.generator, classifier.model, compute=compute)
    rates["encoder"] = images_per_second(encoder, config.encoder.batch_size, steps)
    return rates


MNIST_TRAIN_IMAGES = 60_000


def render_cost_in_a_process(name: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--render", name], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def best_training_rates(sizes: list[int], steps: int, rounds: int) -> dict[int, dict[str, float]]:
    """Per image size, each network's best images/s over ``rounds`` rounds that visit the sizes in turn (on a
    shared machine the best of interleaved rounds is the least disturbed)."""
    best: dict[int, dict[str, float]] = {}
    for _ in range(rounds):
        for size in sizes:
            for network, rate in training_rates(size, steps).items():
                best.setdefault(size, {})[network] = max(rate, best.get(size, {}).get(network, 0.0))
    return best


def train_all_hours(rates: dict[str, float], train_images: int) -> dict[str, float]:
    """Hours of each network's default epochs over ``train_images`` at ``rates``."""
    from latentspectra.config import TrainConfig

    config = TrainConfig()
    epochs = {"classifier": config.classifier.epochs, "gan": config.gan.epochs, "encoder": config.encoder.epochs}
    return {name: epochs[name] * train_images / rates[name] / 3600 for name in epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per network and image size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of training steps; best kept")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--render", choices=sorted(GRIDS), help=argparse.SUPPRESS)  # the child process' part
    args = parser.parse_args()
    if args.render:
        print(json.dumps(render_cost(args.render)))
        return
    import torch

    from latentspectra.compute import describe_device

    results: dict = {"cpu": describe_device(torch.device("cpu")), "threads": torch.get_num_threads()}
    costs = {name: render_cost_in_a_process(name) for name in GRIDS}
    rates = best_training_rates([28, *(grid.size for grid in GRIDS.values())], args.steps, args.rounds)
    mnist_hours = sum(train_all_hours(rates[28], MNIST_TRAIN_IMAGES).values())
    results["mnist_28px"] = {"train_images_per_s": rates[28], "train_all_hours_total": mnist_hours}
    for name, grid in GRIDS.items():
        hours = train_all_hours(rates[grid.size], costs[name]["train"])
        results[name] = {
            **costs[name],
            "train_images_per_s": rates[grid.size],
            "train_all_hours": hours,
            "train_all_hours_total": sum(hours.values()),
            "train_all_vs_mnist": sum(hours.values()) / mnist_hours,
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    mnist = results["mnist_28px"]
    print(f"cpu: {results['cpu']}, {results['threads']} threads")
    print(f"mnist (28x28, 60,000 training images): train all {mnist['train_all_hours_total']:.2f} h")
    for name in GRIDS:
        row = results[name]
        print(
            f"{name}: {row['images']} images of {row['grid']['size']} px, render {row['render_s']:.1f} s,"
            f" {row['uint8_gib']:.2f} GiB uint8 (peak RSS {row['peak_rss_gib']:.2f} GiB), training split as float32"
            f" {row['float32_train_gib']:.2f} GiB; train all {row['train_all_hours_total']:.1f} h"
            f" ({row['train_all_vs_mnist']:.1f} x MNIST's)"
            f" ({', '.join(f'{k} {v:.0f} img/s' for k, v in row['train_images_per_s'].items())})"
        )
        if "cache_file_mib" in row:
            print(
                f"  cache: render+write {row['render_and_cache_s']:.1f} s, read+check {row['cached_read_s']:.1f} s,"
                f" file {row['cache_file_mib']:.1f} MiB"
            )


if __name__ == "__main__":
    main()
