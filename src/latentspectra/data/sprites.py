"""``sprites``: binary images of a square, an ellipse or a heart, drawn by the package from known factors of
variation, so that directions in a latent space can be scored against the ground truth (docs/guide.md).

The factors are dSprites' (Matthey et al. 2017): shape (square, ellipse, heart), scale (linearly spaced in
[0.5, 1]), orientation (evenly spaced over a full turn), position x and y (linearly spaced in [0, 1]). Every
combination of the grid's values is drawn exactly once. The renderer is our own:

- Geometry, in pixels with x to the right and y down (rows): a sprite at positions (x, y) has its centroid at
  ``size / 2 + (x - 0.5) (positions - 1)`` (and the same in y), so neighbouring positions are one pixel apart;
  a sprite of scale s fits in a disc of radius ``s R`` with ``R = size / 2 - (positions - 1) / 2`` pixels (the
  room the farthest position leaves; no sprite is clipped). In units of ``s R``: the square has half-side
  ``1 / sqrt(2)``, the ellipse semi-axes 1 and 1/2 (the long one along x at orientation 0), the heart is a
  diamond of side ``d`` with a disc of diameter ``d`` on each of its two upper sides, shifted so that its
  centroid is the sprite's centre, with ``d`` the largest that keeps it in the unit disc (`HEART`).
- Orientation θ turns the sprite counterclockwise on the screen; at θ = 0 the heart's lobes point up.
- A pixel is 255 where its centre lies in the sprite, else 0 (binary, no anti-aliasing).
- Positions are whole pixels apart, so the renderer draws each (shape, scale, orientation) once on a canvas
  ``positions - 1`` pixels larger than the image and reads every position as a window of it (exact: a point-
  sampled shape shifted by whole pixels is the same shape sampled at the shifted centre).
- Train/test split: the images are ranked by a fixed integer hash of their index in the product (SplitMix64),
  which is the same on every machine and every numpy version; the first sixth are the test split, the rest the
  training split, both in that hashed order, so that any prefix of a split (compare encodes the first test
  images) is a sample of every factor. Labels are the shape (classes square, ellipse, heart); the factors are
  stored as their values (shape as its index 0, 1, 2; orientation in radians).

Deviations from dSprites: the orientations are ``2 pi k / n`` for k = 0..n-1 (dSprites' 40 values include both
0 and 2 pi, which draw the same image); the shapes are drawn from the geometry above, not dSprites' bitmaps;
and the grid `SPRITES` is a subset of dSprites' (below).

Size (measured: ``python benchmarks/bench_sprites.py``, AMD EPYC family 25 model 17, torch CPU capability
AVX512, 2 threads, an otherwise idle machine). dSprites' whole product (`DSPRITES_GRID`: 64 x 64, 32 x 32
positions, 737,280 images) draws in 7.7 s, but its pixels are 2.8 GiB as uint8 (peak memory 2.9 GiB), the
training split that training holds as float32 tensors is 9.4 GiB of these machines' 24 GiB, and `train all`'s
default epochs on it would take about 11 hours on 2 cores (65 times MNIST's 10 minutes, the rates of one
training step measured at 64 x 64). The dataset ``sprites`` (`SPRITES`) is therefore 32 x 32 with all 3
shapes, 6 scales and 40 orientations and 12 x 12 positions: 103,680 images, 0.1 GiB of uint8 pixels (0.33 GiB
for the float32 training split), drawn in 0.12 s, drawn and cached in 1.1 s (a 2.7 MiB file), read back and
checked in 0.25 s, `train all` about 19 minutes (1.9 times MNIST's). Why 12 positions and not 16: positions
one pixel apart leave the sprite a radius of ``size / 2 - (positions - 1) / 2`` pixels, 8.5 with 16, and the
smallest hearts (radius 4.25 pixels) at diagonal orientations then no longer show their orientation in their
moments (tests/test_sprites.py's orientation check, run on that grid, finds 1.6% of them off by more than a
pixel); with 12 (radius 10.5, smallest hearts
5.25) every image shows it to within a pixel, as at dSprites' 64 x 64.

Cache: rendered on first use into ``<cache>/datasets/<grid's file name>`` (`io.user_cache_dir`, which honours
$XDG_CACHE_HOME; or the ``root`` given), written atomically as an npz archive that `load_npz` reads like any
user's (images, labels, factors, names) plus the SHA-256 of those arrays (`io.arrays_digest`), which every load
checks: a damaged file is one `DataError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import arrays_digest, atomic_write, user_cache_dir
from .datasets import ImageDataset, Split
from .npz import FACTOR_NAMES_KEY, load_npz, read_npz_member

__all__ = [
    "DSPRITES_GRID",
    "FACTOR_NAMES",
    "SHAPES",
    "SPRITES",
    "SpritesGrid",
    "load_sprites",
    "render_sprites",
    "sprite_area",
]

SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "position_x", "position_y")
#: Changes whenever the renderer draws any image differently (it names the cached file).
RENDERER_VERSION = 1
#: One image in this many is held out as the test split.
TEST_SHARE = 6
CHECKSUM_KEY = "sha256"

SQUARE_HALF_SIDE = 1 / math.sqrt(2)
ELLIPSE_AXES = (1.0, 0.5)


@dataclass(frozen=True)
class HeartGeometry:
    """The heart in units of the sprite radius: a diamond of side ``side`` centred at (0, ``-centroid_y``)
    (y up) with a disc of diameter ``side`` on the middle of each of its two upper sides.

    Its area is ``side^2 (1 + pi / 4)`` (the diamond and the two half-discs outside it); its centroid, before
    the shift, lies ``centroid_y`` above the diamond's centre: the half-discs' share ``(pi / 4) / (1 + pi / 4)``
    of the area times the height of their centroid, ``side / (2 sqrt 2) + (2 side / (3 pi)) / sqrt 2``.
    """

    side: float
    centroid_y: float

    @classmethod
    def fitting_unit_disc(cls) -> HeartGeometry:
        """The largest heart whose farthest point (its tip or a lobe's rim) lies in the unit disc."""
        share = (math.pi / 4) / (1 + math.pi / 4)
        centroid = share * (1 / (2 * math.sqrt(2)) + 2 / (3 * math.pi * math.sqrt(2)))  # for side 1
        lobe = math.hypot(1 / (2 * math.sqrt(2)), 1 / (2 * math.sqrt(2)) - centroid) + 0.5
        tip = 1 / math.sqrt(2) + centroid
        side = 1 / max(lobe, tip)
        return cls(side=side, centroid_y=centroid * side)

    @property
    def area(self) -> float:
        return self.side**2 * (1 + math.pi / 4)


HEART = HeartGeometry.fitting_unit_disc()


def sprite_area(shape: int) -> float:
    """The area of ``shape`` (index into `SHAPES`) at radius 1; at scale s it is ``(s R)^2`` times this."""
    areas = (4 * SQUARE_HALF_SIDE**2, math.pi * ELLIPSE_AXES[0] * ELLIPSE_AXES[1], HEART.area)
    return areas[shape]


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) (units of the sprite radius, y up, the sprite unrotated) lie in ``shape``."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF_SIDE
    if shape == 1:
        return (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 <= 1.0
    half_diagonal = HEART.side / math.sqrt(2)
    v = v + HEART.centroid_y  # the diamond's centre sits centroid_y below the sprite's centre
    lobe_x, lobe_y, lobe_radius = half_diagonal / 2, half_diagonal / 2, HEART.side / 2
    diamond = np.abs(u) + np.abs(v) <= half_diagonal
    lobes = (np.abs(u) - lobe_x) ** 2 + (v - lobe_y) ** 2 <= lobe_radius**2
    return diamond | lobes


@dataclass(frozen=True)
class SpritesGrid:
    """The values each factor takes and the image size: ``scales`` values in [0.5, 1], ``orientations`` over a
    full turn, ``positions`` values in [0, 1] for x and y each, images ``size`` x ``size``.

    Positions are one pixel apart, so ``positions`` is at most ``size / 2`` (the sprite radius at scale 1 is
    then at least ``size / 4``).
    """

    size: int = 32
    scales: int = 6
    orientations: int = 40
    positions: int = 12

    def __post_init__(self) -> None:
        for name in ("size", "scales", "orientations", "positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                raise DataError(f"sprites grid: {name} must be an integer of at least 2, got {value!r}")
        if self.positions > self.size // 2:
            raise DataError(
                f"sprites grid: {self.positions} positions leave no room in {self.size} pixels; "
                f"expected at most {self.size // 2}"
            )

    @property
    def radius(self) -> float:
        """The sprite radius at scale 1, in pixels: the room the farthest position leaves to the border."""
        return self.size / 2 - (self.positions - 1) / 2

    @property
    def count(self) -> int:
        """Images in the product of the factors' values."""
        return len(SHAPES) * self.scales * self.orientations * self.positions**2

    @property
    def file_name(self) -> str:
        """The cached file's name: the renderer version and the grid."""
        return (
            f"sprites-v{RENDERER_VERSION}-{self.size}px-{self.scales}scales-{self.orientations}orientations-"
            f"{self.positions}positions.npz"
        )

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Each factor's values, in `FACTOR_NAMES` order (shape as its index)."""
        position = np.linspace(0.0, 1.0, self.positions)
        return (
            np.arange(len(SHAPES), dtype=np.float64),
            np.linspace(0.5, 1.0, self.scales),
            2 * np.pi * np.arange(self.orientations) / self.orientations,
            position,
            position.copy(),
        )

    def centre(self, position: float | np.ndarray) -> float | np.ndarray:
        """The pixel coordinate (from the image's edge, pixel centres at k + 0.5) of a sprite at ``position``."""
        return self.size / 2 + (position - 0.5) * (self.positions - 1)


#: The dataset ``sprites``: 32 x 32, 3 shapes, 6 scales, 40 orientations, 12 x 12 positions (103,680 images).
SPRITES = SpritesGrid()
#: dSprites' whole product: 64 x 64, 32 x 32 positions (737,280 images; too large for these machines' training).
DSPRITES_GRID = SpritesGrid(size=64, positions=32)


def _canvas(grid: SpritesGrid, shape: int, scale: float, orientation: float) -> np.ndarray:
    """The sprite drawn on a square canvas ``size + positions - 1`` pixels wide, centred where the image of
    position (0, 0) sees it from the window at the canvas' far corner: bool (side, side)."""
    side = grid.size + grid.positions - 1
    centre = grid.centre(0.0) + (grid.positions - 1)
    offsets = np.arange(side) + 0.5 - centre
    dx, dy_up = offsets[None, :], -offsets[:, None]
    cos, sin = math.cos(orientation), math.sin(orientation)
    radius = scale * grid.radius
    u = (cos * dx + sin * dy_up) / radius  # rotate back by the orientation (counterclockwise, y up)
    v = (-sin * dx + cos * dy_up) / radius
    return _inside(shape, u, v)


def _positioned(grid: SpritesGrid, canvas: np.ndarray) -> np.ndarray:
    """The images of every position (x major, y minor) of one sprite, read as windows of its canvas: image
    (x, y) is the window whose corner lies ``positions - 1 - k`` pixels in, k the position's index."""
    size = grid.size
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (size, size))  # (P, P, size, size): [row, col]
    return windows[::-1, ::-1].transpose(1, 0, 2, 3).reshape(-1, size, size)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 values (wrapping arithmetic): a fixed, well-mixed bijection."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_rows(count: int) -> tuple[np.ndarray, int]:
    """Where each image of the product goes: its row in the concatenation (test split, then training split),
    ranked by the SplitMix64 hash of its index; and how many rows the test split has (a sixth)."""
    order = np.argsort(_splitmix64(np.arange(count, dtype=np.uint64)), kind="stable")
    rows = np.empty(count, dtype=np.int64)
    rows[order] = np.arange(count)
    return rows, count // TEST_SHARE


def render_sprites(grid: SpritesGrid = SPRITES) -> ImageDataset:
    """Draw every combination of ``grid``'s factor values once and split them (module docstring); the
    dataset ``sprites`` with labels = shape and factors in `FACTOR_NAMES` order."""
    values = grid.factor_values()
    rows, test_count = split_rows(grid.count)
    images = np.empty((grid.count, 1, grid.size, grid.size), dtype=np.uint8)
    factors = np.empty((grid.count, len(FACTOR_NAMES)), dtype=np.float64)
    per_sprite = grid.positions**2
    position_x, position_y = np.meshgrid(values[3], values[4], indexing="ij")
    block = 0
    for shape in range(len(SHAPES)):
        for scale in values[1]:
            for orientation in values[2]:
                target = rows[block * per_sprite : (block + 1) * per_sprite]
                canvas = _canvas(grid, shape, float(scale), float(orientation))
                images[target, 0] = _positioned(grid, canvas) * np.uint8(255)
                factors[target] = np.column_stack(
                    [
                        np.full(per_sprite, shape),
                        np.full(per_sprite, scale),
                        np.full(per_sprite, orientation),
                        position_x.reshape(-1),
                        position_y.reshape(-1),
                    ]
                )
                block += 1
    labels = factors[:, 0].astype(np.int64)
    test, train = slice(0, test_count), slice(test_count, None)
    return ImageDataset(
        name="sprites",
        train=Split(images[train], labels[train], factors[train]),
        test=Split(images[test], labels[test], factors[test]),
        classes=SHAPES,
        factor_names=FACTOR_NAMES,
    )


def _stored_arrays(dataset: ImageDataset) -> dict[str, np.ndarray]:
    """The arrays of the cached file, as `load_npz` reads them back (the checksum is over these)."""
    assert dataset.train.factors is not None and dataset.test.factors is not None and dataset.factor_names
    return {
        "train_images": dataset.train.images,
        "train_labels": dataset.train.labels,
        "train_factors": dataset.train.factors,
        "test_images": dataset.test.images,
        "test_labels": dataset.test.labels,
        "test_factors": dataset.test.factors,
        "classes": np.array(dataset.classes),
        FACTOR_NAMES_KEY: np.array(dataset.factor_names),
    }


def _write_cache(path: Path, dataset: ImageDataset) -> None:
    arrays = _stored_arrays(dataset)
    arrays[CHECKSUM_KEY] = np.array([arrays_digest(arrays)])

    savez: Callable[..., None] = np.savez_compressed  # its stubs read an array named allow_pickle as the flag

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            savez(handle, **arrays)

    atomic_write(path, write)


def _read_cache(path: Path, grid: SpritesGrid) -> ImageDataset:
    """The cached sprites of ``path``, after checking that they are ``grid``'s and the SHA-256 of their arrays
    against the one stored."""
    dataset = replace(load_npz(path), name="sprites")
    held = (len(dataset.train) + len(dataset.test), dataset.shape, dataset.factor_names)
    if held != (grid.count, (1, grid.size, grid.size), FACTOR_NAMES):
        raise DataError(
            f"{path}: holds {held[0]} images of shape {held[1]} with factors {held[2]}, expected the sprites grid's "
            f"{grid.count} of shape {(1, grid.size, grid.size)} with factors {FACTOR_NAMES}; delete the file"
        )
    stored = read_npz_member(path, CHECKSUM_KEY)
    if stored.shape != (1,) or stored.dtype.kind != "U":
        raise DataError(f"{path}: {CHECKSUM_KEY!r} must hold one SHA-256 hex digest, got {stored.dtype}{stored.shape}")
    actual = arrays_digest(_stored_arrays(dataset))
    if actual != str(stored[0]):
        raise DataError(
            f"{path}: checksum mismatch: the arrays hash to {actual[:16]}..., the file records "
            f"{str(stored[0])[:16]}...; delete the file and the sprites are drawn again"
        )
    return dataset


def load_sprites(root: str | Path | None = None, grid: SpritesGrid = SPRITES) -> ImageDataset:
    """The sprites of ``grid``: read from the cache (``root``, default ``<user cache>/datasets``), else drawn
    and cached there first. Raises DataError naming the file if the cached one is damaged (checksum), and
    OutputError if it cannot be written."""
    directory = Path(root) if root is not None else user_cache_dir() / "datasets"
    path = directory / grid.file_name
    if path.is_file():
        return _read_cache(path, grid)
    dataset = render_sprites(grid)
    _write_cache(path, dataset)
    return dataset
