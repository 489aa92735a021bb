"""Statistics of latent codes against numpy references on synthetic Gaussian codes with a known covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentspectra.latent import LatentError
from latentspectra.latent.samplers import BoxSampler
from latentspectra.latent.statistics import (
    CodeBulk,
    CodeStatisticsError,
    box_shell,
    component_fits,
    correlation_matrix,
    dominant_components,
    mahalanobis_distances,
    slice_mask,
    strongest_pairs,
)

DIM = 6
MEAN = np.array([3.0, 0.0, -0.5, 0.0, 0.2, 0.0])
STD = np.array([0.5, 2.5, 0.4, 0.3, 0.6, 0.2])
CORRELATION = np.eye(DIM)
CORRELATION[0, 3] = CORRELATION[3, 0] = 0.8  # the strongest pair
CORRELATION[1, 2] = CORRELATION[2, 1] = -0.5
COVARIANCE = CORRELATION * np.outer(STD, STD)


@pytest.fixture(scope="module")
def codes() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.multivariate_normal(MEAN, COVARIANCE, size=20_000)).float()


def test_component_fits_match_numpy_and_the_known_parameters(codes):
    means, stds = component_fits(codes)
    reference = codes.double().numpy()
    np.testing.assert_allclose(means.numpy(), reference.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stds.numpy(), reference.std(0), rtol=1e-10)
    np.testing.assert_allclose(means.numpy(), MEAN, atol=0.05)
    np.testing.assert_allclose(stds.numpy(), STD, rtol=0.03)


def test_correlation_matrix_matches_numpy_and_the_known_correlation(codes):
    correlation = correlation_matrix(codes).numpy()
    np.testing.assert_allclose(correlation, np.corrcoef(codes.double().numpy(), rowvar=False), atol=1e-10)
    np.testing.assert_allclose(correlation, CORRELATION, atol=0.03)


def test_strongest_pairs_rank_by_absolute_correlation(codes):
    pairs = strongest_pairs(correlation_matrix(codes), 2)
    assert [(i, j) for i, j, _ in pairs] == [(0, 3), (1, 2)]
    assert pairs[0][2] == pytest.approx(0.8, abs=0.03) and pairs[1][2] == pytest.approx(-0.5, abs=0.03)


def test_strongest_pairs_skip_a_constant_component():
    correlation = torch.tensor(
        [[1.0, float("nan"), 0.1], [float("nan"), float("nan"), float("nan")], [0.1, float("nan"), 1.0]]
    )
    assert strongest_pairs(correlation, 1) == [(0, 2, pytest.approx(0.1))]


def test_dominant_components_are_the_far_and_the_wide_ones(codes):
    # second moments: 9.25, 6.25, 0.41, 0.09, 0.4, 0.04 -> component 0 (off-centre), then 1 (wide)
    assert dominant_components(codes, 3).tolist() == [0, 1, 2]
    with pytest.raises(CodeStatisticsError, match="count"):
        dominant_components(codes, DIM + 1)


@pytest.mark.parametrize("bound, dim", [(1.0, 100), (1.5, 100), (5.0, 256)])
def test_box_shell_formula_matches_sampled_box_vectors(bound, dim):
    radius, width = box_shell(bound, dim)
    assert radius == pytest.approx(bound * math.sqrt(dim / 3))
    vectors = BoxSampler(bound, seed=1).fit(torch.zeros(2, dim)).sample(20_000).double()
    radii = vectors.norm(dim=1)
    assert radii.pow(2).mean().sqrt().item() == pytest.approx(radius, rel=0.003)
    assert radii.std().item() == pytest.approx(width, rel=0.05)
    assert width / radius < 0.05  # a thin shell


def test_slice_count_is_exact_on_a_hand_made_example():
    codes = torch.tensor(
        [
            [9.0, -9.0, 0.5, -1.0, 0.0],  # inside: the plane's own components (0, 1) are free
            [0.0, 0.0, 1.0, 1.0, -1.0],  # inside: |x| = b exactly
            [0.0, 0.0, 1.01, 0.0, 0.0],  # outside by component 2
            [0.0, 0.0, 0.0, 0.0, -3.0],  # outside by component 4
            [5.0, 5.0, 0.0, 0.0, 0.0],  # inside
        ]
    )
    assert slice_mask(codes, (0, 1), 1.0).tolist() == [True, True, False, False, True]
    assert int(slice_mask(codes, (0, 1), 1.0).sum()) == 3
    assert slice_mask(codes, (0, 4), 1.0).tolist() == [False, True, False, True, False]
    centre = torch.tensor([0.0, 0.0, 0.0, 0.0, -3.0])
    assert slice_mask(codes, (0, 1), 1.0, centre=centre).tolist() == [False, False, False, True, False]
    with pytest.raises(CodeStatisticsError, match="plane"):
        slice_mask(codes, (2, 2), 1.0)


def test_mahalanobis_distances_match_numpy(codes):
    points = codes[:50]
    inverse = np.linalg.inv(COVARIANCE)
    centred = points.double().numpy() - MEAN
    expected = np.sqrt(np.einsum("pi,ij,pj->p", centred, inverse, centred))
    got = mahalanobis_distances(points, torch.from_numpy(MEAN), torch.from_numpy(COVARIANCE))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_code_bulk_holds_its_quantile_of_the_codes_and_misses_far_points(codes):
    bulk = CodeBulk(quantile=0.99).fit(codes)
    assert bulk.fraction_inside(codes) == pytest.approx(0.99, abs=1e-3)
    # chi distribution with 6 degrees of freedom: its 99th percentile is about 4.08
    assert bulk.threshold_ == pytest.approx(4.08, rel=0.03)
    assert bulk.fraction_inside(torch.zeros(10, DIM) + 10) == 0.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            torch.zeros(5),
            "component_fits: codes must be a finite floating-point tensor of shape (N, M) with N >= 2, got shape (5,)",
        ),
        (torch.zeros(1, 3), "with N >= 2, got shape (1, 3)"),
        (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), "got NaN or infinite values"),
    ],
)
def test_bad_codes_are_one_clear_error(bad, message):
    with pytest.raises(LatentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        component_fits(bad)


def test_a_singular_covariance_is_a_clear_error():
    codes = torch.randn(100, 3)
    codes[:, 2] = 1.0
    with pytest.raises(CodeStatisticsError, match="not positive definite"):
        CodeBulk().fit(codes)
