"""Trained networks as files: ``NAME.safetensors`` (the state dict) and ``NAME.json`` (the kind and config
that rebuild the network, plus the run's record: config, seed, versions, metrics), and the networks that
ship with the package. Nothing is ever unpickled; every write is atomic.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError
from ..io import load_tensors, read_record, save_tensors, write_json
from . import MODEL_KINDS, build_model


def shipped_models_dir(dataset: str = "mnist") -> Path:
    """The directory of the networks that ship with the package for ``dataset``.

    Raises:
        CheckpointError: no networks ship for ``dataset``.
    """
    root = Path(str(resources.files("latentspectra") / "pretrained"))
    if not (root / dataset).is_dir() or dataset.startswith("."):
        shipped = sorted(path.name for path in root.iterdir() if path.is_dir())
        raise CheckpointError(f"no shipped networks for dataset {dataset!r} (shipped: {shipped}); "
                              f"pass a models directory or train them")
    return root / dataset


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
