"""The resumable training state: modules, optimizers, schedulers and the epoch, as a safetensors file with a
JSON record beside it (the formats of a finished model, models/files.py), so nothing is ever unpickled.
Every write is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import load_tensors, read_record, save_tensors, write_json


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
