"""Datasets from an .npz file: train and test images and labels under any of the usual key names, and
optionally ground-truth factors (``train_factors``, ``test_factors``, ``factor_names``), read without
unpickling anything."""

from __future__ import annotations

import lzma
import math
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from ..errors import DataError
from .datasets import ImageDataset, Split, _check_holds_images, _check_labels, _default_classes, _describe
from .idx import check_fits_in_memory, reading

_NPZ_KEY_STYLES: tuple[tuple[str, str, str, str], ...] = (
    ("train_images", "train_labels", "test_images", "test_labels"),
    ("x_train", "y_train", "x_test", "y_test"),
)

#: The optional ground truth: one row of factors per image of each split, and the name of each column.
FACTOR_KEYS = ("train_factors", "test_factors")
FACTOR_NAMES_KEY = "factor_names"

_NPY_MAGIC = b"\x93NUMPY"
_MAX_DIMENSION = int(np.iinfo(np.intp).max)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# Besides corrupt zip or .npy data: zipfile raises RuntimeError for an encrypted member and its subclass
# NotImplementedError for a compression method or flag it does not support, LZMAError for a member that claims
# LZMA compression; numpy tokenizes a .npy header, and an unbalanced one ("{}(") escapes as TokenError.
_NPZ_READ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    tokenize.TokenError,
)


def _npz_images(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Validate one images array from an npz archive and return it as uint8 (N, C, H, W)."""
    where = f"{path}: {key!r}"
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[1] not in (1, 3):
            hint = "; it looks channels-last, transpose to (N, C, H, W)" if array.shape[3] in (1, 3) else ""
            raise DataError(f"{where}: shape {array.shape} has {array.shape[1]} channels, expected 1 or 3{hint}")
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
                raise DataError(f"{where}: float images must lie in [0, 1], found values in [{low:g}, {high:g}]")
        return np.rint(array.astype(np.float32) * 255.0).astype(np.uint8)
    if array.dtype.kind in "iu":
        if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
            raise DataError(f"{where}: integer images must lie in [0, 255]")
        return np.ascontiguousarray(array.astype(np.uint8))
    raise DataError(f"{where}: images have dtype {array.dtype}, expected uint8 or float in [0, 1]")


def _npz_labels(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Validate one labels array from an npz archive; it keeps its integer dtype until its range is checked
    (a cast first would wrap uint64 values above the int64 maximum into negative ones)."""
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataError(f"{path}: {key!r}: labels must be a 1-D integer array, got {_describe(array)}")
    return array


def _npz_strings(array: np.ndarray, path: Path, key: str) -> tuple[str, ...]:
    """A 1-D array of strings (unicode or UTF-8 bytes) as a tuple of str; DataError naming ``key`` otherwise."""
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise DataError(f"{path}: {key!r} must be a 1-D array of strings, got {_describe(array)}")
    try:
        return tuple(c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in array.tolist())
    except UnicodeDecodeError:
        raise DataError(f"{path}: {key!r} holds bytes that are not valid UTF-8") from None


def _npz_factors(array: np.ndarray, path: Path, key: str, count: int, images_key: str) -> np.ndarray:
    """Validate one split's factors: a finite real (N, F) array, F >= 1, one row per image; float64."""
    if array.ndim != 2 or array.dtype.kind not in "biuf" or array.shape[1] == 0:
        raise DataError(f"{path}: {key!r}: factors must be a real array (N, F) with F >= 1, got {_describe(array)}")
    if len(array) != count:
        raise DataError(f"{path}: {images_key!r} holds {count} images but {key!r} holds {len(array)} rows of factors")
    factors = array.astype(np.float64)
    if not np.isfinite(factors).all():
        raise DataError(f"{path}: {key!r}: factors contain NaN or infinite values")
    return factors


def _npz_factor_names(arrays: dict[str, np.ndarray], path: Path, width: int) -> tuple[str, ...]:
    """The names of the factors' ``width`` columns: ``factor_names`` (distinct, non-empty), else "0".."F-1"."""
    if FACTOR_NAMES_KEY not in arrays:
        return tuple(str(i) for i in range(width))
    names = _npz_strings(arrays[FACTOR_NAMES_KEY], path, FACTOR_NAMES_KEY)
    if len(names) != width:
        raise DataError(f"{path}: {FACTOR_NAMES_KEY!r} holds {len(names)} names but the factors have {width} columns")
    if not all(names) or len(set(names)) != len(names):
        raise DataError(f"{path}: {FACTOR_NAMES_KEY!r} must hold distinct non-empty names, got {list(names)}")
    return names


def _check_factor_keys(present: set[str], path: Path) -> None:
    """Raise DataError unless the archive holds both factor arrays or neither (and no names without them)."""
    held = [key for key in FACTOR_KEYS if key in present]
    if len(held) == 1:
        missing = next(key for key in FACTOR_KEYS if key not in present)
        raise DataError(f"{path}: holds {held[0]!r} but not {missing!r}; ground truth needs both splits' factors")
    if not held and FACTOR_NAMES_KEY in present:
        raise DataError(f"{path}: holds {FACTOR_NAMES_KEY!r} but no {' / '.join(FACTOR_KEYS)} arrays")


def _split_factors(
    arrays: dict[str, np.ndarray], path: Path, counts: dict[str, int], style: tuple[str, ...]
) -> dict[str, np.ndarray | None]:
    """Each split's checked factors (None for both when the archive has none); both have the same width."""
    if FACTOR_KEYS[0] not in arrays:
        return {"train": None, "test": None}
    images_keys = {"train": style[0], "test": style[2]}
    factors = {
        split: _npz_factors(arrays[f"{split}_factors"], path, f"{split}_factors", counts[split], images_keys[split])
        for split in ("train", "test")
    }
    if factors["train"].shape[1] != factors["test"].shape[1]:
        raise DataError(
            f"{path}: 'test_factors' has {factors['test'].shape[1]} columns but 'train_factors' has "
            f"{factors['train'].shape[1]}"
        )
    return dict(factors)


def _open_archive(handle: BinaryIO, path: Path) -> zipfile.ZipFile:
    """Open the zip archive of an .npz file; a plain .npy file or anything else that is not a zip is refused."""
    if handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
        raise DataError(f"{path}: holds a single .npy array, expected an .npz archive")
    handle.seek(0)
    try:
        return zipfile.ZipFile(handle)
    except _NPZ_READ_ERRORS as exc:
        raise DataError(f"{path}: not a readable .npz archive: {exc}") from None


def _npy_header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype the .npy header at the start of ``member`` declares (ValueError when it has none,
    or a dimension numpy cannot index)."""
    version = np.lib.format.read_magic(member)
    read_header = _NPY_HEADER_READERS.get(version)
    if read_header is None:
        raise ValueError(f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
    shape, _, dtype = read_header(member)
    if not all(0 <= dim <= _MAX_DIMENSION for dim in shape):
        raise ValueError(f".npy header declares shape {shape}, expected dimensions in [0, {_MAX_DIMENSION}]")
    return shape, dtype


def _read_member(archive: zipfile.ZipFile, name: str, path: Path, key: str) -> np.ndarray:
    """Read the array ``key`` stored as member ``name``, without unpickling; its header is read first and an
    array declaring more bytes than the memory available is refused before anything is allocated."""
    try:
        with archive.open(name) as member:
            shape, dtype = _npy_header(member)
        check_fits_in_memory(math.prod(shape) * dtype.itemsize, f"{path}: {key!r} ({dtype}{shape})")
        with archive.open(name) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except DataError:
        raise
    except _NPZ_READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read array {key!r}: {exc}") from None


def _read_npz_arrays(handle: BinaryIO, path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read the split arrays (and the optional ``classes`` and factor arrays) of an open npz file, without
    unpickling."""
    with _open_archive(handle, path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        present = set(members)
        style = next((s for s in _NPZ_KEY_STYLES if set(s) <= present), None)
        if style is None:
            best = max(_NPZ_KEY_STYLES, key=lambda s: len(present & set(s)))
            missing = ", ".join(k for k in best if k not in present)
            found = ", ".join(sorted(present)) or "none"
            raise DataError(
                f"{path}: missing key(s) {missing}; expected "
                f"{' / '.join(', '.join(s) for s in _NPZ_KEY_STYLES)} (found: {found})"
            )
        _check_factor_keys(present, path)
        optional = ("classes", *FACTOR_KEYS, FACTOR_NAMES_KEY)
        keys = style + tuple(key for key in optional if key in present)
        return {key: _read_member(archive, members[key], path, key) for key in keys}, style


def read_npz_member(path: Path, key: str) -> np.ndarray:
    """The one array ``key`` of the npz file ``path``, read as `load_npz` reads its arrays (never unpickled);
    DataError naming the file when it is unreadable or has no such array."""
    with reading(path, "an .npz file"), open(path, "rb") as handle, _open_archive(handle, path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        if key not in members:
            raise DataError(f"{path}: missing array {key!r}")
        return _read_member(archive, members[key], path, key)


def load_npz(path: str | Path) -> ImageDataset:
    """Load a dataset from an ``.npz`` archive (never unpickles: ``allow_pickle=False``).

    Keys are either ``train_images, train_labels, test_images, test_labels`` or the
    Keras style ``x_train, y_train, x_test, y_test``, plus an optional 1-D string
    array ``classes``, and optional ground truth: ``train_factors`` and
    ``test_factors`` (N, F) real arrays, one row per image of their split, finite,
    read as float64, with an optional 1-D string array ``factor_names`` of F
    distinct names (default "0".."F-1"); the loaded splits' ``factors`` are None
    without them.  Images are ``(N, H, W)`` or ``(N, C, H, W)`` with C in {1, 3};
    uint8, integers in [0, 255], or floats in [0, 1] (scaled to uint8).  Labels are
    1-D integers.  Validates that both splits hold images, counts per split, equal
    image shapes across splits and labels in ``[0, len(classes))``.  Without
    ``classes`` the labels must be 0..K-1 with K at most ``datasets.MAX_CLASSES`` (65,536;
    the class names are then "0".."K-1"); a larger label is refused with a
    suggestion to add ``classes``.  Each array's .npy header is read first: one
    declaring more bytes than the memory available is refused before it is read.
    Unreadable, corrupt or pickled (object) contents raise :class:`DataError`.
    """
    path = Path(path)
    with reading(path, "an .npz file"), open(path, "rb") as handle:
        arrays, style = _read_npz_arrays(handle, path)

    train_img_key, train_lab_key, test_img_key, test_lab_key = style
    parts = {}
    for split_name, img_key, lab_key in (
        ("train", train_img_key, train_lab_key),
        ("test", test_img_key, test_lab_key),
    ):
        images = _npz_images(arrays[img_key], path, img_key)
        _check_holds_images(images, split_name, f"{path}: {img_key!r}")
        labels = _npz_labels(arrays[lab_key], path, lab_key)
        if len(images) != len(labels):
            raise DataError(
                f"{path}: {img_key!r} holds {len(images)} images but {lab_key!r} holds {len(labels)} labels"
            )
        parts[split_name] = (images, labels)
    factors = _split_factors(arrays, path, {name: len(images) for name, (images, _) in parts.items()}, style)
    if parts["train"][0].shape[1:] != parts["test"][0].shape[1:]:
        raise DataError(
            f"{path}: {test_img_key!r} images are {parts['test'][0].shape[1:]} (C, H, W) but "
            f"{train_img_key!r} images are {parts['train'][0].shape[1:]}"
        )

    if "classes" in arrays:
        classes = _npz_strings(arrays["classes"], path, "classes")
    else:
        classes = _default_classes(
            (f"{path}: {train_lab_key!r}", parts["train"][1]), (f"{path}: {test_lab_key!r}", parts["test"][1])
        )
    _check_labels(parts["train"][1], len(classes), f"{path}: {train_lab_key!r}")
    _check_labels(parts["test"][1], len(classes), f"{path}: {test_lab_key!r}")

    return ImageDataset(
        name=path.stem,
        train=Split(parts["train"][0], parts["train"][1].astype(np.int64), factors["train"]),
        test=Split(parts["test"][0], parts["test"][1].astype(np.int64), factors["test"]),
        classes=classes,
        factor_names=None if factors["train"] is None else _npz_factor_names(arrays, path, factors["train"].shape[1]),
    )


# --------------------------------------------------------------------------- named datasets
