"""Batch augmentation for classifier training: a random small affine warp plus Gaussian pixel noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .sharding import Shard


def random_affine(
    images: torch.Tensor,
    rng: torch.Generator,
    max_rotation: float,
    max_scale: float,
    max_shift: float,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Rotate by up to +-max_rotation rad, scale by 1 +- max_scale, shift by up to +-max_shift
    (fraction of the half-size), independently per image; the background (-1) fills the borders. With
    ``shard``, ``images`` are its rows of a global batch, and they get the warps drawn for those rows."""
    shard = shard or Shard(0, len(images), len(images))

    def uniform(*shape: int) -> torch.Tensor:
        return 2 * shard.uniform(rng, *shape) - 1

    angle = max_rotation * uniform()
    inverse_scale = 1 / (1 + max_scale * uniform())
    shift = max_shift * uniform(2)
    cos, sin = torch.cos(angle) * inverse_scale, torch.sin(angle) * inverse_scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros: shift to a zero background and back.
    return F.grid_sample(images + 1, grid, align_corners=False) - 1


def add_noise(images: torch.Tensor, rng: torch.Generator, sigma: float, shard: Shard | None = None) -> torch.Tensor:
    """Gaussian pixel noise of standard deviation ``sigma`` (pixel units of [-1, 1] images); with ``shard``, the
    noise drawn for its rows of the global batch."""
    shard = shard or Shard(0, len(images), len(images))
    return images + sigma * shard.normal(rng, *images.shape[1:])
