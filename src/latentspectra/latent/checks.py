"""The one check of latent inputs: latent vectors, codes, averages and codebooks, wherever a function takes
them, are a finite floating-point tensor of shape (N, M) (or, where a single vector is allowed, (M,)).
Every failure is a `LatentError` whose message names the function, the argument, what was expected and
what came."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LatentspectraError


class LatentError(LatentspectraError, ValueError):
    """Latent vectors (or codes, averages, a codebook) that are not a finite floating-point tensor of the
    expected shape."""


def check_latents(
    z: Any, caller: str, name: str = "z", *, dim: int | None = None, min_rows: int = 1, vector: bool = False
) -> torch.Tensor:
    """``z`` itself, once checked to be a finite floating-point tensor of shape (N, ``dim``) with N >=
    ``min_rows`` (any M >= 1 when ``dim`` is None), or of shape (``dim``,) where ``vector`` allows it.

    Raises:
        LatentError: "``caller``: ``name`` must be a finite floating-point tensor of shape ..., got ...".
    """
    columns = "M" if dim is None else str(dim)
    shape = f"(N, {columns})" + (f" or ({columns},)" if vector else "")
    rows = f" with N >= {min_rows}" if min_rows > 1 else ""
    expected = f"{caller}: {name} must be a finite floating-point tensor of shape {shape}{rows}"
    if not isinstance(z, torch.Tensor):
        raise LatentError(f"{expected}, got {type(z).__name__}")
    count = z.shape[0] if z.ndim == 2 else 1
    if (
        z.ndim not in ((1, 2) if vector else (2,))
        or z.shape[-1] < 1
        or (dim is not None and z.shape[-1] != dim)
        or count < max(min_rows, 1)
    ):
        raise LatentError(f"{expected}, got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise LatentError(f"{expected}, got {z.dtype}")
    if not bool(torch.isfinite(z).all()):
        raise LatentError(f"{expected}, got NaN or infinite values")
    return z
