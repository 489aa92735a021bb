"""Classifier C of the paper (Methods step 2): a small batch-normalised CNN.

Three 'conv, batch norm, 2x2 max-pool, ReLU' stages (16, 32, 64 channels), then a 128-unit hidden layer
(the penultimate features used for the classifier-feature Frechet distance) and the logits. Max-pooling
and ReLU commute exactly (both are monotone), so pooling first gives the same outputs and gradients as
the usual ReLU-then-pool order while the ReLU touches a quarter of the values.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Configured


def _conv_stage(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2),
        nn.BatchNorm2d(out_channels),
        nn.MaxPool2d(2),
        nn.ReLU(),
    )


class Classifier(Configured):
    """C: image (N, C, H, W) in [-1, 1] -> logits (N, num_classes)."""

    def __init__(
        self, num_classes: int = 10, width: int = 16, hidden: int = 128, image_shape: tuple[int, int, int] = (1, 28, 28)
    ):
        super().__init__(num_classes=num_classes, width=width, hidden=hidden, image_shape=image_shape)
        channels, height, width_px = image_shape
        if height < 8 or width_px < 8:
            raise ValueError(f"image_shape must be at least 8 x 8 (three 2 x 2 poolings), got {tuple(image_shape)}")
        self.trunk = nn.Sequential(
            _conv_stage(channels, width, 5),
            _conv_stage(width, 2 * width, 5),
            _conv_stage(2 * width, 4 * width, 3),
            nn.Flatten(),
        )
        flat = 4 * width * (height // 8) * (width_px // 8)
        self.hidden = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, hidden)."""
        return self.hidden(self.trunk(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
