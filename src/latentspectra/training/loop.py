"""The resumable epoch loop shared by every network's training.

A `TrainingJob` says what to train; `run_training` runs its epochs with a progress bar, saves the full
training state after every epoch (atomically, so an interruption loses at most the epoch in flight),
resumes from that state when it finds one made with the same seed and settings, and finally writes
the trained networks with their JSON record. Each epoch draws its randomness from its own generator
seeded by (seed, epoch), so a resumed run continues exactly as the uninterrupted one would have.
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
from ..errors import CheckpointError
from ..io import directory_lock, versions
from ..models.files import save_model
from .checkpoint import load_training_state, save_training_state


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


def resume_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """What a saved training state must have been made with to be resumed: the seed and every setting but
    the epoch count (which may grow to train further), as JSON stores them."""
    return json.loads(json.dumps({"seed": seed, **{key: value for key, value in config.items() if key != "epochs"}}))


def check_resume_settings(state_path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a state saved with other settings.

    Raises:
        CheckpointError: naming the state file and each differing setting with its saved and new value.
    """
    if saved == current:
        return
    changed = ", ".join(f"{key} {saved.get(key)!r} -> {current.get(key)!r}"
                        for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key))
    raise CheckpointError(f"{state_path}: the saved training state was made with other settings ({changed}); "
                          "rerun with the same settings to resume, or use a fresh --out directory")


def run_training(job: TrainingJob, out_dir: str | Path, epochs: int, seed: int,
                 config: dict[str, Any], progress: bool = True) -> TrainingResult:
    """Train ``job`` for ``epochs`` epochs into ``out_dir``, resuming if a saved state is there.

    Writes ``out_dir/checkpoints/NAME-state.{safetensors,json}`` after each epoch, holding the lock of the
    checkpoints directory throughout (a second run there stops at once), and, at the end,
    ``out_dir/<model>.safetensors`` + ``.json`` for each finished network with config, seed, versions,
    per-epoch losses and final metrics.

    Raises:
        CheckpointError: a saved state that cannot be resumed; OutputError: another run training there.
    """
    out_dir = Path(out_dir)
    state_stem = out_dir / "checkpoints" / f"{job.name}-state"
    state_stem.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(state_stem.parent, wait=0):
        history, seconds, start_epoch = _train_epochs(job, state_stem, epochs, seed, resume_settings(config, seed),
                                                      progress)
    for module in job.modules.values():
        module.eval()
    metrics = job.evaluate()
    record = {"name": job.name, "seed": seed, "epochs": epochs, "train_config": config,
              "compute": job.compute.record(), "versions": versions(), "train_seconds": seconds,
              "history": history, "metrics": metrics}
    for file_name, model in job.finished_models().items():
        save_model(out_dir, file_name, model, record)
    return TrainingResult(metrics=metrics, history=history, seconds=seconds, resumed_from_epoch=start_epoch)


def _train_epochs(job: TrainingJob, state_stem: Path, epochs: int, seed: int, settings: dict[str, Any],
                  progress: bool) -> tuple[list[dict[str, float]], float, int]:
    """Resume from ``state_stem`` if a state is there, run the remaining epochs, saving the state after each;
    returns (per-epoch losses, training seconds, the epoch it started from)."""
    meta = load_training_state(state_stem, job.modules, job.optimizers, job.schedulers)
    if meta is not None:
        check_resume_settings(state_stem.with_suffix(".safetensors"), meta["settings"], settings)
        print(f"latentspectra: resuming {job.name} after epoch {meta['epochs_done']} of {epochs} "
              f"({state_stem.with_suffix('.safetensors')})", file=sys.stderr)
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
        bar = tqdm(range(steps), desc=f"{job.name} epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False, mininterval=1.0)
        for batch_index in bar:
            losses = job.train_step(batch_index, rng)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value
            if batch_index % 50 == 0:
                bar.set_postfix({key: f"{value:.3f}" for key, value in losses.items()}, refresh=False)
        seconds += time.perf_counter() - began
        history.append({"epoch": epoch + 1, **{key: value / steps for key, value in totals.items()}})
        save_training_state(state_stem, job.modules, job.optimizers, job.schedulers,
                            {"epochs_done": epoch + 1, "history": history, "seconds": seconds,
                             "settings": settings})
    return history, seconds, start_epoch
