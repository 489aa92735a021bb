"""Operators on quasi-eigenvectors: B of Eq. 11, the literal rotation of Eq. 12, the plane rotation, Algorithm 1."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspectra.latent import LatentError, QuasiEigenBasis, rotation_path

PROPERTY = settings(max_examples=30, deadline=None)
ANGLES = st.floats(-2 * math.pi, 2 * math.pi)


def _basis(dim: int = 20, labels: int = 10, seed: int = 0) -> QuasiEigenBasis:
    etas = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return QuasiEigenBasis.from_etas(
        etas, torch.arange(labels).repeat(dim // labels), torch.arange(1, dim // labels + 1).repeat_interleave(labels)
    )


@st.composite
def planes(draw) -> tuple[QuasiEigenBasis, int, int]:
    """A random basis (M in 2..40, labels = M) and two distinct indices i, j."""
    dim = draw(st.integers(2, 40))
    basis = _basis(dim, labels=dim, seed=draw(st.integers(0, 10_000)))
    i, j = draw(st.lists(st.integers(0, dim - 1), min_size=2, max_size=2, unique=True))
    return basis, i, j


def _u(basis: QuasiEigenBasis, i: int, j: int, phi: float) -> torch.Tensor:
    return math.cos(phi) * basis.vectors[i] + math.sin(phi) * basis.vectors[j]


def _close(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= 1e-10 * scale).all())


@PROPERTY
@given(plane=planes(), theta=ANGLES, dtheta=ANGLES)
def test_literal_rotation_maps_u_theta_to_u_theta_plus_dtheta(plane, theta, dtheta):
    basis, i, j = plane
    rotation = basis.rotation(i, j, dtheta, theta, mode="literal")
    assert rotation.shape == (basis.dim, basis.dim) and rotation.dtype == torch.float64
    assert _close(rotation @ _u(basis, i, j, theta), _u(basis, i, j, theta + dtheta), basis.dim)


@PROPERTY
@given(plane=planes(), theta=ANGLES, dtheta=ANGLES)
def test_literal_rotation_is_rank_one_and_annihilates_the_rest(plane, theta, dtheta):
    basis, i, j = plane
    rotation = basis.rotation(i, j, dtheta, theta, mode="literal")
    others = [k for k in range(basis.dim) if k not in (i, j)]
    assert _close(basis.vectors[others] @ rotation.T, torch.zeros(len(others), basis.dim), basis.dim)
    assert _close(rotation @ _u(basis, i, j, theta + math.pi / 2), torch.zeros(basis.dim), basis.dim)
    assert int(torch.linalg.matrix_rank(rotation)) == 1


@PROPERTY
@given(plane=planes(), theta=ANGLES, dtheta=ANGLES)
def test_literal_rotation_is_built_from_the_b_operators_of_eq_11(plane, theta, dtheta):
    basis, i, j = plane
    before = {i: math.cos(theta), j: math.sin(theta)}
    after = {i: math.cos(theta + dtheta), j: math.sin(theta + dtheta)}
    expected = sum(after[a] * before[b] * basis.projection(a, b) for a in (i, j) for b in (i, j))
    assert _close(basis.rotation(i, j, dtheta, theta, mode="literal"), expected)
    # literal = plane rotation after projecting onto u(theta)
    onto_u = torch.outer(_u(basis, i, j, theta), _u(basis, i, j, theta)) / basis.norm
    plane = basis.rotation(i, j, dtheta, mode="plane")
    assert _close(basis.rotation(i, j, dtheta, theta, mode="literal"), plane @ onto_u)


@PROPERTY
@given(plane=planes(), theta=ANGLES, dtheta=ANGLES, other=ANGLES)
def test_plane_rotation_is_a_rotation_in_the_plane_only(plane, theta, dtheta, other):
    basis, i, j = plane
    rotation = basis.rotation(i, j, dtheta, theta, mode="plane")
    identity = torch.eye(basis.dim, dtype=torch.float64)
    assert _close(rotation @ rotation.T, identity)
    assert abs(float(torch.linalg.det(rotation)) - 1.0) <= 1e-9
    others = [k for k in range(basis.dim) if k not in (i, j)]
    assert _close(basis.vectors[others] @ rotation.T, basis.vectors[others], basis.dim)
    assert _close(rotation @ _u(basis, i, j, theta), _u(basis, i, j, theta + dtheta), basis.dim)
    composed = rotation @ basis.rotation(i, j, other, mode="plane")
    assert _close(composed, basis.rotation(i, j, dtheta + other, mode="plane"))


@PROPERTY
@given(plane=planes(), k=st.integers(0, 39))
def test_b_operators_of_eq_11(plane, k):
    basis, i, j = plane
    k %= basis.dim
    b_ij = basis.projection(i, j)
    assert _close(b_ij @ basis.vectors[j], basis.vectors[i], basis.dim)
    if k != j:
        assert _close(b_ij @ basis.vectors[k], torch.zeros(basis.dim), basis.dim)
    assert _close(b_ij.T, basis.projection(j, i))
    assert _close(b_ij @ basis.projection(j, k), basis.projection(i, k))
    b_ii = basis.projection(i, i)
    assert _close(b_ii @ b_ii, b_ii) and _close(b_ii, b_ii.T)
    plane_projector = b_ii + basis.projection(j, j)
    assert _close(plane_projector @ plane_projector, plane_projector)
    completeness = sum(basis.projection(m, m) for m in range(basis.dim))
    assert _close(completeness, torch.eye(basis.dim, dtype=torch.float64))


def test_rotation_and_projection_reject_bad_arguments():
    basis = _basis()
    with pytest.raises(ValueError, match="i and j must differ"):
        basis.rotation(3, 3, 0.1)
    with pytest.raises(ValueError, match="mode must be one of"):
        basis.rotation(0, 1, 0.1, mode="spin")
    with pytest.raises(ValueError, match=r"index must be an int in 0..19, got 20"):
        basis.projection(20, 0)
    with pytest.raises(ValueError, match="index must be an int"):
        basis.rotation(0, 1.0, 0.1)


@pytest.mark.parametrize("mode", ["plane", "literal"])
def test_rotation_path_shapes_norms_and_input_first(mode):
    basis = _basis()
    z = torch.randn(4, 20, dtype=torch.float32)
    z += 3 * basis.vectors[basis.index_of(0)].float() / math.sqrt(20)  # c_0 > 0 for every row
    path = rotation_path(z, basis, labels=(0, 1, 2), mode=mode)
    assert path.shape == (1 + 3 * 2, 4, 20) and path.dtype == torch.float64
    assert torch.equal(path[0], z.double())
    squared = (path[1:] ** 2).sum(-1)
    assert torch.allclose(squared, torch.full_like(squared, 20.0), rtol=1e-12)
    single = rotation_path(z[0], basis, labels=(0, 1), mode=mode)
    assert single.shape == (4, 20) and torch.allclose(single, path[:4, 0])


def test_rotation_path_walks_from_each_quasi_eigenvector_to_the_next():
    basis = _basis()
    labels = (0, 1, 2, 3)
    xi = {label: basis.vectors[basis.index_of(label)] for label in labels}
    for mode in ("plane", "literal"):
        path = rotation_path(xi[0], basis, labels=labels, mode=mode)
        assert path.shape == (10, 20)
        for step, label in zip((3, 6, 9), labels[1:]):
            assert _close(path[step], xi[label], basis.dim)  # three steps of pi/6 reach the next one
        halfway = math.cos(math.pi / 6) * xi[0] + math.sin(math.pi / 6) * xi[1]
        assert _close(path[1], halfway, basis.dim)


def test_literal_path_lies_in_the_plane_and_plane_path_keeps_the_rest():
    basis = _basis()
    z = torch.randn(3, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, b = basis.index_of(0), basis.index_of(1)
    literal = rotation_path(z, basis, labels=(0, 1), mode="literal")
    outside = [k for k in range(20) if k not in (a, b)]
    assert basis.decompose(literal[1:].reshape(-1, 20))[:, outside].abs().max() <= 1e-12
    # first literal step: z -> sign(c_a) * u(dtheta), rescaled to <z|z> = M
    sign = torch.sign(basis.decompose(z)[:, a])[:, None]
    u = math.cos(math.pi / 6) * basis.vectors[a] + math.sin(math.pi / 6) * basis.vectors[b]
    assert _close(literal[1], sign * u, basis.dim)
    plane = rotation_path(z, basis, labels=(0, 1), mode="plane")
    c_in, c_out = basis.decompose(z), basis.decompose(plane[-1])
    ratio = c_out[:, outside] / c_in[:, outside]  # out-of-plane coefficients only rescaled
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-9)
    radius_in = c_in[:, [a, b]].norm(dim=1) * ratio[:, 0]
    assert torch.allclose(c_out[:, [a, b]].norm(dim=1), radius_in, rtol=1e-9)


def test_rotation_path_errors():
    basis = _basis()
    z = torch.randn(2, 20)
    with pytest.raises(ValueError, match="at least two labels"):
        rotation_path(z, basis, labels=(0,))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        rotation_path(z, basis, steps=0, labels=(0, 1))
    with pytest.raises(LatentError, match=r"rotation_path: z must be .* \(N, 20\) or \(20,\), got shape \(2, 19\)"):
        rotation_path(torch.randn(2, 19), basis)
    with pytest.raises(ValueError, match="label 10, set 1"):
        rotation_path(z, basis, labels=(9, 10))
    orthogonal = basis.vectors[basis.index_of(5)]  # c_0 = 0: the literal operator maps it to 0
    with pytest.raises(ValueError, match="mapped to 0"):
        rotation_path(orthogonal, basis, labels=(0, 1), mode="literal")
