"""Statistics of a cloud of latent codes ("z-points"): where an encoder puts its data in latent space.

The quantities of R. Mönchmeyer's study "Autoencoders and latent space fragmentation" (linux-blog.anracom.com,
2023, parts I-VI) and of its companion "Latent spaces - pitfalls of distributing points in multi
dimensions": per-component Gaussian fits, the components that dominate the codes' length, the
correlation of components, the spherical shell that box-sampled vectors fall into, the flat slice of
latent space around a coordinate plane, and the codes' bulk measured by the Mahalanobis distance.

Codes are a float tensor (P, N): P points in an N-dimensional latent space. Everything is computed in
float64 and works on any encoder's codes.
"""

from __future__ import annotations

import math

import torch

from ..errors import LatentspectraError
from .checks import check_latents


class CodeStatisticsError(LatentspectraError, ValueError):
    """Codes or parameters that the statistics cannot use (wrong shape, too few points, singular covariance)."""


def component_fits(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood Gaussian fit of each latent component on its own: means and standard
    deviations (1/P normalisation), each (N,) float64.

    Raises:
        CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`).
    """
    codes = check_latents(codes, "component_fits", "codes", min_rows=2).double()
    return codes.mean(0), codes.std(0, correction=0)


def dominant_components(codes: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (count,) of the components with the largest second moment E[x_j^2] = mean_j^2 + std_j^2,
    largest first: the components whose mean lies far from 0 or whose spread is wide, which dominate
    the codes' squared length |z|^2 = sum_j x_j^2.

    Raises:
        CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`); ``count`` not in 1..N.
    """
    codes = check_latents(codes, "dominant_components", "codes", min_rows=2).double()
    if not 1 <= count <= codes.shape[1]:
        raise CodeStatisticsError(f"count: expected 1..{codes.shape[1]} components, got {count}")
    return codes.pow(2).mean(0).argsort(descending=True)[:count]


def correlation_matrix(codes: torch.Tensor) -> torch.Tensor:
    """Pearson correlation matrix (N, N) of the components, float64; a component that never varies
    has NaN correlations (its variance is 0).

    Raises:
        CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`).
    """
    return torch.corrcoef(check_latents(codes, "correlation_matrix", "codes", min_rows=2).double().T)


def strongest_pairs(correlation: torch.Tensor, count: int) -> list[tuple[int, int, float]]:
    """The ``count`` component pairs (i < j) with the largest |correlation|, as (i, j, r), strongest
    first; NaN entries (constant components) are skipped.

    Raises:
        CodeStatisticsError: ``correlation`` is not a square matrix; ``count`` < 1.
    """
    if correlation.ndim != 2 or correlation.shape[0] != correlation.shape[1]:
        raise CodeStatisticsError(f"correlation: expected a square matrix, got {tuple(correlation.shape)}")
    if count < 1:
        raise CodeStatisticsError(f"count: expected at least 1 pair, got {count}")
    rows, columns = torch.triu_indices(correlation.shape[0], correlation.shape[1], offset=1)
    values = correlation[rows, columns].nan_to_num(nan=0.0)
    order = values.abs().argsort(descending=True, stable=True)[:count]
    return [(int(rows[k]), int(columns[k]), float(values[k])) for k in order]


def box_shell(bound: float, dim: int) -> tuple[float, float]:
    """Radius and width of the shell that vectors with independent components uniform in [-b, b] fill.

    |z|^2 is a sum of N independent terms of mean b^2/3 and variance 4 b^4/45, so the root-mean-square
    radius is exactly b sqrt(N/3), and for large N the radius has standard deviation b/sqrt(15),
    independent of N: relative to the radius the shell is 1/sqrt(5N) thin (0.045 at N = 100).

    Raises:
        CodeStatisticsError: ``bound`` <= 0 or ``dim`` < 1.
    """
    if not bound > 0 or dim < 1:
        raise CodeStatisticsError(f"box_shell: expected bound > 0 and dim >= 1, got {bound} and {dim}")
    return bound * math.sqrt(dim / 3), bound / math.sqrt(15)


def slice_mask(
    codes: torch.Tensor, plane: tuple[int, int], bound: float, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean mask (P,) of the codes inside the flat slice around the coordinate plane (i, j):
    |x_k - c_k| <= b for every other component k (the plane's own two components are free).
    ``centre`` c (N,) defaults to the origin.

    Raises:
        CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`); a plane that is not two
            distinct components; ``bound`` < 0; a centre of the wrong shape.
    """
    codes = check_latents(codes, "slice_mask", "codes").double()
    dim = codes.shape[1]
    i, j = plane
    if i == j or not (0 <= i < dim and 0 <= j < dim):
        raise CodeStatisticsError(f"plane: expected two distinct components in 0..{dim - 1}, got {plane}")
    if bound < 0:
        raise CodeStatisticsError(f"bound: expected >= 0, got {bound}")
    if centre is not None:
        if centre.shape != (dim,):
            raise CodeStatisticsError(f"centre: expected shape ({dim},), got {tuple(centre.shape)}")
        codes = codes - centre.double()
    others = torch.ones(dim, dtype=torch.bool)
    others[[i, j]] = False
    return (codes[:, others].abs() <= bound).all(1)


def mahalanobis_distances(points: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """sqrt((z - mu)^T Sigma^-1 (z - mu)) for each row z of ``points`` (P, N): (P,) float64.

    Raises:
        CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`); shapes that do not match; a
            covariance that is not positive definite.
    """
    points = check_latents(points, "mahalanobis_distances", "points").double()
    dim = points.shape[1]
    if mean.shape != (dim,) or covariance.shape != (dim, dim):
        raise CodeStatisticsError(
            f"mean {tuple(mean.shape)} and covariance {tuple(covariance.shape)} do not fit points of dimension {dim}"
        )
    lower = cholesky_factor(covariance)
    whitened = torch.linalg.solve_triangular(lower, (points - mean.double()).T, upper=False)
    return whitened.pow(2).sum(0).sqrt()


def cholesky_factor(covariance: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor L (N, N) float64 with L L^T = ``covariance``.

    Raises:
        CodeStatisticsError: the covariance is not positive definite (e.g. fewer points than dimensions,
            or a component that never varies).
    """
    lower, info = torch.linalg.cholesky_ex(covariance.double())
    if info.item() != 0:
        raise CodeStatisticsError(
            "covariance is not positive definite (fewer points than dimensions, or a "
            "component that never varies); fit on more codes"
        )
    return lower


class CodeBulk:
    """The bulk of a cloud of codes: the points whose Mahalanobis distance to the codes' mean (under the
    codes' covariance) is below the ``quantile`` of the codes' own distances.

    Learned in `fit`: ``mean_`` (N,), ``covariance_`` (N, N), ``threshold_`` (a distance).
    """

    def __init__(self, quantile: float = 0.99):
        self.quantile = quantile

    def fit(self, codes: torch.Tensor) -> CodeBulk:
        """Fit the mean, covariance and distance threshold to ``codes`` (P, N); returns self.

        Raises:
            CodeStatisticsError: see `latent.checks.check_latents` (a `LatentError`); a quantile outside (0, 1];
                a singular covariance.
        """
        if not 0 < self.quantile <= 1:
            raise CodeStatisticsError(f"quantile: expected a value in (0, 1], got {self.quantile}")
        codes = check_latents(codes, "CodeBulk.fit", "codes", min_rows=2).double()
        self.mean_ = codes.mean(0)
        self.covariance_ = torch.cov(codes.T, correction=1)
        self.threshold_ = float(torch.quantile(self.distances(codes), self.quantile))
        return self

    def distances(self, points: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distances (P,) of ``points`` to the fitted mean."""
        return mahalanobis_distances(points, self.mean_, self.covariance_)

    def fraction_inside(self, points: torch.Tensor) -> float:
        """Fraction of ``points`` (P, N) whose distance is at most the threshold."""
        return (self.distances(points) <= self.threshold_).double().mean().item()
