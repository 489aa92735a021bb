"""Morpho-MNIST measures as their authors measure them (Castro et al., JMLR 2019; github.com/dccastro/Morpho-MNIST,
``morphomnist/morpho.py`` and ``measure.py``): a port, written here, of their per-image procedure against
`methods.morphometry.morpho_measures` on the same MNIST test digits."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import medial_axis
from skimage.transform import pyramid_expand

from latentspectra.data import load_dataset
from latentspectra.methods.morphometry import MORPHO_MEASURES, morpho_measures, skeleton_and_distance

DIGITS = 150
SCALE, THRESHOLD, BOUND_FRACTION = 4, 0.5, 0.02  # their `measure_image` defaults
LINK_WEIGHTS = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [np.sqrt(2.0), 1.0, np.sqrt(2.0)]])  # right, below
MEAN_AGREEMENT = 0.01  # the bar: every measure's mean within 1% of theirs


@pytest.fixture(scope="module", autouse=True)
def medial_axis_labels_its_table_once():
    """skimage's `medial_axis` builds its lookup table on every call, labelling the 8-connected components of each
    of the 512 3 x 3 patterns (about 20 ms a digit, most of this module's time). A pattern's labelling does not
    change, so here each is computed once and kept: the same table, the same skeletons."""
    label = ndimage.label

    @cache
    def pattern_labels(pattern: bytes, dtype: str, structure: bytes | None) -> tuple[np.ndarray, int]:
        labels, count = label(
            np.frombuffer(pattern, dtype).reshape(3, 3),
            None if structure is None else np.frombuffer(structure, bool).reshape(3, 3),
        )
        labels.flags.writeable = False
        return labels, count

    def labelled(array, structure=None, *args, **kwargs):
        array = np.asarray(array)
        if args or kwargs or array.shape != (3, 3) or (structure is not None and np.shape(structure) != (3, 3)):
            return label(array, structure, *args, **kwargs)
        kept = None if structure is None else np.asarray(structure, bool).tobytes()
        labels, count = pattern_labels(array.tobytes(), array.dtype.str, kept)
        return labels.copy(), count

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ndimage, "label", labelled)
        yield


def authors_binary(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Their `_process_img_morph` up to the medial axis, on a uint8 (H, W) digit: bicubic `pyramid_expand` x4 back
    to uint8 (truncated), binarised at the middle of its own range. Returns (upscaled, binary)."""
    upscaled = (255.0 * pyramid_expand(image, upscale=SCALE, order=3, channel_axis=None)).astype(image.dtype)
    low, high = upscaled.min(), upscaled.max()
    return upscaled, upscaled >= low + (high - low) * THRESHOLD


def authors_pipeline(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Their `_process_img_morph` on a uint8 (H, W) digit: `authors_binary`, then `medial_axis` with rng=42. Returns
    (upscaled, binary, skeleton, distance)."""
    upscaled, binary = authors_binary(image)
    skeleton, distance = medial_axis(binary, return_distance=True, rng=42)
    return upscaled, binary, skeleton, distance


def authors_extents(mass: np.ndarray, shear: float, middle: float) -> tuple[float, float]:
    """Their `bounding_parallelogram`: the cumulative ink mass left of the sheared line x + 1/2 < t + shear (y -
    middle) and above y < t for each integer t, interpolated at frac / 2 and 1 - frac / 2."""
    height, width = mass.shape
    x, y = np.arange(width)[None, :], np.arange(height)[:, None]
    total = mass.sum()
    horizontal = np.array([((x + 0.5 < t + shear * (y - middle)) * mass).sum() for t in range(width)]) / total
    vertical = np.array([((y < t) * mass).sum() for t in range(height)]) / total
    bounds = [BOUND_FRACTION / 2, 1 - BOUND_FRACTION / 2]
    left, right = np.interp(bounds, horizontal, np.arange(width))
    top, bottom = np.interp(bounds, vertical, np.arange(height))
    return right - left, bottom - top


def authors_measures(image: np.ndarray) -> list[float]:
    """Their `measure_image`: area, length, thickness, slant, width, height of one uint8 digit."""
    upscaled, binary, skeleton, distance = authors_pipeline(image)
    length = (ndimage.correlate(skeleton.astype(float), LINK_WEIGHTS, mode="constant") * skeleton).sum()
    mass = upscaled.astype(float)
    x, y = np.arange(mass.shape[1])[None, :], np.arange(mass.shape[0])[:, None]
    m00 = mass.sum()
    cx, cy = (x * mass).sum() / m00, (y * mass).sum() / m00
    shear = ((x * y * mass).sum() / m00 - cx * cy) / ((y**2 * mass).sum() / m00 - cy**2)
    width, height = authors_extents(mass, shear, cy)
    return [
        binary.sum() / SCALE**2,
        length / SCALE,
        2 * distance[skeleton].mean() / SCALE,
        np.arctan(-shear),
        width / SCALE,
        height / SCALE,
    ]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("mnist").test.images[:DIGITS, 0]


@pytest.mark.slow
def test_every_mean_is_the_authors(digits):
    """Each mean within 1% of the mean magnitude of theirs (for slant, whose mean is near 0, of its mean |slant|)."""
    theirs = np.array([authors_measures(image) for image in digits])
    ours = morpho_measures(digits.astype(np.float64) / 127.5 - 1)
    relative = np.abs(ours.mean(0) - theirs.mean(0)) / np.abs(theirs).mean(0)
    assert bool((relative < MEAN_AGREEMENT).all()), dict(zip(MORPHO_MEASURES, relative.round(4)))


@pytest.mark.slow
def test_floating_point_digits_give_the_authors_measures_image_by_image(digits):
    """Given floating-point digits, their code keeps the upscaled image in floating point, as ours does: then every
    measure of every digit agrees up to rounding (the means above differ by their 8-bit truncation alone)."""
    unit = digits[:50].astype(np.float64) / 255
    theirs = np.array([authors_measures(image) for image in unit])
    np.testing.assert_allclose(morpho_measures(2 * unit - 1), theirs, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_skeleton_is_the_authors_medial_axis(digits):
    """On the same binary digits, our batched medial axis is skimage's `medial_axis(rng=42)`, pixel for pixel."""
    binary = np.stack([authors_binary(image)[1] for image in digits[:40]])
    skeleton, distance = skeleton_and_distance(binary)
    for index, image in enumerate(binary):
        expected, expected_distance = medial_axis(image, return_distance=True, rng=42)
        np.testing.assert_array_equal(skeleton[index], expected, err_msg=f"digit {index}")
        np.testing.assert_array_equal(distance[index], expected_distance)
