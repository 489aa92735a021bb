"""Weights in safetensors with a JSON record beside them; resumable training state.

A finished model is two files, ``NAME.safetensors`` (the state dict) and ``NAME.json`` (the kind and
config that rebuild the network, plus the run's record: config, seed, versions, metrics). Training
state for resuming (modules, optimizers, schedulers, epoch) uses the same pair of formats, so nothing
is ever unpickled. Every write is atomic.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..io import load_tensors, read_record, save_tensors, write_json
from ..models import MODEL_KINDS, build_model


def versions() -> dict[str, str]:
    """Versions of the software a run used, for its JSON record."""
    from .. import __version__

    return {
        "latentspectra": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def model_kind(model: nn.Module) -> str:
    """The registry name of ``model``'s class (see `latentspectra.models.MODEL_KINDS`)."""
    for kind, cls in MODEL_KINDS.items():
        if type(model) is cls:
            return kind
    raise ValueError(f"{type(model).__name__} is not one of the model kinds {sorted(MODEL_KINDS)}")


def save_model(directory: str | Path, name: str, model: nn.Module, record: dict[str, Any]) -> Path:
    """Write ``directory/name.safetensors`` and ``directory/name.json``; returns the weights path."""
    directory = Path(directory)
    weights = directory / f"{name}.safetensors"
    save_tensors(weights, model.state_dict())
    write_json(directory / f"{name}.json", {"kind": model_kind(model), "config": model.config, **record})
    return weights


def load_model(directory: str | Path, name: str) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved as ``name`` in ``directory``, in eval mode; returns (model, record).

    Raises:
        CheckpointError: a missing or unreadable file, or weights that do not fit the recorded network.
    """
    directory = Path(directory)
    json_path = directory / f"{name}.json"
    record = read_record(json_path, CheckpointError)
    try:
        model = build_model(record["kind"], record["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{json_path}: cannot rebuild the network ({error})") from None
    weights_path = directory / f"{name}.safetensors"
    try:
        model.load_state_dict(load_tensors(weights_path, CheckpointError, "weights"))
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{weights_path}: weights do not match {json_path} ({first_line})") from None
    return model.eval(), record


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
        state[index] = {key[len(head):]: value for key, value in tensors.items() if key.startswith(head)}
    groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in meta["param_groups"]]
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
    save_tensors(path_stem.with_suffix(".safetensors"), tensors)
    scheduler_states = {name: scheduler.state_dict() for name, scheduler in schedulers.items()}
    write_json(path_stem.with_suffix(".json"),
               {"meta": meta, "optimizers": optimizer_meta, "schedulers": scheduler_states})


def load_training_state(
    path_stem: str | Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
) -> dict[str, Any] | None:
    """Restore a state saved by `save_training_state` in place; None when there is none to resume."""
    path_stem = Path(path_stem)
    json_path = path_stem.with_suffix(".json")
    if not json_path.exists():
        return None
    record = read_record(json_path, CheckpointError)
    tensors = load_tensors(path_stem.with_suffix(".safetensors"), CheckpointError, "weights")
    try:
        for name, module in modules.items():
            head = f"module/{name}/"
            module.load_state_dict({k[len(head):]: v for k, v in tensors.items() if k.startswith(head)})
        for name, optimizer in optimizers.items():
            _restore_optimizer(f"optim/{name}", optimizer, tensors, record["optimizers"][name])
        for name, scheduler in schedulers.items():
            scheduler.load_state_dict(record["schedulers"][name])
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{json_path}: training state does not match this run ({error}); "
                              "use a fresh --out directory") from None
    return record["meta"]
