"""Morpho-MNIST morphometry: area, length, thickness, slant, width and height of digit images.

Castro, Tan, Kainz, Konukoglu & Glocker, "Morpho-MNIST: Quantitative Assessment and Diagnostics for
Representation Learning", JMLR 20(178), 2019, Sec. 2-3 (the processing pipeline and the measurements);
the authors' code is github.com/dccastro/Morpho-MNIST (``morphomnist/morpho.py``,
``measure.py``), which fixes the details the paper leaves open, and which is followed here. The pipeline, per
image:

1. upscale x4 (bicubic, then a Gaussian of sigma = 2 x 4 / 6 pixels, as `skimage.transform.pyramid_expand`
   does, the authors' choice, for sub-pixel skeletons and distances);
2. binarise at the middle of the upscaled image's own range, min + 0.5 (max - min) (their relative threshold);
3. the medial axis of the binary digit (`skimage.morphology.medial_axis` with rng=42, as theirs) and its
   Euclidean distance transform;
4. measure, converted back to the original pixel units:
   - area: the number of digit pixels / 4^2;
   - length: the skeleton's arc length (1 per horizontal or vertical link between skeleton pixels,
     sqrt(2) per diagonal one) / 4;
   - thickness: 2 x the mean distance-transform value on the skeleton / 4 (the mean stroke diameter);
   - slant: arctan(-u11 / u02) of the upscaled image's second-order central moments (x the column,
     y the row, counted downwards), in radians; positive when the digit leans right (top to the right);
   - width and height: the extents of the bounding parallelogram that shares the slant and leaves out
     1 % of the ink mass on either side along each direction (2 % per direction in all).

Measured against a port of their code (tests/test_faithful_morpho.py): on floating-point digits every measure of
every digit is theirs up to rounding (1e-13), the skeletons pixel for pixel; on the first 150 MNIST test digits
as their code reads them (8 bits, below) the means differ by +0.49 % (width), +0.22 % (height) and under 0.1 %
(area, length, thickness; slant relative to its mean magnitude). With a fixed threshold at half intensity and
`skeletonize` thinning, as this module measured before, the length was 5.5 % short of theirs.

Where this differs from the authors' code (all small, all stated):
- their code reads 8-bit digits and truncates the upscaled image back to 8 bits; the images here are
  floating point (generated ones), kept so, as their code keeps a floating-point input;
- an image without contrast (max = min after upscaling) has no digit and gives 0 for every measure (their
  threshold would make every pixel ink);
- the medial axis is computed for a batch at once (`medial_axis_batch`): the same pixels as skimage's
  `medial_axis`, whose per-call lookup tables cost 28 ms an image.

The batch is upscaled at once (resize as two matrix products, exactly what `pyramid_expand` computes);
the distance transform goes image by image; everything else is array math.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypedDict, Unpack

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt, gaussian_filter, label
from skimage.transform import resize

from .features import FeatureError

MORPHO_MEASURES = ("area", "length", "thickness", "slant", "width", "height")

SCALE = 4  # the paper's upscaling factor: sub-pixel skeletons and distances
THRESHOLD = 0.5  # the authors' relative binarisation level: half way from the upscaled image's minimum to its maximum
BOUND_FRACTION = 0.02  # ink mass left outside the bounding parallelogram per direction (authors' default)
MEDIAL_AXIS_SEED = 42  # the authors' rng of `medial_axis`: it breaks ties in the order pixels are thinned
MEDIAL_AXIS_CHUNK = 64  # images per batched medial axis: bounds its (ink pixels x 9) index arrays (~100 MB)
# bit k of a 3 x 3 neighbourhood code is the pixel (k // 3 - 1, k % 3 - 1) rows and columns from the centre (bit 4)
NEIGHBOURHOOD = tuple((k // 3 - 1, k % 3 - 1) for k in range(9))
CENTRE = 4


def _ink(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images (N, 1, H, W) or (N, H, W) in [-1, 1] -> ink (N, H, W) float64 in [0, 1].

    Raises:
        FeatureError: any other shape, multi-channel images among them.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise FeatureError(
            f"morpho_measures: expected single-channel images (N, 1, H, W) or (N, H, W), got shape {array.shape}"
        )
    return np.clip((array + 1) / 2, 0, 1)


@lru_cache(maxsize=8)
def _bicubic_matrix(size: int, scale: int) -> np.ndarray:
    """The (scale size, size) matrix of `skimage.transform.resize` (order 3, mode "reflect", no
    anti-aliasing, no clipping) along one axis: resize is linear and separable, so its columns are the
    resized unit vectors."""
    return resize(np.eye(size), (scale * size, size), order=3, mode="reflect", anti_aliasing=False, clip=False)


def _resize_both_axes(images: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """rows @ image @ columns.T for every image (N, h, w) -> (N, H, W), as two flat BLAS products (a batched
    matmul with a 2-D left operand takes numpy's slow path)."""
    n, h, w = images.shape
    wide = (images.reshape(n * h, w) @ columns.T).reshape(n, h, -1)
    tall = np.ascontiguousarray(wide.transpose(0, 2, 1)).reshape(-1, h) @ rows.T
    return tall.reshape(n, wide.shape[2], -1).transpose(0, 2, 1)


def _upscale(ink: np.ndarray, scale: int) -> np.ndarray:
    """`skimage.transform.pyramid_expand(image, upscale=scale, order=3)` of every image: bicubic
    upscaling clipped to the image's own range, then a Gaussian of sigma 2 scale / 6 (N, H, W) -> (N, sH, sW).
    Scale 1 leaves the images as they are (the authors' code skips the step)."""
    if scale == 1:
        return ink
    _, h, w = ink.shape
    upscaled = _resize_both_axes(ink, _bicubic_matrix(h, scale), _bicubic_matrix(w, scale))
    upscaled = np.clip(upscaled, ink.min((1, 2))[:, None, None], ink.max((1, 2))[:, None, None])
    return gaussian_filter(upscaled, (0, 2 * scale / 6, 2 * scale / 6), mode="reflect")


@lru_cache(maxsize=1)
def _medial_axis_table() -> np.ndarray:
    """(512,) bool over the 3 x 3 neighbourhood codes (`NEIGHBOURHOOD`): whether an ink centre pixel stays when the
    medial axis is thinned, the rule of `skimage.morphology.medial_axis`: it stays where taking it away changes the
    number of 8-connected ink components of its neighbourhood, or where the neighbourhood holds fewer than 3 ink
    pixels (an end)."""
    eight = np.ones((3, 3), dtype=bool)
    patterns = ((np.arange(512)[:, None] >> np.arange(9)) & 1).astype(bool).reshape(512, 3, 3)
    hollow = patterns.copy()
    hollow[:, 1, 1] = False
    changes = [label(pattern, eight)[1] != label(without, eight)[1] for pattern, without in zip(patterns, hollow)]
    return patterns[:, 1, 1] & (np.array(changes) | (patterns.sum((1, 2)) < 3))


def _thinning_ranks(images: np.ndarray, distances: np.ndarray, cornerness: np.ndarray) -> np.ndarray:
    """The rank (P,) of each ink pixel in `medial_axis`'s thinning order within its image: by increasing distance,
    then cornerness (background pixels among its 3 x 3), then a permutation drawn from rng `MEDIAL_AXIS_SEED` for
    each image over its ink pixels in raster order. ``images`` (P,) gives each pixel's image, in raster order."""
    counts = np.bincount(images)
    tiebreak = np.concatenate(
        [np.zeros(0, dtype=np.int64)]  # (a batch without ink has no permutation)
        + [np.random.default_rng(MEDIAL_AXIS_SEED).permutation(count) for count in counts]
    )
    order = np.lexsort((tiebreak, cornerness, distances, images))
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(order))
    return ranks


def _thin(earlier: np.ndarray, later: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(P,) whether each ink pixel stays on the medial axis, given per pixel its 3 x 3 neighbours (``neighbours``
    (P, 9) indexes them) that come ``earlier`` and ``later`` (P, 9) in the thinning order. A pixel is decided by
    `_medial_axis_table` once its earlier neighbours are (their outcome counts, its later ones are ink), so the
    pixels are decided in rounds: each round all those whose earlier neighbours are all decided (Kahn's order)."""
    table, bits = _medial_axis_table(), 1 << np.arange(9)
    kept = np.ones(len(earlier), dtype=bool)
    waiting = earlier.sum(1)
    follows = later.copy()
    follows[:, CENTRE] = False
    ready = np.flatnonzero(waiting == 0)
    while len(ready):
        present = later[ready] | (earlier[ready] & kept[neighbours[ready]])
        kept[ready] = table[present.astype(np.int64) @ bits]
        followers, counts = np.unique(neighbours[ready][follows[ready]], return_counts=True)
        waiting[followers] -= counts
        ready = followers[waiting[followers] == 0]
    return kept


def medial_axis_batch(binary: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The medial axis of every binary image (N, h, w) with its Euclidean distance map ``distance``: pixel for
    pixel what ``skimage.morphology.medial_axis(image, rng=42)`` returns for each image, for the batch at once.

    `medial_axis` thins one ink pixel at a time in the order of `_thinning_ranks`, each by `_medial_axis_table`
    for its neighbourhood at that moment, in which its earlier neighbours are decided and its later ones still ink;
    a pixel thus depends on its earlier neighbours only, and `_thin` decides many at once."""
    padded = np.pad(binary, ((0, 0), (1, 1), (1, 1)))
    images, rows, columns = np.nonzero(binary)
    positions = np.ravel_multi_index((images, rows + 1, columns + 1), padded.shape)
    around = positions[:, None] + np.array([row * padded.shape[2] + column for row, column in NEIGHBOURHOOD])
    ink = padded.ravel()[around]
    index = np.full(padded.size, -1)
    index[positions] = np.arange(len(positions))
    neighbours = index[around]
    ranks = _thinning_ranks(images, distance[images, rows, columns], 9 - ink.sum(1))
    earlier = ink & (ranks[neighbours] < ranks[:, None])
    later = ink & ~earlier  # the centre among them
    kept = _thin(earlier, later, neighbours)
    skeleton = np.zeros(padded.size, dtype=bool)
    skeleton[positions] = kept
    return skeleton.reshape(padded.shape)[:, 1:-1, 1:-1]


def skeleton_and_distance(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The medial axis (`medial_axis_batch`, `MEDIAL_AXIS_CHUNK` images at a time) and the Euclidean distance map of
    every binary image (N, h, w): two (N, h, w) arrays, as the authors' ``medial_axis(..., return_distance=True)``."""
    distance = np.zeros(binary.shape)
    for position, image in enumerate(binary):
        distance[position] = distance_transform_edt(image)
    skeleton = np.zeros(binary.shape, dtype=bool)
    for start in range(0, len(binary), MEDIAL_AXIS_CHUNK):
        chunk = slice(start, start + MEDIAL_AXIS_CHUNK)
        skeleton[chunk] = medial_axis_batch(binary[chunk], distance[chunk])
    return skeleton, distance


def _skeleton_length(skeleton: np.ndarray) -> np.ndarray:
    """Arc length of each skeleton (N, h, w) in upscaled pixels: every link between 8-neighbours counted
    once, 1 for a horizontal or vertical link and sqrt(2) for a diagonal one (the authors' mask)."""
    right = skeleton[:, :, :-1] & skeleton[:, :, 1:]
    down = skeleton[:, :-1, :] & skeleton[:, 1:, :]
    down_right = skeleton[:, :-1, :-1] & skeleton[:, 1:, 1:]
    down_left = skeleton[:, :-1, 1:] & skeleton[:, 1:, :-1]
    straight = right.sum((1, 2)) + down.sum((1, 2))
    diagonal = down_right.sum((1, 2)) + down_left.sum((1, 2))
    return straight + np.sqrt(2) * diagonal


def _mean_on_skeleton(distance: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """Mean of ``distance`` over each image's skeleton pixels; 0 for an empty skeleton."""
    count = skeleton.sum((1, 2))
    total = (distance * skeleton).sum((1, 2))
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _moments(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid row cy and second-order central moments u11, u02 of each image (N, h, w),
    with x the column and y the row; images without mass get 0."""
    y = np.arange(mass.shape[1], dtype=np.float64)[None, :, None]
    x = np.arange(mass.shape[2], dtype=np.float64)[None, None, :]
    m00 = mass.sum((1, 2))
    safe = np.where(m00 > 0, m00, 1.0)
    cx = (x * mass).sum((1, 2)) / safe
    cy = (y * mass).sum((1, 2)) / safe
    u11 = (x * y * mass).sum((1, 2)) / safe - cx * cy
    u02 = (y**2 * mass).sum((1, 2)) / safe - cy**2
    return cy, u11, u02


def _horizontal_shear(u11: np.ndarray, u02: np.ndarray) -> np.ndarray:
    """u11 / u02, the shear that maps a digit's vertical axis onto its slant; 0 where u02 = 0."""
    return np.divide(u11, u02, out=np.zeros_like(u11), where=u02 > 0)


def _inverse_cdf(cdf: np.ndarray, fractions: tuple[float, float]) -> np.ndarray:
    """Locations (N, 2) where each row of ``cdf`` (N, L), sampled at 0..L-1, reaches the two ``fractions``,
    interpolated linearly between samples and clamped to [0, L-1] (what `np.interp` does, for a batch)."""
    length = cdf.shape[1]
    target = np.asarray(fractions)[None, :]
    above = (cdf[:, None, :] < target[:, :, None]).sum(2)  # index of the first sample >= the fraction
    upper = np.clip(above, 1, length - 1)
    low = np.take_along_axis(cdf, upper - 1, 1)
    high = np.take_along_axis(cdf, upper, 1)
    step = np.divide(target - low, high - low, out=np.zeros_like(low), where=high > low)
    location = upper - 1 + np.clip(step, 0, 1)
    return np.where(above == 0, 0.0, np.where(above == length, length - 1.0, location))


def _parallelogram_extents(
    mass: np.ndarray, shear: np.ndarray, cy: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Width and height (upscaled pixels) of each image's bounding parallelogram of the given shear:
    along x after de-slanting, x' = x + 1/2 - shear (y - cy), and along y, the locations where the
    ink mass's cumulative distribution, sampled at integer locations, reaches fraction / 2 and 1 - fraction / 2.
    """
    n, rows, columns = mass.shape
    y = np.arange(rows, dtype=np.float64)[None, :, None]
    x = np.arange(columns, dtype=np.float64)[None, None, :]
    total = np.where(mass.sum((1, 2)) > 0, mass.sum((1, 2)), 1.0)[:, None]
    # mass with x' < t for t = 0..columns-1: x' < t  <=>  floor(x') + 1 <= t
    deslanted = x + 0.5 - shear[:, None, None] * (y - cy[:, None, None])
    bins = np.clip(np.floor(deslanted).astype(np.int64) + 1, 0, columns) + (columns + 1) * np.arange(n)[:, None, None]
    histogram = np.bincount(bins.ravel(), weights=mass.ravel(), minlength=n * (columns + 1))
    horizontal_cdf = np.cumsum(histogram.reshape(n, columns + 1), 1)[:, :columns] / total
    # mass with y < t for t = 0..rows-1
    row_mass = mass.sum(2)
    vertical_cdf = np.concatenate([np.zeros((n, 1)), np.cumsum(row_mass, 1)[:, :-1]], 1) / total
    bounds = (fraction / 2, 1 - fraction / 2)
    left, right = _inverse_cdf(horizontal_cdf, bounds).T
    top, bottom = _inverse_cdf(vertical_cdf, bounds).T
    return right - left, bottom - top


def binarise(mass: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Ink (N, h, w) of upscaled images: the pixels >= min + ``threshold`` (max - min) of their own image (the
    authors' relative threshold); none in an image without contrast."""
    low, high = mass.min((1, 2), keepdims=True), mass.max((1, 2), keepdims=True)
    return (mass >= low + (high - low) * threshold) & (high > low)


def morpho_measures(
    images: np.ndarray | torch.Tensor,
    scale: int = SCALE,
    threshold: float = THRESHOLD,
    bound_fraction: float = BOUND_FRACTION,
) -> np.ndarray:
    """The Morpho-MNIST measures (Sec. 2-3) of every image, in the order of `MORPHO_MEASURES`.

    Args:
        images: (N, 1, H, W) or (N, H, W), pixels in [-1, 1] with bright ink on a dark background (a numpy
            array or a tensor).
        scale: upscaling factor before binarising (the paper's 4; 1 measures at the original resolution).
        threshold: relative binarisation level: a pixel of the upscaled image is ink where it is at least this
            fraction of the way from the image's minimum to its maximum (the authors' 0.5).
        bound_fraction: ink mass left outside the bounding parallelogram along each direction.

    Returns:
        (N, 6) float64: area (pixels), length (pixels), thickness (pixels), slant (radians, positive when
        leaning right), width and height (pixels), all in the units of the original image. An image without
        contrast (no digit pixel after binarising) gives 0 for all six.

    Raises:
        FeatureError: images that are not (N, 1, H, W) or (N, H, W), multi-channel ones among them.
    """
    mass = _upscale(_ink(images), scale)
    binary = binarise(mass, threshold)
    skeleton, distance = skeleton_and_distance(binary)
    cy, u11, u02 = _moments(mass)
    shear = _horizontal_shear(u11, u02)
    width, height = _parallelogram_extents(mass, shear, cy, bound_fraction)
    measures = np.stack(
        [
            binary.sum((1, 2)) / scale**2,
            _skeleton_length(skeleton) / scale,
            2 * _mean_on_skeleton(distance, skeleton) / scale,
            np.arctan(-shear),
            width / scale,
            height / scale,
        ],
        1,
    )
    measures[~binary.any((1, 2))] = 0.0
    return measures


class _MorphoOptions(TypedDict, total=False):
    """The keyword arguments of `morpho_measures` after the images."""

    scale: int
    threshold: float
    bound_fraction: float


def morpho_measures_dict(images: np.ndarray | torch.Tensor, **options: Unpack[_MorphoOptions]) -> dict[str, np.ndarray]:
    """`morpho_measures` as a dict of (N,) arrays keyed by the names of `MORPHO_MEASURES`."""
    measures = morpho_measures(images, **options)
    return {name: measures[:, column] for column, name in enumerate(MORPHO_MEASURES)}
