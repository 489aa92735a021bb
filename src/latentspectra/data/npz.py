"""Datasets from an .npz file: train and test images and labels under any of the usual key names, read
without unpickling anything."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError
from .datasets import ImageDataset, Split, _check_labels, _default_classes, _describe
from .idx import reading

_NPZ_KEY_STYLES: tuple[tuple[str, str, str, str], ...] = (
    ("train_images", "train_labels", "test_images", "test_labels"),
    ("x_train", "y_train", "x_test", "y_test"),
)

_NPZ_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _npz_images(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Validate one images array from an npz archive and return it as uint8 (N, C, H, W)."""
    where = f"{path}: {key!r}"
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[1] not in (1, 3):
            hint = "; it looks channels-last, transpose to (N, C, H, W)" if array.shape[3] in (1, 3) else ""
            raise DataError(
                f"{where}: shape {array.shape} has {array.shape[1]} channels, expected 1 or 3{hint}"
            )
    else:
        raise DataError(f"{where}: images must have shape (N, H, W) or (N, C, H, W), got {array.shape}")

    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":
        if array.size:
            if not np.isfinite(array).all():
                raise DataError(f"{where}: float images contain NaN or infinite values")
            low, high = float(array.min()), float(array.max())
            if low < 0.0 or high > 1.0:
                raise DataError(
                    f"{where}: float images must lie in [0, 1], found values in [{low:g}, {high:g}]"
                )
        return np.rint(array.astype(np.float32) * 255.0).astype(np.uint8)
    if array.dtype.kind in "iu":
        if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
            raise DataError(f"{where}: integer images must lie in [0, 255]")
        return np.ascontiguousarray(array.astype(np.uint8))
    raise DataError(f"{where}: images have dtype {array.dtype}, expected uint8 or float in [0, 1]")


def _npz_labels(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataError(f"{path}: {key!r}: labels must be a 1-D integer array, got {_describe(array)}")
    return array.astype(np.int64)


def _npz_classes(array: np.ndarray, path: Path) -> tuple[str, ...]:
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise DataError(f"{path}: 'classes' must be a 1-D array of strings, got {_describe(array)}")
    try:
        return tuple(c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in array.tolist())
    except UnicodeDecodeError:
        raise DataError(f"{path}: 'classes' holds bytes that are not valid UTF-8") from None


def _read_npz_arrays(handle: BinaryIO, path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read the split arrays (and optional ``classes``) of an open npz file, without unpickling."""
    try:
        archive = np.load(handle, allow_pickle=False)
    except _NPZ_READ_ERRORS as exc:
        raise DataError(f"{path}: not a readable .npz archive: {exc}") from None
    if isinstance(archive, np.ndarray):
        raise DataError(f"{path}: holds a single .npy array, expected an .npz archive")
    with archive:
        present = set(archive.files)
        style = next((s for s in _NPZ_KEY_STYLES if set(s) <= present), None)
        if style is None:
            best = max(_NPZ_KEY_STYLES, key=lambda s: len(present & set(s)))
            missing = ", ".join(k for k in best if k not in present)
            found = ", ".join(sorted(present)) or "none"
            raise DataError(
                f"{path}: missing key(s) {missing}; expected "
                f"{' / '.join(', '.join(s) for s in _NPZ_KEY_STYLES)} (found: {found})"
            )
        arrays: dict[str, np.ndarray] = {}
        for key in style + (("classes",) if "classes" in present else ()):
            try:
                arrays[key] = archive[key]
            except _NPZ_READ_ERRORS as exc:
                raise DataError(f"{path}: cannot read array {key!r}: {exc}") from None
    return arrays, style


def load_npz(path: str | Path) -> ImageDataset:
    """Load a dataset from an ``.npz`` archive (never unpickles: ``allow_pickle=False``).

    Keys are either ``train_images, train_labels, test_images, test_labels`` or the
    Keras style ``x_train, y_train, x_test, y_test``, plus an optional 1-D string
    array ``classes``.  Images are ``(N, H, W)`` or ``(N, C, H, W)`` with C in {1, 3};
    uint8, integers in [0, 255], or floats in [0, 1] (scaled to uint8).  Labels are
    1-D integers.  Validates counts per split, equal image shapes across splits and
    labels in ``[0, len(classes))`` (without ``classes``: "0".."max label").
    Unreadable, corrupt or pickled (object) contents raise :class:`DataError`.
    """
    path = Path(path)
    # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
    with reading(path, "an .npz file"), open(path, "rb") as handle:
        arrays, style = _read_npz_arrays(handle, path)

    train_img_key, train_lab_key, test_img_key, test_lab_key = style
    parts = {}
    for split_name, img_key, lab_key in (
        ("train", train_img_key, train_lab_key),
        ("test", test_img_key, test_lab_key),
    ):
        images = _npz_images(arrays[img_key], path, img_key)
        labels = _npz_labels(arrays[lab_key], path, lab_key)
        if len(images) != len(labels):
            raise DataError(
                f"{path}: {img_key!r} holds {len(images)} images but {lab_key!r} holds {len(labels)} labels"
            )
        parts[split_name] = (images, labels)
    if parts["train"][0].shape[1:] != parts["test"][0].shape[1:]:
        raise DataError(
            f"{path}: {test_img_key!r} images are {parts['test'][0].shape[1:]} (C, H, W) but "
            f"{train_img_key!r} images are {parts['train'][0].shape[1:]}"
        )

    if "classes" in arrays:
        classes = _npz_classes(arrays["classes"], path)
    else:
        classes = _default_classes(parts["train"][1], parts["test"][1])
    _check_labels(parts["train"][1], len(classes), f"{path}: {train_lab_key!r}")
    _check_labels(parts["test"][1], len(classes), f"{path}: {test_lab_key!r}")

    return ImageDataset(
        name=path.stem,
        train=Split(*parts["train"]),
        test=Split(*parts["test"]),
        classes=classes,
    )


# --------------------------------------------------------------------------- named datasets
