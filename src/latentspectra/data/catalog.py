"""The datasets by name (``mnist``, ``fashion-mnist``, ``sprites``, ``idx:DIR``, ``npz:FILE``) and where each is
read from."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from .datasets import (
    BUNDLED_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DEFAULT_DIR,
    FASHION_MNIST_ENV,
    MNIST_CLASSES,
    ImageDataset,
    load_idx_dir,
)
from .npz import load_npz
from .sprites import load_sprites


def fashion_mnist_dir(root: str | Path | None = None) -> Path:
    """Where Fashion-MNIST is looked up: ``root``, else $LATENTSPECTRA_FASHION_MNIST, else the Debian path."""
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DEFAULT_DIR


def _load_mnist(root: str | Path | None) -> ImageDataset:
    directory = Path(root) if root is not None else BUNDLED_MNIST_DIR
    return load_idx_dir(directory, name="mnist", classes=MNIST_CLASSES)


def _load_fashion_mnist(root: str | Path | None) -> ImageDataset:
    directory = fashion_mnist_dir(root)
    if not directory.is_dir():
        raise DataError(
            f"{directory}: Fashion-MNIST directory not found; pass a root, set {FASHION_MNIST_ENV}, "
            "install the Debian package dataset-fashion-mnist, or fetch it with download_dataset"
        )
    return load_idx_dir(directory, name="fashion-mnist", classes=FASHION_MNIST_CLASSES)


_REGISTRY: dict[str, Callable[[str | Path | None], ImageDataset]] = {
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "sprites": load_sprites,
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (besides the ``idx:PATH`` and ``npz:PATH`` forms)."""
    return sorted(_REGISTRY)


def load_dataset(spec: str, root: str | Path | None = None) -> ImageDataset:
    """Load a dataset from a spec string.

    ``"mnist"``: the copy bundled with the package; ``"fashion-mnist"``: the IDX
    directory given by ``root``, $LATENTSPECTRA_FASHION_MNIST, or
    ``/usr/share/datasets/fashion-mnist`` (Debian package dataset-fashion-mnist);
    ``"sprites"``: drawn by the package (data/sprites.py), cached under ``root`` or
    the user's cache directory;
    ``"idx:DIR"``: :func:`load_idx_dir`; ``"npz:FILE"``: :func:`load_npz`.
    ``root`` overrides the directory of a named dataset and is ignored for the
    ``idx:``/``npz:`` forms.  An unknown spec raises :class:`DataError` listing the
    accepted forms.
    """
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("idx", "npz"):
        if not rest:
            raise DataError(f"dataset spec {spec!r}: missing path after '{kind}:'")
        path = Path(rest).expanduser()
        return load_idx_dir(path) if kind == "idx" else load_npz(path)
    loader = _REGISTRY.get(spec.strip().lower())
    if loader is None:
        names = ", ".join(available_datasets())
        raise DataError(f"unknown dataset {spec!r}: expected one of {names}, 'idx:DIR' or 'npz:FILE'")
    return loader(root)
