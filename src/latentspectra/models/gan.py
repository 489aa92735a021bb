"""Generator and discriminator of the GAN (paper, Methods step 1).

The InfoGAN MNIST layout (Chen et al. 2016), narrowed for CPU: the generator maps z ~ N(0, I_M)
through two dense layers (M -> h -> 2w x H/4 x W/4) and two stride-2 transposed convolutions to the
image; the discriminator mirrors it with two stride-2 convolutions and two dense layers. With
w = 32, h = 512 the generator costs about 8.5M multiply-adds per sample, 6x fewer than the
authors' Julia DCGAN generator (about 48M). The dense hidden layers matter more than width: at equal
CPU time they lift the share of confidently classified samples far above a purely convolutional
DCGAN of the same width; see docs/networks.md for the measurements behind the choice.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import (
    Configured,
    LatentNetwork,
    base_shape,
    base_size,
    check_image_shape,
    downsampling_layers,
    upsampling_layers,
)


class Generator(LatentNetwork):
    """G: latent (N, M) -> image (N, C, H, W) with pixels in [-1, 1] (tanh output)."""

    def __init__(
        self, latent_dim: int = 100, width: int = 32, hidden: int = 512, image_shape: tuple[int, int, int] = (1, 28, 28)
    ):
        super().__init__(latent_dim=latent_dim, width=width, hidden=hidden, image_shape=image_shape)
        channels, height, width_px = check_image_shape(image_shape)
        self.base_shape = base_shape(width, height, width_px)
        flat = base_size(width, height, width_px)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, flat),
            nn.BatchNorm1d(flat),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(*upsampling_layers(width, channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"generator expects latents of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.upsample(self.project(z).view(-1, *self.base_shape))


class Discriminator(Configured):
    """D: image (N, C, H, W) -> one real/fake logit per image."""

    def __init__(self, width: int = 32, hidden: int = 512, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__(width=width, hidden=hidden, image_shape=image_shape)
        channels, height, width_px = check_image_shape(image_shape)
        self.net = nn.Sequential(
            *downsampling_layers(channels, width),
            nn.Linear(base_size(width, height, width_px), hidden),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).squeeze(1)
