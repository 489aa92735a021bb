"""The two baselines every direction finder is compared with: random orthonormal directions and the
coordinate axes of the latent space.

Random directions are the reference GANSpace reports its principal directions against (Härkönen et al.,
NeurIPS 2020, Sec. 3; the authors' `decomposition.get_random_dirs` draws normalised Gaussian vectors, not
orthogonal ones); here they are orthonormal, the Q factor of a seeded Gaussian matrix, so that they are as
far apart as the directions of the other methods. The coordinate axes are the directions of a disentangled
latent space, one factor per component.
"""

from __future__ import annotations

import torch

from .directions import DirectionMethod, FitInputs, check_whole, register


def random_orthonormal(count: int, dim: int, rng: torch.Generator) -> torch.Tensor:
    """(``count``, ``dim``) float64 orthonormal rows, uniformly distributed (Haar): the Q factor of a (dim x
    count) standard Gaussian matrix, its columns' signs fixed by the diagonal of R so that the factorisation
    is unique (Mezzadri, "How to generate random matrices from the classical compact groups", Notices AMS
    54(5), 2007)."""
    q, r = torch.linalg.qr(torch.randn(dim, count, generator=rng, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).T


@register("random")
class RandomDirections(DirectionMethod):
    """K random orthonormal directions (module docstring). Fit uses only M: from ``latent_dim``, the latents
    or the generator's ``latent_dim``.

    Args:
        n_directions: K <= M.
        latent_dim: M, where fit is given no latents or generator.
        seed: seeds the Gaussian matrix.

    Attributes (after `fit`):
        directions_: (K, M) float32 orthonormal rows.
    """

    inputs = ()
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(self, n_directions: int, *, latent_dim: int | None = None, seed: int = 0) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.seed = seed

    def check_params(self) -> None:
        super().check_params()
        check_whole(self.title, "seed", self.seed, 0)

    def _fit(self, inputs: FitInputs) -> None:
        dim = inputs.require_latent_dim()
        rng = torch.Generator().manual_seed(self.seed)
        self.directions_ = random_orthonormal(self.n_directions, dim, rng).float()


@register("axes")
class CoordinateAxes(DirectionMethod):
    """The first K coordinate axes e_0 .. e_K-1. Fit uses only M, as `RandomDirections`.

    Args:
        n_directions: K <= M.
        latent_dim: M, where fit is given no latents or generator.

    Attributes (after `fit`):
        directions_: (K, M) float32, the first K rows of the identity.
    """

    inputs = ()
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(self, n_directions: int, *, latent_dim: int | None = None) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)

    def _fit(self, inputs: FitInputs) -> None:
        dim = inputs.require_latent_dim()
        self.directions_ = torch.eye(self.n_directions, dim)
