"""A plain (deterministic, not variational) convolutional autoencoder: image -> code z (N) -> image.

The encoder is the GAN discriminator's trunk (two stride-2 convolutions) ending in a linear layer to the
code, with no activation and no prior on the codes; the decoder mirrors it (a linear layer and two
stride-2 transposed convolutions to a tanh image). Nothing pulls the codes towards the origin, so they
settle wherever reconstruction puts them: the subject of the fragmentation study
(experiments/fragmentation.py).

`InterpolationCritic` is the critic of Berthelot et al.'s adversarially constrained autoencoder
interpolation (ACAI, ICLR 2019), which `train autoencoder --interpolation-weight` adds to the training
(training/autoencoder.py); the autoencoder itself stays deterministic and unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LatentNetwork, base_shape, base_size, check_image_shape, downsampling_layers, upsampling_layers


def encoder_layers(latent_dim: int, width: int, image_shape: tuple[int, int, int]) -> nn.Sequential:
    """image (B, C, H, W) -> (B, latent_dim): the discriminator's trunk and a linear layer, no activation."""
    channels, height, width_px = check_image_shape(image_shape)
    flat = base_size(width, height, width_px)
    return nn.Sequential(*downsampling_layers(channels, width), nn.Linear(flat, latent_dim))


class Autoencoder(LatentNetwork):
    """image (B, C, H, W) in [-1, 1] -> code (B, N) -> reconstruction (B, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, width: int = 16, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__(latent_dim=latent_dim, width=width, image_shape=image_shape)
        channels, height, width_px = check_image_shape(image_shape)
        self.encoder = encoder_layers(latent_dim, width, image_shape)
        flat = base_size(width, height, width_px)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat),
            nn.BatchNorm1d(flat),
            nn.ReLU(),
            nn.Unflatten(1, base_shape(width, height, width_px)),
            *upsampling_layers(width, channels),
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (B, N) of images (B, C, H, W)."""
        return self.encoder(images)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] of codes (B, N).

        Raises:
            ValueError: ``codes`` is not of shape (B, N).
        """
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(f"autoencoder expects codes of shape (B, {self.latent_dim}), got {tuple(codes.shape)}")
        return self.decoder(codes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))


class InterpolationCritic(nn.Module):
    """image (B, C, H, W) -> (B,): ACAI's critic, the encoder's architecture with its outputs averaged.

    Trained to tell the mixing coefficient alpha of an image decoded from alpha z_1 + (1 - alpha) z_2,
    and 0 for real images (Berthelot et al., ICLR 2019, Section 2).
    """

    def __init__(self, latent_dim: int = 100, width: int = 16, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.layers = encoder_layers(latent_dim, width, image_shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images).mean(dim=1)
