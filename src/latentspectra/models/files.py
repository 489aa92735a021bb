"""Trained networks as files: ``NAME.safetensors`` (the state dict) and ``NAME.json`` (the kind and config
that rebuild the network, plus the run's record: config, seed, versions, metrics), and the networks that
ship with the package. Nothing is ever unpickled; every write is atomic.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import load_tensors_with_record, save_tensors_with_record
from . import MODEL_KINDS, build_model
from .layers import Configured


def shipped_models_dir(dataset: str = "mnist") -> Path:
    """The directory of the networks that ship with the package for ``dataset``.

    Raises:
        CheckpointError: no networks ship for ``dataset``.
    """
    root = Path(str(resources.files("latentspectra") / "pretrained"))
    if not (root / dataset).is_dir() or dataset.startswith("."):
        shipped = sorted(path.name for path in root.iterdir() if path.is_dir())
        raise CheckpointError(
            f"no shipped networks for dataset {dataset!r} (shipped: {shipped}); pass a models directory or train them"
        )
    return root / dataset


def model_kind(model: nn.Module) -> str:
    """The registry name of ``model``'s class (see `latentspectra.models.MODEL_KINDS`)."""
    for kind, cls in MODEL_KINDS.items():
        if type(model) is cls:
            return kind
    raise ValueError(f"{type(model).__name__} is not one of the model kinds {sorted(MODEL_KINDS)}")


def save_model(directory: str | Path, name: str, model: nn.Module, record: dict[str, Any]) -> Path:
    """Write ``directory/name.safetensors`` and ``directory/name.json`` as one unit (`io.save_tensors_with_record`);
    returns the weights path."""
    return save_tensors_with_record(
        Path(directory) / f"{name}.safetensors",
        model.state_dict(),
        {"kind": model_kind(model), "config": model.config, **record},
        CheckpointError,
    )


def load_model(directory: str | Path, name: str, kind: str | None = None) -> tuple[Configured, dict[str, Any]]:
    """Rebuild the network saved as ``name`` in ``directory``, in eval mode; returns (model, record). With
    ``kind``, the file must hold a network of that kind (the role it is loaded for).

    Raises:
        CheckpointError: a missing or unreadable file, a pair not written together, a network of another kind,
            an impossible config, or weights that do not fit the recorded network, are not floating point where
            it has floating-point parameters, or are not finite.
    """
    weights_path = Path(directory) / f"{name}.safetensors"
    json_path = weights_path.with_suffix(".json")
    tensors, record = load_tensors_with_record(weights_path, CheckpointError, "weights")
    saved_kind = record.get("kind")
    if kind is not None and saved_kind != kind:
        raise CheckpointError(f"{json_path}: holds a {saved_kind or 'network of no kind'}, expected the {kind}")
    try:
        model = build_model(saved_kind, record.get("config", {}))
    except ValueError as error:
        raise CheckpointError(f"{json_path}: cannot rebuild the network ({error})") from None
    check_weights(tensors, model, weights_path)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{weights_path}: weights do not match {json_path} ({first_line})") from None
    return model.eval(), record


def check_weights(tensors: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Each tensor that stands for one of ``model``'s floating-point parameters or buffers is floating point
    and finite (an integer tensor would be cast silently; NaN weights make every output NaN).

    Raises:
        CheckpointError: naming ``path``, the tensor and what is wrong with it.
    """
    expected = model.state_dict()
    for key, tensor in tensors.items():
        if key not in expected or not expected[key].is_floating_point():
            continue
        if not tensor.is_floating_point():
            raise CheckpointError(f"{path}: weights {key!r} have dtype {tensor.dtype}, expected floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weights {key!r} hold NaN or infinite values")
