"""Operators built from quasi-eigenvectors (paper, Eqs. 11-12) and the rotation path of Algorithm 1.

Matrices act on column vectors: for a batch of row vectors z (N, M), apply an operator A as z @ A.T.
All results are float64.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .basis import QuasiEigenBasis

ROTATION_MODES = ("literal", "plane")


def as_latents(method: str, z: Any, dim: int, name: str = "z") -> torch.Tensor:
    """``z`` as float64 after checking it is a floating tensor of shape (N, dim) or (dim,).

    Raises:
        ValueError: naming ``method``, the expected shapes and the shape or dtype received.
    """
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{method}: {name} must be a torch.Tensor, got {type(z).__name__}")
    if z.ndim not in (1, 2) or z.shape[-1] != dim:
        raise ValueError(f"{method}: {name} must have shape (N, {dim}) or ({dim},), got {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(f"{method}: {name} must be a floating-point tensor, got {z.dtype}")
    return z.to(torch.float64)


def projection_operator(xi_i: torch.Tensor, xi_j: torch.Tensor, norm: float) -> torch.Tensor:
    """B_ij = |xi_i><xi_j| / C (Eq. 11): maps xi_j to xi_i and annihilates every xi_k orthogonal to xi_j.

    For i = j it is the orthogonal projector onto xi_i; B_ii + B_jj projects onto span{xi_i, xi_j};
    B_ij B_jk = B_ik and sum_k B_kk = identity for a complete basis.
    """
    return torch.outer(xi_i.to(torch.float64), xi_j.to(torch.float64)) / norm


def _plane_direction(xi_i: torch.Tensor, xi_j: torch.Tensor, phi: float) -> torch.Tensor:
    """u(phi) = cos(phi) xi_i + sin(phi) xi_j, of squared norm C when xi_i, xi_j are orthogonal of norm C."""
    return math.cos(phi) * xi_i.to(torch.float64) + math.sin(phi) * xi_j.to(torch.float64)


def literal_rotation(xi_i: torch.Tensor, xi_j: torch.Tensor, norm: float, dtheta: float, theta: float) -> torch.Tensor:
    """R(dtheta, theta) of Eq. 12 as printed: |u(theta + dtheta)><u(theta)| / C.

    Equivalently sum over a, b in {i, j} of u_a(theta + dtheta) u_b(theta) B_ab with the B of Eq. 11.
    Rank one: it maps u(theta) to u(theta + dtheta) and annihilates the orthogonal complement of u(theta),
    so R z = (<u(theta)|z> / C) u(theta + dtheta) keeps nothing of z but that one coefficient.
    """
    return projection_operator(_plane_direction(xi_i, xi_j, theta + dtheta), _plane_direction(xi_i, xi_j, theta), norm)


def plane_rotation(xi_i: torch.Tensor, xi_j: torch.Tensor, norm: float, dtheta: float) -> torch.Tensor:
    """Rotation by ``dtheta`` in span{xi_i, xi_j}, from xi_i towards xi_j; identity on the orthogonal complement.

    I + (cos dtheta - 1)(B_ii + B_jj) + sin dtheta (B_ji - B_ij): orthogonal with determinant 1, maps
    u(theta) to u(theta + dtheta) for every theta, as the literal Eq. 12 does, but keeps the rest of z.
    """
    dim = xi_i.shape[0]
    in_plane = projection_operator(xi_i, xi_i, norm) + projection_operator(xi_j, xi_j, norm)
    generator = projection_operator(xi_j, xi_i, norm) - projection_operator(xi_i, xi_j, norm)
    identity = torch.eye(dim, dtype=torch.float64)
    return identity + (math.cos(dtheta) - 1.0) * in_plane + math.sin(dtheta) * generator


def rotation_path(z: torch.Tensor, basis: QuasiEigenBasis, labels: tuple[int, ...] = tuple(range(10)),
                  dtheta: float = math.pi / 6, steps: int = 3, mode: str = "plane", set_index: int = 1) -> torch.Tensor:
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
        labels: labels visited in order, at least two.

    Returns:
        float64 tensor of shape (1 + steps * (len(labels) - 1), *z.shape): the input first, then z after
        every step.

    Raises:
        ValueError: bad shapes, dtypes, labels or mode, or a latent that the literal operator maps to 0
            (c_a = 0), which cannot be rescaled.
    """
    current = as_latents("rotation_path", z, basis.dim)
    if len(labels) < 2:
        raise ValueError(f"rotation_path: need at least two labels to rotate between, got {tuple(labels)}")
    if steps < 1:
        raise ValueError(f"rotation_path: steps must be at least 1, got {steps}")
    indices = [basis.index_of(label, set_index) for label in labels]
    path = [current]
    for a, b in zip(indices, indices[1:]):
        for step in range(steps):
            operator = basis.rotation(a, b, dtheta, theta=step * dtheta, mode=mode).to(current.device)
            current = _rescale(current @ operator.T, current, basis.dim)
            path.append(current)
    return torch.stack(path)


def _rescale(z: torch.Tensor, before: torch.Tensor, dim: int) -> torch.Tensor:
    """z scaled to <z|z> = ``dim`` (row-wise); refuses a z that the step shrank to rounding level."""
    norms = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    if not (norms > 1e-12 * torch.linalg.vector_norm(before, dim=-1, keepdim=True)).all():
        raise ValueError("rotation_path: a latent was mapped to 0 (the literal operator keeps only its "
                         "coefficient on u(theta), which is 0 to rounding) and cannot be rescaled")
    return z * (math.sqrt(dim) / norms)
