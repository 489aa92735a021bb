"""Operators built from quasi-eigenvectors (paper, Eqs. 11-12), on plain vectors.

Matrices act on column vectors: for a batch of row vectors z (N, M), apply an operator A as z @ A.T.
All results are float64.
"""

from __future__ import annotations

import math

import torch

ROTATION_MODES = ("literal", "plane")


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
