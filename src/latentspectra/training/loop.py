"""The resumable epoch loop shared by every network's training.

A `TrainingJob` says what to train; `run_training` runs its epochs with a progress bar, saves the full
training state after every epoch (atomically, so an interruption loses at most the epoch in flight),
resumes from that state when it finds one made with the same seed and settings, and finally writes
the trained networks with their JSON record. Each epoch draws its randomness from its own generator
seeded by (seed, epoch), so a resumed run continues exactly as the uninterrupted one would have. Under
torchrun (``world=``) each rank trains on its shard of every batch and rank 0 alone writes
(training/sharding.py, docs/scale.md).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..compute import Compute
from ..distributed import SINGLE, World
from ..errors import CheckpointError
from ..io import versions, writer_directory
from ..models.files import save_model
from .checkpoint import read_training_state, restore_training_state, save_training_state


class TrainingJob(Protocol):
    """What `run_training` needs to know about one network's training."""

    name: str
    compute: Compute  # the device its modules and data are on, and the precision of its forward passes
    modules: dict[str, nn.Module]  # everything whose state is checkpointed
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]

    def batches_per_epoch(self) -> int: ...

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        """One optimisation step on batch ``batch_index`` of the current epoch; returns its losses."""
        ...

    def start_epoch(self, rng: torch.Generator) -> None:
        """Draw the epoch's shuffling from ``rng``."""
        ...

    def finished_models(self) -> dict[str, nn.Module]:
        """The networks to save when training ends, by file name."""
        ...

    def shard_over(self, world: World) -> None:
        """Train as one rank of ``world`` (each rank its shard of every batch; training/sharding.py)."""
        ...

    def unshard(self) -> None:
        """One process again, the modules as they are saved."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Final metrics of the trained networks."""
        ...

    # Optional: ``prepare(rng, progress)``, run once before the first epoch of a fresh (not resumed)
    # run, e.g. a warm-up that initialises the weights; its effect is saved with the first epoch.


@dataclass
class TrainingResult:
    """What a finished (or resumed and finished) training run produced."""

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The random stream of one epoch, on ``device``: independent of how many epochs ran before in this process."""
    return torch.Generator(device=device).manual_seed(seed * 100_003 + epoch)


def resume_settings(config: dict[str, Any], seed: int, precision: str) -> dict[str, Any]:
    """What a saved training state must have been made with to be resumed: the seed, the precision of the
    forward passes (a run begun in bfloat16 does not go on in float32) and every setting but the epoch count
    (which may grow to train further), as JSON stores them."""
    settings = {key: value for key, value in config.items() if key != "epochs"}
    return json.loads(json.dumps({"seed": seed, "precision": precision, **settings}))


def check_resume_settings(state_path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a state saved with other settings.

    Raises:
        CheckpointError: naming the state file and each differing setting with its saved and new value.
    """
    if saved == current:
        return
    changed = ", ".join(
        f"{key} {saved.get(key)!r} -> {current.get(key)!r}"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    )
    raise CheckpointError(
        f"{state_path}: the saved training state was made with other settings ({changed}); "
        "rerun with the same settings to resume, or use a fresh --out directory"
    )


def run_training(
    job: TrainingJob,
    out_dir: str | Path,
    epochs: int,
    seed: int,
    config: dict[str, Any],
    progress: bool = True,
    world: World = SINGLE,
) -> TrainingResult:
    """Train ``job`` for ``epochs`` epochs into ``out_dir``, resuming if a saved state is there.

    Writes ``out_dir/checkpoints/NAME-state.{safetensors,json}`` after each epoch, holding the lock of the
    checkpoints directory throughout (a second run there stops at once), and, at the end,
    ``out_dir/<model>.safetensors`` + ``.json`` for each finished network with config, seed, versions,
    per-epoch losses and final metrics. As one rank of a sharded ``world`` the job trains on its shard of every
    batch; rank 0 alone reads the saved state (and shares it), writes, evaluates and shows progress, and the
    other ranks return no metrics.

    Raises:
        CheckpointError: a saved state that cannot be resumed; OutputError: another run training there;
        DistributedError: the other ranks lost.
    """
    out_dir = Path(out_dir)
    state_stem = out_dir / "checkpoints" / f"{job.name}-state"
    if world.size > 1:
        job.shard_over(world)
    try:
        with writer_directory(world, state_stem.parent, lock=True):  # removed again if the run ends before a state
            history, seconds, start_epoch = _train_epochs(
                job, state_stem, epochs, seed, resume_settings(config, seed, job.compute.precision), progress, world
            )
    finally:
        if world.size > 1:
            job.unshard()
    if not world.is_writer:
        return TrainingResult(metrics={}, history=history, seconds=seconds, resumed_from_epoch=start_epoch)
    for module in job.modules.values():
        module.eval()
    metrics = job.evaluate()
    record = {
        "name": job.name,
        "seed": seed,
        "epochs": epochs,
        "train_config": config,
        "compute": job.compute.record(),
        "versions": versions(),
        "world_size": world.size,
        "train_seconds": seconds,
        "history": history,
        "metrics": metrics,
    }
    for file_name, model in job.finished_models().items():
        save_model(out_dir, file_name, model, record)
    return TrainingResult(metrics=metrics, history=history, seconds=seconds, resumed_from_epoch=start_epoch)


def _epoch_means(totals: dict[str, float], steps: int, world: World) -> dict[str, float]:
    """Each loss's mean over the epoch's ``steps`` and over the ranks (the ranks' losses are their shards'
    weighted means, `Shard.scale`, whose average over the ranks is the global batch's)."""
    means = world.sum(torch.tensor(list(totals.values()), dtype=torch.float64), "the epoch's losses")
    return dict(zip(totals, (means / (steps * world.size)).tolist()))


def _train_epochs(
    job: TrainingJob, state_stem: Path, epochs: int, seed: int, settings: dict[str, Any], progress: bool, world: World
) -> tuple[list[dict[str, float]], float, int]:
    """Resume from ``state_stem`` if a state is there (rank 0's, shared), run the remaining epochs, saving the
    state after each (rank 0); returns (per-epoch losses, training seconds, the epoch it started from)."""
    saved = world.share(read_training_state(state_stem) if world.is_writer else None, "the saved training state")
    meta = (
        None
        if saved is None
        else restore_training_state(state_stem, saved, job.modules, job.optimizers, job.schedulers)
    )
    progress = progress and world.is_writer
    if meta is not None:
        check_resume_settings(state_stem.with_suffix(".safetensors"), meta["settings"], settings)
        if world.is_writer:
            print(
                f"latentspectra: resuming {job.name} after epoch {meta['epochs_done']} of {epochs} "
                f"({state_stem.with_suffix('.safetensors')})",
                file=sys.stderr,
            )
    meta = meta or {}
    start_epoch = int(meta.get("epochs_done", 0))
    history: list[dict[str, float]] = list(meta.get("history", []))
    seconds = float(meta.get("seconds", 0.0))
    prepare = getattr(job, "prepare", None)
    if start_epoch == 0 and prepare is not None:
        began = time.perf_counter()
        prepare(epoch_generator(seed, -1, job.compute.device), progress)
        seconds += time.perf_counter() - began
    for epoch in range(start_epoch, epochs):
        began = time.perf_counter()
        rng = epoch_generator(seed, epoch, job.compute.device)
        for module in job.modules.values():
            module.train()
        job.start_epoch(rng)
        totals: dict[str, float] = {}
        steps = job.batches_per_epoch()
        bar = tqdm(
            range(steps),
            desc=f"{job.name} epoch {epoch + 1}/{epochs}",
            disable=not progress,
            leave=False,
            mininterval=1.0,
        )
        for batch_index in bar:
            losses = job.train_step(batch_index, rng)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value
            if batch_index % 50 == 0:
                bar.set_postfix({key: f"{value:.3f}" for key, value in losses.items()}, refresh=False)
        seconds += time.perf_counter() - began
        history.append({"epoch": epoch + 1, **_epoch_means(totals, steps, world)})
        if world.is_writer:
            save_training_state(
                state_stem,
                job.modules,
                job.optimizers,
                job.schedulers,
                {"epochs_done": epoch + 1, "history": history, "seconds": seconds, "settings": settings},
            )
    return history, seconds, start_epoch
