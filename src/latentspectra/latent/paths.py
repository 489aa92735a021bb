"""The rotation path of Algorithm 1: a latent rotated through the quasi-eigenvectors of the labels in turn."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from .basis import QuasiEigenBasis
from .checks import check_latents


def rotation_path(
    z: torch.Tensor,
    basis: QuasiEigenBasis,
    labels: Sequence[int] | None = None,
    dtheta: float = math.pi / 6,
    steps: int = 3,
    mode: str = "plane",
    set_index: int = 1,
) -> torch.Tensor:
    """Algorithm 1: rotate ``z`` through the quasi-eigenvectors of ``labels`` in turn.

    For each consecutive pair (a, b) of ``labels`` the rotation of `QuasiEigenBasis.rotation` from
    xi_a to xi_b (the set-``set_index`` quasi-eigenvectors) is applied ``steps`` times with angle ``dtheta``;
    theta starts at 0 for each pair (u(0) = xi_a) and grows by ``dtheta`` after every step, so with the
    defaults it reaches pi/2 (u = xi_b) after the third step, where the next pair starts. After each
    step z is rescaled to <z|z> = M.

    The default dtheta = pi/6 follows the paper's text (three steps of pi/6 from one quasi-eigenvector
    to the next); Algorithm 1 prints dtheta = pi/3, which would overshoot to 3 pi/3 = pi.

    mode="plane" (default) keeps the components of z outside the plane. mode="literal" applies Eq. 12
    as printed: the first step keeps only c_a, so from then on z lies in span{xi_a, xi_b} (on the line of
    u(dtheta), with the sign of c_a), and the path is the same for every z with the same sign of c_a.

    Args:
        z: (N, M) or (M,) floating latents.
        labels: labels visited in order, at least two; default: every label of the basis, in increasing order.

    Returns:
        float64 tensor of shape (1 + steps * (len(labels) - 1), *z.shape): the input first, then z after
        every step.

    Raises:
        LatentError: ``z`` not a finite floating-point tensor of shape (N, M) or (M,).
        ValueError: bad labels or mode, or a latent that the literal operator maps to 0
            (c_a = 0), which cannot be rescaled.
    """
    current = check_latents(z, "rotation_path", dim=basis.dim, vector=True).double()
    labels = tuple(sorted(set(basis.labels[basis.labelled].tolist()))) if labels is None else tuple(labels)
    if len(labels) < 2:
        raise ValueError(f"rotation_path: need at least two labels to rotate between, got {tuple(labels)}")
    if steps < 1:
        raise ValueError(f"rotation_path: steps must be at least 1, got {steps}")
    indices = [basis.index_of(label, set_index) for label in labels]
    path = [current]
    for a, b in itertools.pairwise(indices):
        for step in range(steps):
            operator = basis.rotation(a, b, dtheta, theta=step * dtheta, mode=mode).to(current.device)
            current = _rescale(current @ operator.T, current, basis.dim)
            path.append(current)
    return torch.stack(path)


def _rescale(z: torch.Tensor, before: torch.Tensor, dim: int) -> torch.Tensor:
    """z scaled to <z|z> = ``dim`` (row-wise); refuses a z that the step shrank to rounding level."""
    norms = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    if not (norms > 1e-12 * torch.linalg.vector_norm(before, dim=-1, keepdim=True)).all():
        raise ValueError(
            "rotation_path: a latent was mapped to 0 (the literal operator keeps only its "
            "coefficient on u(theta), which is 0 to rounding) and cannot be rescaled"
        )
    return z * (math.sqrt(dim) / norms)
