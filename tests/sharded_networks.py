"""Tiny networks for the sharded-run tests (tests/test_distributed.py), named by ``--networks
sharded_networks:build`` in subprocesses (PYTHONPATH holds tests/): M = 12 latents (3 sets per label),
4 labels, 4 x 4 grey images; ``dying`` is the same networks with a classifier that kills its own process
(SIGKILL) on rank 1 at its third call, a rank lost in the middle of a run; ``no_encoder`` the generator and
classifier alone, whose commands invert real images (--inversion). ``train_config`` is a tiny
`train all` (the shipped architectures, narrow, one epoch); ``python -m sharded_networks COMMAND ...`` runs one
rank of a library-level check (`main`, `train`, `evaluate`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentspectra.config import BasisConfig, ClassifierConfig, EncoderConfig, GANConfig, TrainConfig, VAEConfig

LATENT, LABELS, SIDE = 12, 4, 4


class _Encoder(nn.Module):
    """Images -> (mean, log-variance 0): encodings spread over every label."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, LATENT))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean(images)
        return mean, torch.zeros_like(mean)


def networks() -> tuple[nn.Module, nn.Module, nn.Module]:
    """Generator, classifier and encoder, seeded: the same weights in every process."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(LATENT, SIDE * SIDE), nn.Tanh(), nn.Unflatten(1, (1, SIDE, SIDE)))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, LABELS))
    return generator, classifier, _Encoder()


def build() -> dict:
    generator, classifier, encoder = networks()
    return {"generator": generator, "classifier": classifier, "encoder": encoder, "latent_dim": LATENT}


def no_encoder() -> dict:
    generator, classifier, _ = networks()
    return {"generator": generator, "classifier": classifier, "latent_dim": LATENT}


class _DyingClassifier(nn.Module):
    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier, self.calls = classifier, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if os.environ.get("RANK") == "1" and self.calls == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.classifier(images)


def dying() -> dict:
    return {**build(), "classifier": _DyingClassifier(build()["classifier"])}


def write_dataset(path: os.PathLike, train: int = 200, test: int = 40) -> None:
    """An npz dataset of the networks' images (uint8), labelled by their classifier."""
    generator, classifier, _ = networks()
    with torch.no_grad():
        images = generator(torch.randn(train + test, LATENT, generator=torch.Generator().manual_seed(1)))
        labels = classifier(images).argmax(1).numpy()
    pixels = ((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    np.savez(path, x_train=pixels[:train], y_train=labels[:train], x_test=pixels[train:], y_test=labels[train:])


def train_config(dataset: str) -> TrainConfig:
    """`train all` on the npz file ``dataset`` in float32 on the CPU: the shipped architectures, narrow, one
    epoch; the GAN's batch of 15 rows splits unevenly over 2 ranks (7 + 8)."""
    return TrainConfig(
        dataset=f"npz:{dataset}",
        seed=0,
        device="cpu",
        precision="float32",
        classifier=ClassifierConfig(epochs=1, batch_size=16, width=4),
        gan=GANConfig(epochs=1, batch_size=15, latent_dim=8, generator_width=4, discriminator_width=4, hidden=16),
        encoder=EncoderConfig(epochs=1, batch_size=16, width=4, hidden=16, warm_up_steps=3),
        vae=VAEConfig(
            epochs=1, batch_size=15, latent_dim=8, generator_width=4, hidden=16, encoder_width=4, encoder_hidden=16
        ),
    )


def train(out: str, dataset: str, reference: str) -> None:
    """One rank of `train classifier` and `train gan` with `train_config` into OUT, then of `train encoder` into
    OUT/encoder on the generator and classifier of REFERENCE (copied there by rank 0), so that the encoder is
    compared with one trained on the same G and C, then of `train vae` into OUT/vae."""
    import shutil

    from latentspectra.distributed import open_world
    from latentspectra.experiments.train import train_networks

    with open_world("cpu", ("train", dataset)) as world:
        for network in ("classifier", "gan"):
            train_networks(network, out, train_config(dataset), progress=False, world=world)
        encoder_out = Path(out) / "encoder"
        if world.is_writer:
            encoder_out.mkdir()
            for name in ("generator", "classifier"):
                for suffix in (".safetensors", ".json"):
                    shutil.copy(Path(reference) / f"{name}{suffix}", encoder_out)
        world.barrier()
        train_networks("encoder", encoder_out, train_config(dataset), progress=False, world=world)
        train_networks("vae", Path(out) / "vae", train_config(dataset), progress=False, world=world)


def evaluate(out: str, *datasets: str) -> None:
    """One rank of `run_evaluate` on the tiny networks for each npz file of DATASETS; rank 0 writes the
    records, in order, as a JSON list to OUT."""
    from latentspectra.config import EvaluateConfig
    from latentspectra.distributed import open_world
    from latentspectra.experiments.evaluate import run_evaluate
    from latentspectra.io import write_json

    with open_world("cpu", ("evaluate", datasets)) as world:
        records = [
            run_evaluate(
                EvaluateConfig(
                    dataset=f"npz:{dataset}", device="cpu", precision="float32", networks="sharded_networks:build"
                ),
                world=world,
            )
            for dataset in datasets
        ]
        if world.is_writer:
            write_json(out, records)


def basis_config(dataset: str | Path) -> BasisConfig:
    """The basis of these networks on the npz DATASET, V = 40, in batches of 16, on the CPU in float32: what every
    rank of `main` builds, and the one-process reference of tests/test_distributed.py."""
    return BasisConfig(
        dataset=f"npz:{dataset}",
        per_set=40,
        batch_size=16,
        device="cpu",
        precision="float32",
        networks="sharded_networks:build",
    )


def main(out: str, dataset: str, resume: str) -> None:
    """One rank of the library-level check (run under WORLD_SIZE > 1): the basis of the tiny networks built
    with `basis_study` under the world, resuming after the finished sets at RESUME, and the
    world's collectives and a gathered map over 37 rows in chunks of 5 (8 chunks, the last short); rank 0 writes
    OUT/world.safetensors."""
    from safetensors.torch import save_file

    from latentspectra.distributed import gathered_batched, open_world
    from latentspectra.experiments.basis import basis_study

    with open_world("cpu", ("main", dataset)) as world:
        built = basis_study(basis_config(dataset), progress=False, world=world, resume=Path(resume))
        summed = world.sum(torch.full((3,), float(world.rank + 1), dtype=torch.float32))
        gathered = world.gather(torch.tensor([world.rank, 10 * world.rank]))
        rows = torch.arange(37 * 2, dtype=torch.float32).view(37, 2)
        mapped = gathered_batched(
            lambda chunk: torch.stack([chunk.sum(1), chunk[:, 0] * (world.rank + 1)], 1), rows, world, batch_size=5
        )
        if world.is_writer:
            save_file(
                {
                    "etas": built.latent_sets.etas,
                    "vectors": built.basis.vectors,
                    "mapped": mapped,
                    "draws": torch.tensor(built.latent_sets.draws),
                    "summed": summed,
                    "gathered": gathered,
                    "world_size": torch.tensor(built.stats["world_size"]),
                },
                f"{out}/world.safetensors",
            )


def run_step(step: str, args: list[str]) -> tuple[int, str, str]:
    """One step of `steps` in this process: (exit code, stdout, stderr), stderr being everything written to file
    descriptor 2 during the step (Python's and native code's alike, as a process of its own would show it). "cli"
    is the latentspectra command line on ``args`` (its exit code as a shell sees it); the other steps are the
    functions of this module, whose failure is exit code 1 with its traceback."""
    import contextlib
    import io
    import sys
    import tempfile
    import traceback

    from latentspectra.cli import main as command_line

    stdout = io.StringIO()
    with tempfile.TemporaryFile() as stderr, contextlib.redirect_stdout(stdout):
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(stderr.fileno(), 2)
        try:
            command_line(args) if step == "cli" else STEPS[step](*args)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        except Exception:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        stderr.seek(0)
        return code, stdout.getvalue(), stderr.read().decode(errors="replace")


def steps(plan: str) -> None:
    """One rank of every step of the plan at PLAN, in order: a JSON object {name: {"step", "args", "rank_args",
    "port"}}, each step run by `run_step` on its args followed by its rank_args of this rank (a JSON object by rank,
    a rank missing from it getting none), in a world of its own on its own MASTER_PORT (so that no step meets the
    rendezvous of another). After each step its [exit code, stdout, stderr] is added under its name to
    PLAN.rank-R.json (R = RANK), written whole each time."""
    import json

    from latentspectra.io import write_json

    rank = os.environ["RANK"]
    results: dict[str, list] = {}
    for name, step in json.loads(Path(plan).read_text()).items():
        os.environ["MASTER_PORT"] = str(step["port"])
        results[name] = list(run_step(step["step"], [*step["args"], *step["rank_args"].get(rank, [])]))
        write_json(f"{plan}.rank-{rank}.json", results)


STEPS = {"main": main, "train": train, "evaluate": evaluate}

if __name__ == "__main__":
    import sys

    {**STEPS, "steps": steps}[sys.argv[1]](*sys.argv[2:])
