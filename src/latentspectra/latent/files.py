"""A quasi-eigenvector basis as files: ``NAME.safetensors`` (vectors, labels, sets) with ``NAME.json`` beside
it (C, M and how the basis was built); latents of images as ``NAME.safetensors`` (the latents and any per-image
measures) with ``NAME.json`` (how they were made); each written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io import load_tensors_with_record, record_path, save_tensors_with_record
from .basis import BasisError, QuasiEigenBasis
from .checks import LatentError, check_latents

BASIS_FORMAT = "latentspectra.QuasiEigenBasis"
LATENTS_FORMAT = "latentspectra.Latents"


def save_basis(basis: QuasiEigenBasis, path: str | Path) -> Path:
    """Write ``path`` (safetensors: vectors, labels, sets) and ``path`` with suffix .json (C, M, provenance),
    each atomically; returns the safetensors path.

    Raises:
        BasisError: ``path`` ends in .json (the record would overwrite it).
    """
    return save_tensors_with_record(
        path,
        {"vectors": basis.vectors, "labels": basis.labels, "sets": basis.sets},
        {"format": BASIS_FORMAT, "norm": basis.norm, "dim": basis.dim, "provenance": basis.provenance},
        BasisError,
    )


def load_basis(path: str | Path) -> QuasiEigenBasis:
    """Read a basis written by `save_basis`.

    Raises:
        BasisError: a missing, unreadable or inconsistent file, naming it.
    """
    path = Path(path)
    tensors, meta = load_tensors_with_record(path, BasisError, "basis", BASIS_FORMAT)
    if "norm" not in meta:
        raise BasisError(f"{record_path(path)}: no 'norm' in the basis record")
    missing = {"vectors", "labels", "sets"} - set(tensors)
    if missing:
        raise BasisError(f"{path}: missing tensors {sorted(missing)}")
    try:
        basis = QuasiEigenBasis(
            tensors["vectors"], tensors["labels"], tensors["sets"], meta["norm"], meta.get("provenance", {})
        )
    except (ValueError, TypeError) as error:
        raise BasisError(f"{path}: {error}") from None
    if basis.dim != meta.get("dim"):
        raise BasisError(f"{path}: vectors have dimension {basis.dim} but {record_path(path)} says {meta.get('dim')}")
    return basis


def save_latents(
    path: str | Path, latents: torch.Tensor, record: dict[str, Any], per_image: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``latents`` (N, M) and the ``per_image`` measures (each N rows) to ``path`` (safetensors) and
    ``record`` (how they were made, with N and M) to ``path`` with suffix .json, each atomically; returns ``path``.

    Raises:
        LatentError: latents that are not finite (N, M), per-image measures of another length, or a .json ``path``.
    """
    latents = check_latents(latents, "save_latents", "latents")
    per_image = per_image or {}
    for name, values in per_image.items():
        if name == "latents" or len(values) != len(latents):
            raise LatentError(f"save_latents: per-image {name!r} must have {len(latents)} rows, got {len(values)}")
    return save_tensors_with_record(
        path,
        {"latents": latents, **per_image},
        {**record, "format": LATENTS_FORMAT, "count": len(latents), "dim": latents.shape[1]},
        LatentError,
    )


def load_latents(path: str | Path) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
    """The latents (N, M), the per-image measures and the record written by `save_latents`.

    Raises:
        LatentError: a missing, unreadable or inconsistent pair of files, naming them.
    """
    path = Path(path)
    tensors, record = load_tensors_with_record(path, LatentError, "latents", LATENTS_FORMAT)
    latents = tensors.pop("latents", None)
    expected = (record.get("count"), record.get("dim"))
    if latents is None or tuple(latents.shape) != expected:
        shape = None if latents is None else tuple(latents.shape)
        raise LatentError(f"{path}: expected a 'latents' tensor of shape {expected}, got {shape}")
    return check_latents(latents, f"load_latents {path}", "latents"), tensors, record
