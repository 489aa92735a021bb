"""A quasi-eigenvector basis as files: ``NAME.safetensors`` (vectors, labels, sets) with ``NAME.json`` beside
it (C, M and how the basis was built), each written atomically."""

from __future__ import annotations

from pathlib import Path

from ..io import load_tensors_with_record, record_path, save_tensors_with_record
from .basis import BasisError, QuasiEigenBasis

BASIS_FORMAT = "latentspectra.QuasiEigenBasis"


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
