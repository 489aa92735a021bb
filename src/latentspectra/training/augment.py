"""Batch augmentation for classifier training: a random small affine warp plus Gaussian pixel noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, rng: torch.Generator, max_rotation: float, max_scale: float,
                  max_shift: float) -> torch.Tensor:
    """Rotate by up to +-max_rotation rad, scale by 1 +- max_scale, shift by up to +-max_shift
    (fraction of the half-size), independently per image; the background (-1) fills the borders."""
    n = images.shape[0]

    def uniform(*shape: int) -> torch.Tensor:
        return 2 * torch.rand(*shape, generator=rng, device=images.device) - 1

    angle = max_rotation * uniform(n)
    inverse_scale = 1 / (1 + max_scale * uniform(n))
    shift = max_shift * uniform(n, 2)
    cos, sin = torch.cos(angle) * inverse_scale, torch.sin(angle) * inverse_scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros: shift to a zero background and back.
    return F.grid_sample(images + 1, grid, align_corners=False) - 1


def add_noise(images: torch.Tensor, rng: torch.Generator, sigma: float) -> torch.Tensor:
    """Gaussian pixel noise of standard deviation ``sigma`` (pixel units of [-1, 1] images)."""
    return images + sigma * torch.randn(images.shape, generator=rng, device=images.device)
