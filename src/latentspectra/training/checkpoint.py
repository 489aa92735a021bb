"""The resumable training state: modules, optimizers, schedulers and the epoch, as a safetensors file with a
JSON record beside it (the formats of a finished model, models/files.py), so nothing is ever unpickled.

The record is also stored in the safetensors header and that copy is the one resumed from: the tensors and
their record are one atomic file, so a run killed between the two writes resumes from what the tensors hold,
exactly as an uninterrupted run continues. The JSON beside it is for people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import load_tensors_and_record, save_tensors_with_record

STATE_FORMAT = "latentspectra.TrainingState"


def check_state_record(record: dict[str, Any], path: Path) -> None:
    """The structure `run_training` resumes from: ``meta`` with a whole ``epochs_done`` >= 0, a list
    ``history``, a number ``seconds`` and a ``settings`` object, and objects ``optimizers`` and ``schedulers``.

    Raises:
        CheckpointError: naming ``path`` and the first entry that is missing or of the wrong type.
    """
    meta = record.get("meta")
    checks: tuple[tuple[str, bool, str], ...] = (
        ("meta", isinstance(meta, dict), "an object"),
        ("optimizers", isinstance(record.get("optimizers"), dict), "an object"),
        ("schedulers", isinstance(record.get("schedulers"), dict), "an object"),
    )
    if isinstance(meta, dict):
        epochs = meta.get("epochs_done")
        checks += (
            (
                "meta.epochs_done",
                isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0,
                "a whole number >= 0",
            ),
            ("meta.history", isinstance(meta.get("history"), list), "a list"),
            ("meta.seconds", isinstance(meta.get("seconds"), (int, float)), "a number"),
            ("meta.settings", isinstance(meta.get("settings"), dict), "an object"),
        )
    for key, valid, expected in checks:
        if not valid:
            raise CheckpointError(
                f"{path}: training state record has no valid {key!r} (expected {expected}); use a fresh --out directory"
            )


def _flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            tensors[f"{prefix}/{index}/{key}"] = torch.as_tensor(value)
    return tensors, {"param_groups": state["param_groups"], "indices": sorted(state["state"])}


def _restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state = {}
    for index in meta["indices"]:
        head = f"{prefix}/{index}/"
        state[index] = {key[len(head) :]: value for key, value in tensors.items() if key.startswith(head)}
    groups = [
        {**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_training_state(
    path_stem: str | Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Write everything a run needs to resume to ``path_stem.safetensors`` + ``path_stem.json``."""
    path_stem = Path(path_stem)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update({f"module/{name}/{key}": value for key, value in module.state_dict().items()})
    optimizer_meta = {}
    for name, optimizer in optimizers.items():
        flat, optimizer_meta[name] = _flatten_optimizer(f"optim/{name}", optimizer)
        tensors.update(flat)
    scheduler_states = {name: scheduler.state_dict() for name, scheduler in schedulers.items()}
    save_tensors_with_record(
        path_stem.with_suffix(".safetensors"),
        tensors,
        {"format": STATE_FORMAT, "meta": meta, "optimizers": optimizer_meta, "schedulers": scheduler_states},
        CheckpointError,
    )


def read_training_state(path_stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The tensors and record of a state saved by `save_training_state`; None when there is none to resume.

    Raises:
        CheckpointError: an unreadable state or one of another structure, naming the file.
    """
    tensors_path = Path(path_stem).with_suffix(".safetensors")
    if not tensors_path.exists():
        return None
    tensors, record = load_tensors_and_record(tensors_path, CheckpointError, "training state", STATE_FORMAT)
    check_state_record(record, tensors_path)
    return tensors, record


def restore_training_state(
    path_stem: str | Path,
    saved: tuple[dict[str, torch.Tensor], dict[str, Any]],
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
) -> dict[str, Any]:
    """Restore ``saved`` (`read_training_state` of ``path_stem``) in place and return its ``meta``.

    Raises:
        CheckpointError: a state that does not fit these modules, naming the file.
    """
    tensors, record = saved
    try:
        for name, module in modules.items():
            head = f"module/{name}/"
            module.load_state_dict({k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)})
        for name, optimizer in optimizers.items():
            _restore_optimizer(f"optim/{name}", optimizer, tensors, record["optimizers"][name])
        for name, scheduler in schedulers.items():
            scheduler.load_state_dict(record["schedulers"][name])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        raise CheckpointError(
            f"{Path(path_stem).with_suffix('.safetensors')}: training state does not match this "
            f"run ({str(error).strip().splitlines()[0]}); use a fresh --out directory"
        ) from None
    return record["meta"]


def load_training_state(
    path_stem: str | Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
) -> dict[str, Any] | None:
    """Restore a state saved by `save_training_state` in place and return its ``meta``; None when there is
    none to resume.

    Raises:
        CheckpointError: an unreadable state, one of another structure, or one that does not fit these
            modules; naming the file.
    """
    saved = read_training_state(path_stem)
    return None if saved is None else restore_training_state(path_stem, saved, modules, optimizers, schedulers)
