"""Image datasets: the :class:`Split` / :class:`ImageDataset` containers and their loaders.

Datasets come from a directory of four IDX files (:func:`load_idx_dir`), from an
``.npz`` archive (:func:`load_npz`), or by name through :func:`load_dataset`
("mnist" is bundled with the package; "fashion-mnist" is looked up on disk).
Every loader checks its input and raises :class:`DataError` with one line naming
the offending file; nothing is cached on disk.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..errors import DataError
from .idx import read_idx

if TYPE_CHECKING:
    import torch

__all__ = [
    "Split",
    "ImageDataset",
    "load_idx_dir",
    "load_npz",
    "load_dataset",
    "available_datasets",
    "images_to_tensor",
    "fashion_mnist_dir",
    "MNIST_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV",
]

MNIST_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Environment variable naming a Fashion-MNIST directory (overrides the Debian location).
FASHION_MNIST_ENV = "LATENTSPECTRA_FASHION_MNIST"
FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
BUNDLED_MNIST_DIR = Path(__file__).resolve().parent / "mnist"

#: Canonical IDX file names (without ``.gz``) per split: (images, labels).
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _check_labels(labels: np.ndarray, num_classes: int, source: object) -> None:
    """Raise DataError (prefixed with ``source``) unless all labels lie in [0, num_classes)."""
    if labels.size == 0:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DataError(
            f"{source}: label {int(labels[bad][0])} out of range [0, {num_classes}) "
            f"({int(bad.sum())} of {labels.size} labels out of range)"
        )


def _default_classes(*label_arrays: np.ndarray) -> tuple[str, ...]:
    """Class names "0".."max" covering every label present."""
    top = max((int(a.max()) for a in label_arrays if a.size), default=-1)
    return tuple(str(i) for i in range(top + 1))


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """One split of a dataset: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``.

    The constructor checks dtypes, dimensionality and that both hold N items.
    (``eq=False``: arrays have no single truth value, so splits compare by identity.)
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"Split: images must be a uint8 array (N, C, H, W), got {_describe(images)}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise DataError(f"Split: labels must be an int64 array (N,), got {_describe(labels)}")
        if len(images) != len(labels):
            raise DataError(f"Split: {len(images)} images but {len(labels)} labels")

    def __len__(self) -> int:
        """Number of examples."""
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, images={_describe(self.images)})"


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """A named dataset with train and test splits and class names in label order.

    The constructor checks that both splits have the same image shape ``(C, H, W)``,
    that ``classes`` is a sequence of strings (stored as a tuple) and that every
    label indexes into ``classes``.
    """

    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        if not all(isinstance(c, str) for c in classes):
            raise DataError(f"ImageDataset {self.name!r}: class names must be strings")
        object.__setattr__(self, "classes", classes)
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise DataError(
                f"ImageDataset {self.name!r}: train images {self.train.images.shape[1:]} and "
                f"test images {self.test.images.shape[1:]} differ in (C, H, W)"
            )
        for split_name, split in (("train", self.train), ("test", self.test)):
            _check_labels(split.labels, len(classes), f"ImageDataset {self.name!r} {split_name}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(C, H, W)``."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def info(self) -> dict:
        """JSON-ready summary: name, split sizes, shape, classes and per-class label counts."""
        n = len(self.classes)
        return {
            "name": self.name,
            "train": len(self.train),
            "test": len(self.test),
            "shape": list(self.shape),
            "classes": list(self.classes),
            "num_classes": n,
            "train_counts": np.bincount(self.train.labels, minlength=n).tolist(),
            "test_counts": np.bincount(self.test.labels, minlength=n).tolist(),
        }

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"shape={self.shape}, num_classes={len(self.classes)})"
        )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{tuple(value.shape)}"
    return type(value).__name__


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """Convert uint8 images to a float32 tensor in [-1, 1] (``x / 127.5 - 1``), same shape.

    Raises TypeError unless ``images`` is a uint8 array. The result owns its memory.
    """
    import torch  # deferred: importing torch is slow and the loaders do not need it

    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(f"images_to_tensor expects a uint8 numpy array, got {_describe(images)}")
    tensor = torch.from_numpy(images.astype(np.float32))
    return tensor.div_(127.5).sub_(1.0)


# --------------------------------------------------------------------------- IDX directories


def _find_idx_file(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory / (stem + '.gz')}: file not found (nor uncompressed {stem})")


def load_idx_dir(
    directory: str | Path,
    name: str | None = None,
    classes: tuple[str, ...] | None = None,
) -> ImageDataset:
    """Load a dataset from a directory holding the four canonical MNIST-style IDX files.

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either with
    ``.gz`` or uncompressed.  Besides the per-file checks of :func:`read_idx` it
    validates that images are 3-D ``(N, H, W)`` (a channel axis is added), labels
    1-D, image and label counts agree per split, train and test images have the
    same size, and labels lie in ``[0, len(classes))``.  Without ``classes`` the
    names are "0".."max label".  ``name`` defaults to the directory name.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: dataset directory not found")

    loaded: dict[str, tuple[np.ndarray, np.ndarray, Path, Path]] = {}
    for split_name, (image_stem, label_stem) in IDX_FILES.items():
        image_path = _find_idx_file(directory, image_stem)
        label_path = _find_idx_file(directory, label_stem)
        images = read_idx(image_path)
        labels = read_idx(label_path)
        if images.ndim != 3:
            raise DataError(
                f"{image_path}: expected 3-D images (N, H, W), header declares shape {images.shape}"
            )
        if labels.ndim != 1:
            raise DataError(f"{label_path}: expected 1-D labels (N,), header declares shape {labels.shape}")
        if len(images) != len(labels):
            raise DataError(
                f"{label_path}: holds {len(labels)} labels but {image_path.name} holds {len(images)} images"
            )
        loaded[split_name] = (images, labels.astype(np.int64), image_path, label_path)

    train_images, _, train_image_path, _ = loaded["train"]
    test_images, _, test_image_path, _ = loaded["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{test_image_path}: images are {test_images.shape[1:]} (H, W) but "
            f"{train_image_path.name} images are {train_images.shape[1:]}"
        )

    if classes is None:
        classes = _default_classes(loaded["train"][1], loaded["test"][1])
    for _, labels, _, label_path in loaded.values():
        _check_labels(labels, len(classes), label_path)

    splits = {k: Split(images[:, None], labels) for k, (images, labels, _, _) in loaded.items()}
    return ImageDataset(
        name=name if name is not None else directory.resolve().name,
        train=splits["train"],
        test=splits["test"],
        classes=tuple(classes),
    )


# --------------------------------------------------------------------------- npz archives

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
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(path, "rb") as handle:
            arrays, style = _read_npz_arrays(handle, path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an .npz file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from None

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
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (besides the ``idx:PATH`` and ``npz:PATH`` forms)."""
    return sorted(_REGISTRY)


def load_dataset(spec: str, root: str | Path | None = None) -> ImageDataset:
    """Load a dataset from a spec string.

    ``"mnist"``: the copy bundled with the package; ``"fashion-mnist"``: the IDX
    directory given by ``root``, $LATENTSPECTRA_FASHION_MNIST, or
    ``/usr/share/datasets/fashion-mnist`` (Debian package dataset-fashion-mnist);
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
