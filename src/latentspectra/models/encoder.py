"""Gaussian encoder E of the paper (Methods step 3): image -> (mean, log-variance) of q(z | x).

Trained as the encoder of a VAE whose decoder is the frozen generator (see training/encoder.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LatentNetwork, base_size, check_image_shape, downsampling_layers


class GaussianEncoder(LatentNetwork):
    """E: image (N, C, H, W) -> (mu, logvar), each (N, M)."""

    def __init__(
        self, latent_dim: int = 100, width: int = 32, hidden: int = 256, image_shape: tuple[int, int, int] = (1, 28, 28)
    ):
        super().__init__(latent_dim=latent_dim, width=width, hidden=hidden, image_shape=image_shape)
        channels, height, width_px = check_image_shape(image_shape)
        self.trunk = nn.Sequential(
            *downsampling_layers(channels, width),
            nn.Linear(base_size(width, height, width_px), hidden),
            nn.LeakyReLU(0.2),
        )
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(images)
        return self.mean(hidden), self.logvar(hidden)

    def encode_mean(self, images: torch.Tensor) -> torch.Tensor:
        """mu(x), the mean of q(z | x) (N, M): the deterministic code, without computing the variance."""
        return self.mean(self.trunk(images))

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One stochastic encoding z = mu + sigma * eps (the reparameterisation trick)."""
        mu, logvar = self(images)
        return reparameterise(mu, logvar, generator)


def reparameterise(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn from ``generator`` (or given as ``noise``): one draw
    from q(z | x)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device) if noise is None else noise
    return mu + torch.exp(0.5 * logvar) * eps
