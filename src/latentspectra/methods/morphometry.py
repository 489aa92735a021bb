"""Morpho-MNIST morphometry: area, length, thickness, slant, width and height of digit images.

Castro, Tan, Kainz, Konukoglu & Glocker, "Morpho-MNIST: Quantitative Assessment and Diagnostics for
Representation Learning", JMLR 20(178), 2019, Sec. 2-3 (the processing pipeline and the measurements);
the authors' code is github.com/dccastro/Morpho-MNIST (``morphomnist/morpho.py``,
``measure.py``), which fixes the details the paper leaves open. The pipeline, per image:

1. upscale x4 (bicubic, then a Gaussian of sigma = 2 x 4 / 6 pixels, as `skimage.transform.pyramid_expand`
   does, the authors' choice, for sub-pixel skeletons and distances);
2. binarise at half intensity;
3. skeletonise the binary digit and take its Euclidean distance transform;
4. measure, converted back to the original pixel units:
   - area: the number of digit pixels / 4^2;
   - length: the skeleton's arc length (1 per horizontal or vertical link between skeleton pixels,
     sqrt(2) per diagonal one) / 4;
   - thickness: 2 x the mean distance-transform value on the skeleton / 4 (the mean stroke diameter);
   - slant: arctan(-u11 / u02) of the upscaled image's second-order central moments (x the column,
     y the row, counted downwards), in radians; positive when the digit leans right (top to the right);
   - width and height: the extents of the bounding parallelogram that shares the slant and leaves out
     1 % of the ink mass on either side along each direction (2 % per direction in all).

Where this differs from the authors' code (all small, all stated):
- the threshold is fixed at half the full range (pixel >= 0 in [-1, 1], ink >= 0.5) rather than half
  way between the upscaled image's own minimum and maximum, so that faint or empty images stay faint or
  empty instead of being stretched to full contrast;
- the skeleton is `skimage.morphology.skeletonize` (thinning) rather than `medial_axis`, whose spurs to
  the corners of a stroke's end lengthen the skeleton; the distance is `scipy.ndimage.distance_transform_edt`;
- every image is framed by one background pixel before the skeleton and the distances, so ink touching
  the image's edge ends there (the authors' distance transform sees no background beyond the edge).

The batch is upscaled at once (resize as two matrix products, exactly what `pyramid_expand` computes);
the skeleton and the distance transform go image by image; everything else is array math.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt, gaussian_filter
from skimage.morphology import skeletonize
from skimage.transform import resize

from .features import FeatureError

MORPHO_MEASURES = ("area", "length", "thickness", "slant", "width", "height")

SCALE = 4  # the paper's upscaling factor: sub-pixel skeletons and distances
THRESHOLD = 0.0  # half intensity in [-1, 1] (ink 0.5), the paper's binarisation level
BOUND_FRACTION = 0.02  # ink mass left outside the bounding parallelogram per direction (authors' default)


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
        raise FeatureError(f"morpho_measures: expected single-channel images (N, 1, H, W) or (N, H, W), "
                           f"got shape {array.shape}")
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


def _skeleton_and_distance(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton and Euclidean distance map of every binary image (N, h, w), each framed by one background
    pixel: returns two (N, h + 2, w + 2) arrays. (One image at a time: faster here than one call on all
    the framed images laid side by side.)"""
    framed = np.pad(binary, ((0, 0), (1, 1), (1, 1)))
    skeleton = np.stack([skeletonize(image) for image in framed])
    distance = np.stack([distance_transform_edt(image) for image in framed])
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
    u02 = (y ** 2 * mass).sum((1, 2)) / safe - cy ** 2
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


def _parallelogram_extents(mass: np.ndarray, shear: np.ndarray, cy: np.ndarray,
                           fraction: float) -> tuple[np.ndarray, np.ndarray]:
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


def morpho_measures(images: np.ndarray | torch.Tensor, scale: int = SCALE, threshold: float = THRESHOLD,
                    bound_fraction: float = BOUND_FRACTION) -> np.ndarray:
    """The Morpho-MNIST measures (Sec. 2-3) of every image, in the order of `MORPHO_MEASURES`.

    Args:
        images: (N, 1, H, W) or (N, H, W), pixels in [-1, 1] with bright ink on a dark background (a numpy
            array or a tensor).
        scale: upscaling factor before binarising (the paper's 4; 1 measures at the original resolution).
        threshold: binarisation level in pixel units: a pixel of the upscaled image is ink where >= it.
        bound_fraction: ink mass left outside the bounding parallelogram along each direction.

    Returns:
        (N, 6) float64: area (pixels), length (pixels), thickness (pixels), slant (radians, positive when
        leaning right), width and height (pixels), all in the units of the original image. An image with no
        digit pixel after binarising gives 0 for all six.

    Raises:
        FeatureError: images that are not (N, 1, H, W) or (N, H, W), multi-channel ones among them.
    """
    mass = _upscale(_ink(images), scale)
    binary = mass >= (threshold + 1) / 2
    skeleton, distance = _skeleton_and_distance(binary)
    cy, u11, u02 = _moments(mass)
    shear = _horizontal_shear(u11, u02)
    width, height = _parallelogram_extents(mass, shear, cy, bound_fraction)
    measures = np.stack([
        binary.sum((1, 2)) / scale ** 2,
        _skeleton_length(skeleton) / scale,
        2 * _mean_on_skeleton(distance, skeleton) / scale,
        np.arctan(-shear),
        width / scale,
        height / scale,
    ], 1)
    measures[~binary.any((1, 2))] = 0.0
    return measures


def morpho_measures_dict(images: np.ndarray | torch.Tensor, **options: float) -> dict[str, np.ndarray]:
    """`morpho_measures` as a dict of (N,) arrays keyed by the names of `MORPHO_MEASURES`."""
    measures = morpho_measures(images, **options)
    return {name: measures[:, column] for column, name in enumerate(MORPHO_MEASURES)}
