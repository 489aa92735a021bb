"""Samplers of latent vectors, fitted to a cloud of codes: the strategies the fragmentation study compares.

- `BoxSampler`: independent components uniform in a common box [-b, b] (the naive survey of latent
  space; its vectors fill a thin shell of radius b sqrt(N/3), see `statistics.box_shell`);
- `StandardNormalSampler`: z ~ N(0, I), the prior of a GAN or a VAE;
- `IndependentGaussianSampler`: each component from its own Gaussian fit (mean and spread per component,
  correlations ignored);
- `FullGaussianSampler`: one Gaussian with the codes' mean and full covariance;
- `GaussianMixtureSampler`: a Gaussian mixture fitted by EM (scikit-learn), the ex-post density
  estimate of Ghosh et al., "From variational to deterministic autoencoders", ICLR 2020.

Estimators in scikit-learn style: ``__init__`` stores parameters, `fit` learns the attributes ending in
``_`` and resolves the seed into a fresh random stream, `sample` draws from that stream; fitting again
with the same seed restarts the stream, so one seed gives the same samples.
"""

from __future__ import annotations

import warnings

import torch

from .checks import check_latents
from .statistics import CodeStatisticsError, cholesky_factor, component_fits


def gaussian_draws(mean: torch.Tensor, lower: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """mean + L eps for each row eps of ``noise`` (P, N): draws from N(mean, L L^T), float64."""
    return mean.double() + noise.double() @ lower.double().T


class LatentSampler:
    """Base of the samplers: checks the codes, learns ``dim_`` and the random stream ``rng_`` in `fit`."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, codes: torch.Tensor) -> LatentSampler:
        """Learn from ``codes`` (P, N) what the sampler needs; returns self.

        Raises:
            LatentError: codes that are not a finite (P, N) tensor with P >= 2.
        """
        codes = check_latents(codes, f"{type(self).__name__}.fit", "codes", min_rows=2).double()
        self.dim_ = codes.shape[1]
        self._fit(codes)
        self.rng_ = torch.Generator().manual_seed(self.seed)
        return self

    def _fit(self, codes: torch.Tensor) -> None:
        """Learn the sampler's parameters from float64 ``codes``; nothing by default."""

    def sample(self, count: int) -> torch.Tensor:
        """``count`` latent vectors (count, N), float32, from the stream resolved in `fit`.

        Raises:
            CodeStatisticsError: not fitted, or ``count`` < 1.
        """
        if not hasattr(self, "rng_"):
            raise CodeStatisticsError(f"{type(self).__name__}: call fit(codes) before sample()")
        if count < 1:
            raise CodeStatisticsError(f"count: expected at least 1 sample, got {count}")
        return self._draw(count, self.rng_).float()

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class BoxSampler(LatentSampler):
    """Independent components uniform in [-bound, bound]; the codes only give the dimension."""

    def __init__(self, bound: float, seed: int = 0):
        super().__init__(seed)
        self.bound = bound

    def _fit(self, codes: torch.Tensor) -> None:
        if not self.bound > 0:
            raise CodeStatisticsError(f"bound: expected > 0, got {self.bound}")

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        return (2 * torch.rand(count, self.dim_, generator=rng, dtype=torch.float64) - 1) * self.bound


class StandardNormalSampler(LatentSampler):
    """z ~ N(0, I); the codes only give the dimension."""

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        return torch.randn(count, self.dim_, generator=rng, dtype=torch.float64)


class IndependentGaussianSampler(LatentSampler):
    """Each component from its own Gaussian fit (``mean_``, ``std_``), independently of the others."""

    def _fit(self, codes: torch.Tensor) -> None:
        self.mean_, self.std_ = component_fits(codes)

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        return self.mean_ + self.std_ * torch.randn(count, self.dim_, generator=rng, dtype=torch.float64)


class FullGaussianSampler(LatentSampler):
    """One Gaussian with the codes' mean ``mean_`` and covariance ``covariance_`` (unbiased)."""

    def _fit(self, codes: torch.Tensor) -> None:
        self.mean_ = codes.mean(0)
        self.covariance_ = torch.cov(codes.T, correction=1)
        self.lower_ = cholesky_factor(self.covariance_)

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        return gaussian_draws(
            self.mean_, self.lower_, torch.randn(count, self.dim_, generator=rng, dtype=torch.float64)
        )


class GaussianMixtureSampler(LatentSampler):
    """A mixture of ``components`` full-covariance Gaussians fitted by EM (`sklearn.mixture.GaussianMixture`,
    k-means initialisation seeded by ``seed``, at most ``max_iter`` iterations).

    Learned: ``weights_`` (K,), ``means_`` (K, N), ``covariances_`` (K, N, N), ``converged_``. Sampling draws each
    vector's component from the weights, then the vector from that component, with the sampler's own
    stream (not scikit-learn's, which restarts at every call).
    """

    def __init__(self, components: int = 10, max_iter: int = 100, seed: int = 0):
        super().__init__(seed)
        self.components = components
        self.max_iter = max_iter

    def _fit(self, codes: torch.Tensor) -> None:
        if not 1 <= self.components <= codes.shape[0]:
            raise CodeStatisticsError(
                f"components: expected 1..{codes.shape[0]} (the number of codes), got {self.components}"
            )
        from sklearn.exceptions import ConvergenceWarning  # imported here: `import latentspectra` stays light
        from sklearn.mixture import GaussianMixture

        mixture = GaussianMixture(
            self.components, covariance_type="full", max_iter=self.max_iter, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported as converged_ instead
            mixture.fit(codes.numpy())
        self.converged_ = bool(mixture.converged_)
        self.weights_ = torch.from_numpy(mixture.weights_)
        self.means_ = torch.from_numpy(mixture.means_)
        self.covariances_ = torch.from_numpy(mixture.covariances_)
        self.lowers_ = torch.stack([cholesky_factor(covariance) for covariance in self.covariances_])

    def _draw(self, count: int, rng: torch.Generator) -> torch.Tensor:
        chosen = torch.multinomial(self.weights_, count, replacement=True, generator=rng)
        noise = torch.randn(count, self.dim_, generator=rng, dtype=torch.float64)
        draws = torch.empty(count, self.dim_, dtype=torch.float64)
        for component in range(self.components):
            rows = chosen == component
            draws[rows] = gaussian_draws(self.means_[component], self.lowers_[component], noise[rows])
        return draws
