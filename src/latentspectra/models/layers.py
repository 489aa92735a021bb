"""Layer stacks shared by the networks: two stride-2 convolutions down (28 x 28 -> 7 x 7 for MNIST) and two
stride-2 transposed convolutions up, in the DCGAN style.

They return plain lists that the networks unpack into their own `nn.Sequential`, so that the parameter
names of the saved weights stay flat (``trunk.2.weight``, not ``trunk.0.2.weight``).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


class Configured(nn.Module):
    """A network that keeps in ``.config`` the keyword arguments that rebuild it (`models.build_model`), the
    image shape as a list, as JSON stores it."""

    def __init__(self, **config: Any):
        super().__init__()
        check_config(config)
        self.config: dict[str, Any] = {
            key: list(value) if key == "image_shape" else value for key, value in config.items()
        }


def is_size(value: Any) -> bool:
    """``value`` is a whole number >= 1 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_image_shape(value: Any) -> bool:
    """``value`` is (C, H, W): a list or tuple of three sizes (`is_size`)."""
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(map(is_size, value))


def check_config(config: dict[str, Any]) -> None:
    """Every size of a network's config a whole number >= 1 (``image_shape``: three of them, C, H, W), so that
    nothing is built from a zero, negative or non-numeric size.

    Raises:
        ValueError: naming the first entry that is not, and its value.
    """
    for key, value in config.items():
        if key == "image_shape":
            if not is_image_shape(value):
                raise ValueError(f"image_shape must be three whole numbers >= 1 (C, H, W), got {value!r}")
        elif not is_size(value):
            raise ValueError(f"{key} must be a whole number >= 1, got {value!r}")


class LatentNetwork(Configured):
    """A `Configured` network with a latent side of ``config["latent_dim"]`` = M components."""

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])


def check_image_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) as ints, with H and W divisible by 4 (the networks up- and downsample twice by 2)."""
    channels, height, width = image_shape
    if height % 4 or width % 4:
        raise ValueError(f"image_shape must have height and width divisible by 4, got {tuple(image_shape)}")
    return channels, height, width


def base_shape(width: int, height: int, width_px: int) -> tuple[int, int, int]:
    """(2 width, H / 4, W / 4): the feature map that `downsampling_layers` flattens and `upsampling_layers` starts
    from, for images of height H and width W (already checked by `check_image_shape`)."""
    return 2 * width, height // 4, width_px // 4


def base_size(width: int, height: int, width_px: int) -> int:
    """The number of values in `base_shape`: the length of the flat vector `downsampling_layers` returns."""
    return math.prod(base_shape(width, height, width_px))


def downsampling_layers(channels: int, width: int) -> list[nn.Module]:
    """(B, C, H, W) -> (B, 2 width (H / 4) (W / 4)): conv, LeakyReLU, conv, batch norm, LeakyReLU, flatten."""
    return [
        nn.Conv2d(channels, width, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
    ]


def upsampling_layers(width: int, channels: int) -> list[nn.Module]:
    """(B, 2 width, h, w) -> (B, C, 4 h, 4 w) in [-1, 1]: transposed conv, batch norm, ReLU, transposed conv,
    tanh."""
    return [
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        nn.Tanh(),
    ]
