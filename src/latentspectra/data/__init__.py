"""Datasets for latentspectra: IDX / npz loading, the bundled MNIST and downloads."""

from .datasets import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    ImageDataset,
    Split,
    available_datasets,
    images_to_tensor,
    load_dataset,
    load_idx_dir,
    load_npz,
)
from .download import download_dataset
from .idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "ImageDataset",
    "Split",
    "available_datasets",
    "download_dataset",
    "images_to_tensor",
    "load_dataset",
    "load_idx_dir",
    "load_npz",
    "read_idx",
]
