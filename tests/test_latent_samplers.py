"""Samplers reproduce the moments they fit, and one seed gives one stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentspectra.latent.samplers import (
    BoxSampler,
    FullGaussianSampler,
    GaussianMixtureSampler,
    IndependentGaussianSampler,
    StandardNormalSampler,
)
from latentspectra.latent.statistics import CodeStatisticsError

DIM = 5


@pytest.fixture(scope="module")
def codes() -> torch.Tensor:
    """Correlated Gaussian codes with an off-centre mean."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(DIM, DIM))
    return torch.from_numpy(rng.normal(size=(8000, DIM)) @ mixing.T + np.arange(DIM)).float()


def _moments(points: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    array = points.double().numpy()
    return array.mean(0), np.cov(array, rowvar=False)


def test_full_gaussian_reproduces_mean_and_covariance(codes):
    samples = FullGaussianSampler(seed=1).fit(codes).sample(40_000)
    mean, covariance = _moments(samples)
    code_mean, code_covariance = _moments(codes)
    scale = np.sqrt(np.diag(code_covariance))
    np.testing.assert_allclose(mean, code_mean, atol=0.03 * scale.max())
    np.testing.assert_allclose(covariance / np.outer(scale, scale), code_covariance / np.outer(scale, scale), atol=0.03)


def test_independent_gaussians_reproduce_per_component_moments_and_drop_correlations(codes):
    samples = IndependentGaussianSampler(seed=1).fit(codes).sample(40_000)
    mean, covariance = _moments(samples)
    code_mean, code_covariance = _moments(codes)
    scale = np.sqrt(np.diag(code_covariance))
    np.testing.assert_allclose(mean, code_mean, atol=0.03 * scale.max())
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), scale, rtol=0.03)
    off_diagonal = covariance / np.outer(scale, scale) - np.eye(DIM)
    assert np.abs(off_diagonal).max() < 0.03


def test_gaussian_mixture_reproduces_the_moments_of_a_two_cluster_cloud():
    rng = np.random.default_rng(2)
    clusters = np.concatenate([rng.normal(-4.0, 0.5, size=(3000, 2)), rng.normal(3.0, 1.0, size=(1000, 2))])
    codes = torch.from_numpy(clusters).float()
    sampler = GaussianMixtureSampler(components=2, seed=0).fit(codes)
    assert sampler.converged_
    np.testing.assert_allclose(sorted(sampler.weights_.tolist()), [0.25, 0.75], atol=0.02)
    samples = sampler.sample(20_000)
    mean, covariance = _moments(samples)
    code_mean, code_covariance = _moments(codes)
    np.testing.assert_allclose(mean, code_mean, atol=0.1)
    np.testing.assert_allclose(covariance, code_covariance, rtol=0.05, atol=0.1)
    assert (samples[:, 0] > -0.5).double().mean().item() == pytest.approx(0.25, abs=0.02)


def test_box_and_standard_normal_samplers_have_their_own_moments(codes):
    box = BoxSampler(2.0, seed=1).fit(codes).sample(40_000)
    assert box.abs().max() <= 2.0
    np.testing.assert_allclose(box.var(0).numpy(), 4.0 / 3, rtol=0.03)
    normal = StandardNormalSampler(seed=1).fit(codes).sample(40_000)
    np.testing.assert_allclose(_moments(normal)[1], np.eye(DIM), atol=0.03)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BoxSampler(1.0, seed=3),
        lambda: FullGaussianSampler(seed=3),
        lambda: GaussianMixtureSampler(components=2, seed=3),
    ],
)
def test_same_seed_same_samples_and_refit_restarts_the_stream(codes, make):
    first = make().fit(codes)
    again = make().fit(codes)
    draw = first.sample(100)
    assert torch.equal(draw, again.sample(100))
    assert not torch.equal(draw, first.sample(100))
    assert torch.equal(first.fit(codes).sample(100), draw)
    assert draw.dtype == torch.float32 and draw.shape == (100, DIM)


def test_sampling_before_fit_or_too_many_components_is_a_clear_error(codes):
    with pytest.raises(CodeStatisticsError, match="call fit"):
        FullGaussianSampler().sample(3)
    with pytest.raises(CodeStatisticsError, match="components"):
        GaussianMixtureSampler(components=10).fit(codes[:5])
    with pytest.raises(CodeStatisticsError, match="bound"):
        BoxSampler(0.0).fit(codes)
