"""A dataset held as float tensors in [-1, 1]: the whole of MNIST fits in 200 MB, no DataLoader needed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import ImageDataset, images_to_tensor


@dataclass(frozen=True)
class DatasetTensors:
    train_images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: ImageDataset) -> "DatasetTensors":
        return cls(
            train_images=images_to_tensor(dataset.train.images),
            train_labels=torch.from_numpy(dataset.train.labels),
            test_images=images_to_tensor(dataset.test.images),
            test_labels=torch.from_numpy(dataset.test.labels),
        )
