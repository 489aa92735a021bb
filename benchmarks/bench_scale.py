"""Scaling of a sharded `latentspectra basis`: 1 process of 1 thread against N processes of 1 thread each, in one run.

Runs `latentspectra basis` on the shipped networks (float32, CPU) alone and under torchrun with N ranks (gloo,
127.0.0.1), alternately, ``--repeats`` times each, and prints the latent-set throughput of both (latents drawn
in block order per second of the latent-set stage, as the basis record reports it; process start-up excluded),
their ratio, the wall clock of each run, and the largest difference between the two bases (docs/scale.md).
The target on a 2-core machine: 2 ranks at least 1.7x the throughput of 1.

    python benchmarks/bench_scale.py                      # V = 5,000, 2 ranks, 1 repeat
    python benchmarks/bench_scale.py --per-set 300 --repeats 1   # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def basis_run(ranks: int, per_set: int, out: Path) -> tuple[dict, float]:
    """(the basis record, wall-clock seconds) of one `latentspectra basis` with ``ranks`` processes of one thread."""
    command = [
        "-m",
        "latentspectra",
        "basis",
        "--per-set",
        str(per_set),
        "--device",
        "cpu",
        "--precision",
        "float32",
        "--quiet",
        "--json",
        "--out",
        str(out),
    ]
    if ranks > 1:
        command = [
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(ranks),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{free_port()}",
            *command,
        ]
    environment = {key: value for key, value in os.environ.items() if key not in LAUNCH_VARIABLES}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *command],
        env={**environment, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"bench_scale: {ranks} rank(s) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=5000, help="V of the basis (default: the paper's 5,000)")
    parser.add_argument("--ranks", type=int, default=2, help="processes of the sharded run (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, alternating (default 1)")
    arguments = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], arguments.ranks: []}
    walls: dict[int, list[float]] = {1: [], arguments.ranks: []}
    with tempfile.TemporaryDirectory() as directory:
        outputs = {ranks: Path(directory) / f"basis-{ranks}.safetensors" for ranks in rates}
        for _ in range(arguments.repeats):
            for ranks in rates:
                record, wall = basis_run(ranks, arguments.per_set, outputs[ranks])
                rates[ranks].append(record["samples_per_second"])
                walls[ranks].append(wall)
                drawn = record["samples_drawn"]
        one, many = (load_file(outputs[ranks])["vectors"] for ranks in rates)
        difference = (one - many).abs().max().item()
    single, sharded = statistics.median(rates[1]), statistics.median(rates[arguments.ranks])
    print(
        f"latentspectra basis, V = {arguments.per_set} ({drawn:,} latents drawn), shipped networks, float32, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    print(f"1 process x 1 thread:  {single:,.0f} samples/s (wall {statistics.median(walls[1]):.1f} s)")
    print(
        f"{arguments.ranks} processes x 1 thread: {sharded:,.0f} samples/s "
        f"(wall {statistics.median(walls[arguments.ranks]):.1f} s)"
    )
    print(f"ratio: {sharded / single:.2f}x (target on 2 cores: >= 1.7x); largest basis difference {difference:.1e}")


if __name__ == "__main__":
    main()
