"""Image datasets: the :class:`Split` / :class:`ImageDataset` containers, the loader of a directory of four
IDX files (:func:`load_idx_dir`) and the tensor form the networks take. An ``.npz`` archive loads in
npz.py, a dataset by name in catalog.py, the rendered ``sprites`` in sprites.py (the one dataset cached on
disk). Every loader checks its input and raises :class:`DataError` with one line naming the offending file.

A dataset may carry ground-truth factors of variation: per split a float64 array ``factors`` (N, F), and the
dataset's ``factor_names`` (F names); both are None where the dataset has none (MNIST, an npz without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .idx import read_idx

if TYPE_CHECKING:
    import torch

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV",
    "MAX_CLASSES",
    "MAX_LISTED_FACTOR_VALUES",
    "MNIST_CLASSES",
    "ImageDataset",
    "Split",
    "images_to_tensor",
    "load_idx_dir",
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


#: The most classes a dataset may have without class names: its labels must then be 0..K-1 with K at most this.
MAX_CLASSES = 65_536

_SPLIT_WORDS = {"train": "training", "test": "test"}


def _default_classes(*labelled: tuple[object, np.ndarray]) -> tuple[str, ...]:
    """Class names "0".."max" covering every label of the (source, labels) pairs given.

    Raises DataError naming the source of a label above ``MAX_CLASSES - 1`` (the labels are compared in their
    own dtype, so the message shows the real value).
    """
    top = -1
    for source, labels in labelled:
        largest = int(labels.max()) if labels.size else -1
        if largest >= MAX_CLASSES:
            raise DataError(
                f"{source}: largest label {largest} exceeds {MAX_CLASSES - 1}, expected labels 0..K-1 with "
                f"K <= {MAX_CLASSES} classes, or a 'classes' array naming them"
            )
        top = max(top, largest)
    return tuple(str(i) for i in range(top + 1))


def _check_holds_images(images: np.ndarray, split_name: str, source: object) -> None:
    """Raise DataError (prefixed with ``source``) when the ``split_name`` images are none or have no pixels."""
    if len(images) == 0:
        raise DataError(f"{source}: holds no {_SPLIT_WORDS[split_name]} images, expected at least one")
    if images[0].size == 0:
        raise DataError(f"{source}: images of shape {images.shape[1:]} hold no pixels, expected at least one")


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """One split of a dataset: uint8 images ``(N, C, H, W)``, int64 labels ``(N,)`` and, where the dataset
    has ground truth, finite float64 factors ``(N, F)`` (else None).

    The constructor checks dtypes, dimensionality, finiteness and that all hold N items.
    (``eq=False``: arrays have no single truth value, so splits compare by identity.)
    """

    images: np.ndarray
    labels: np.ndarray
    factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        images, labels, factors = self.images, self.labels, self.factors
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"Split: images must be a uint8 array (N, C, H, W), got {_describe(images)}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise DataError(f"Split: labels must be an int64 array (N,), got {_describe(labels)}")
        if len(images) != len(labels):
            raise DataError(f"Split: {len(images)} images but {len(labels)} labels")
        if factors is None:
            return
        if not isinstance(factors, np.ndarray) or factors.dtype != np.float64 or factors.ndim != 2:
            raise DataError(f"Split: factors must be a float64 array (N, F), got {_describe(factors)}")
        if len(factors) != len(images):
            raise DataError(f"Split: {len(images)} images but {len(factors)} rows of factors")
        if not np.isfinite(factors).all():
            raise DataError("Split: factors contain NaN or infinite values")

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
    label indexes into ``classes``. ``factor_names`` names the columns of both splits'
    ``factors`` (distinct non-empty strings, stored as a tuple); it is None exactly
    when neither split has factors.
    """

    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]
    factor_names: tuple[str, ...] | None = None

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
        self._check_factors()

    def _check_factors(self) -> None:
        """Raise DataError unless ``factor_names`` names the columns of both splits' factors, or all are None."""
        where = f"ImageDataset {self.name!r}"
        if self.factor_names is None:
            if self.train.factors is not None or self.test.factors is not None:
                raise DataError(f"{where}: splits have factors but the dataset has no factor_names")
            return
        names = tuple(self.factor_names)
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise DataError(f"{where}: factor_names must be distinct non-empty strings, got {names!r}")
        object.__setattr__(self, "factor_names", names)
        for split_name, split in (("train", self.train), ("test", self.test)):
            width = None if split.factors is None else split.factors.shape[1]
            if width != len(names):
                raise DataError(f"{where} {split_name}: factors have {width} columns, expected {len(names)} named")

    @property
    def has_factors(self) -> bool:
        """Whether both splits carry ground-truth factors (then ``factor_names`` names their columns)."""
        return self.factor_names is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(C, H, W)``."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def info(self) -> dict:
        """JSON-ready summary: name, split sizes, shape, classes and per-class label counts; where the dataset
        has factors, ``factors`` too: per factor its name, its count of distinct values, their range, and the
        values themselves when there are at most `MAX_LISTED_FACTOR_VALUES`."""
        n = len(self.classes)
        info = {
            "name": self.name,
            "train": len(self.train),
            "test": len(self.test),
            "shape": list(self.shape),
            "classes": list(self.classes),
            "num_classes": n,
            "train_counts": np.bincount(self.train.labels, minlength=n).tolist(),
            "test_counts": np.bincount(self.test.labels, minlength=n).tolist(),
        }
        if self.factor_names is not None and self.train.factors is not None and self.test.factors is not None:
            both = np.concatenate([self.train.factors, self.test.factors])
            info["factors"] = [_factor_info(name, column) for name, column in zip(self.factor_names, both.T)]
        return info

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"shape={self.shape}, num_classes={len(self.classes)})"
        )


#: The most distinct values of a factor that `ImageDataset.info` lists (a factor with more shows its range).
MAX_LISTED_FACTOR_VALUES = 64


def _factor_info(name: str, column: np.ndarray) -> dict:
    """One factor's entry of `ImageDataset.info`: name, count of distinct values, range, values if few."""
    values = np.unique(column)
    entry: dict = {"name": name, "distinct": len(values), "min": float(values[0]), "max": float(values[-1])}
    if len(values) <= MAX_LISTED_FACTOR_VALUES:
        entry["values"] = values.tolist()
    return entry


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
    same size, both splits hold images, and labels lie in ``[0, len(classes))``.
    Without ``classes`` the names are "0".."max label".  ``name`` defaults to the
    directory name.
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
            raise DataError(f"{image_path}: expected 3-D images (N, H, W), header declares shape {images.shape}")
        if labels.ndim != 1:
            raise DataError(f"{label_path}: expected 1-D labels (N,), header declares shape {labels.shape}")
        _check_holds_images(images, split_name, image_path)
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
        classes = _default_classes(*((label_path, labels) for _, labels, _, label_path in loaded.values()))
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
