"""Datasets for latentspectra: IDX / npz loading, the bundled MNIST, the rendered sprites and downloads."""

from .catalog import available_datasets, load_dataset
from .datasets import FASHION_MNIST_CLASSES, MNIST_CLASSES, ImageDataset, Split, images_to_tensor, load_idx_dir
from .download import download_dataset
from .idx import read_idx
from .npz import load_npz
from .sprites import SPRITES, SpritesGrid, load_sprites, render_sprites

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "SPRITES",
    "ImageDataset",
    "Split",
    "SpritesGrid",
    "available_datasets",
    "download_dataset",
    "images_to_tensor",
    "load_dataset",
    "load_idx_dir",
    "load_npz",
    "load_sprites",
    "read_idx",
    "render_sprites",
]
