"""What every study shares: timing its stages, the networks' batched calls on latents, and images for the
figures. Imports no study and nothing of training."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import images_to_tensor
from ..distributed import SINGLE, World, batched, gathered_batched
from .networks import Networks


@dataclass
class Timer:
    """Seconds per named stage, summed over every time the stage runs (once per seed, say)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


def to_unit_images(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] on any device -> float32 numpy in [0, 1] for the figures: (N, H, W) for
    grey images, (N, C, H, W) for colour ones."""
    unit = (images.detach().float().clamp(-1, 1) + 1) / 2
    return (unit[:, 0] if unit.shape[1] == 1 else unit).cpu().numpy()


def decode(networks: Networks, z: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """G(z) in batches (default: the networks' batch size), on the networks' device."""
    generator = networks.generator
    assert generator is not None  # the caller's `require` checked it
    return batched(lambda chunk: generator(chunk.float()), z, batch_size or networks.batch_size)


def predict(networks: Networks, z: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """argmax C(G(z)) in batches (default: the networks' batch size), on the networks' device."""
    return batched(networks.decode_classify, z, batch_size or networks.batch_size)


def predicted_labels(networks: Networks, z: torch.Tensor, world: World = SINGLE) -> torch.Tensor:
    """argmax C(G(z)) in the networks' batches dealt over the ranks of ``world`` and gathered in row order
    (`gathered_batched`: the same labels whatever the number of ranks); (N,) on the CPU."""
    return gathered_batched(networks.decode_classify, z, world, networks.batch_size)


def encoder_means(
    networks: Networks, images: np.ndarray, world: World = SINGLE, progress: bool = False, desc: str = "encoding"
) -> torch.Tensor:
    """mu(x), the encoder's mean code of each uint8 image (N, C, H, W), in the networks' batches dealt over the
    ranks of ``world`` and gathered in row order (`gathered_batched`); (N, M) on the CPU. The progress bar counts
    this rank's batches."""
    encoder = networks.encoder
    assert encoder is not None  # the caller's `require` checked it
    batches = -(-len(images) // networks.batch_size)
    with tqdm(total=len(range(world.rank, batches, world.size)), desc=desc, disable=not progress) as bar:

        def encode(chunk: torch.Tensor) -> torch.Tensor:
            bar.update()
            return encoder.encode_mean(chunk)

        return gathered_batched(encode, images_to_tensor(images), world, networks.batch_size)
