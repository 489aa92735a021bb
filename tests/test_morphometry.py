"""Morpho-MNIST measures (methods.morphometry) on shapes with known answers and on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.transform import pyramid_expand

from latentspectra.data import load_dataset
from latentspectra.methods.features import FeatureError
from latentspectra.methods.morphometry import MORPHO_MEASURES, _upscale, morpho_measures, morpho_measures_dict

AREA, LENGTH, THICKNESS, SLANT, WIDTH, HEIGHT = range(6)


def bar(width: int, height: int, slant_degrees: float = 0.0, size: int = 28) -> np.ndarray:
    """A (size, size) image in [-1, 1]: a bar of ``width`` ink pixels per row over ``height`` rows, centred,
    its rows shifted so that the top leans right by ``slant_degrees`` (a horizontal shear)."""
    image = -np.ones((size, size))
    top = (size - height) // 2
    centre_row = top + (height - 1) / 2
    for row in range(top, top + height):
        shift = np.tan(np.deg2rad(slant_degrees)) * (centre_row - row)
        left = int(np.rint(size / 2 - width / 2 + shift))
        image[row, left : left + width] = 1.0
    return image


def test_upscaling_is_pyramid_expand() -> None:
    ink = np.random.default_rng(0).random((3, 12, 9)) ** 4  # sparse bright pixels: bicubic overshoots
    expected = np.stack([pyramid_expand(image, upscale=4, order=3) for image in ink])
    np.testing.assert_allclose(_upscale(ink, 4), expected, atol=1e-12)


def test_vertical_bar() -> None:
    width, height = 2, 16
    measures = morpho_measures(bar(width, height)[None, None])
    assert measures.shape == (1, len(MORPHO_MEASURES)) and measures.dtype == np.float64
    area, length, thickness, slant, measured_width, measured_height = measures[0]
    assert area == pytest.approx(width * height, abs=1)
    assert abs(thickness - width) < 1
    assert abs(length - height) < 2
    assert abs(slant) < 1e-6
    assert abs(measured_height - height) < 1
    assert measured_width > width - 1  # the blur of the upscaling widens a thin stroke's mass (up to ~2 pixels)


@pytest.mark.parametrize("degrees", [-25.0, 15.0, 30.0])
def test_sheared_bar_gives_its_slant(degrees: float) -> None:
    width = 3
    measures = morpho_measures(bar(width, 18, degrees)[None])[0]
    assert np.rad2deg(measures[SLANT]) == pytest.approx(degrees, abs=3)
    # the distance transform measures across the stroke: w cos(angle) for a horizontally sheared bar of width w
    assert abs(measures[THICKNESS] - width * np.cos(np.deg2rad(degrees))) < 1
    assert abs(measures[THICKNESS] - width) < 1


def test_thicker_bar_is_thicker() -> None:
    thickness = morpho_measures(np.stack([bar(w, 16) for w in (2, 4, 6)]))[:, THICKNESS]
    assert np.all(np.diff(thickness) > 1)


def test_empty_image_gives_zeros() -> None:
    images = np.stack([-np.ones((28, 28)), bar(3, 12)])[:, None]
    measures = morpho_measures(images)
    assert np.all(measures[0] == 0)
    assert np.all(measures[1, [AREA, LENGTH, THICKNESS, WIDTH, HEIGHT]] > 0)


def test_faint_digit_is_binarised_at_its_own_midpoint() -> None:
    """The authors' relative threshold: a bar at a tenth of full ink on a blank background is measured as the
    same bar at full ink."""
    full = bar(3, 14)
    faint = np.where(full > 0, -0.8, -1.0)
    np.testing.assert_allclose(morpho_measures(faint[None]), morpho_measures(full[None]), atol=1e-9)


def test_real_digits_are_plausible() -> None:
    digits = load_dataset("mnist").test.images[:50].astype(np.float64) / 127.5 - 1
    measures = morpho_measures(torch.from_numpy(digits))
    assert np.all(np.isfinite(measures))
    assert np.all((measures[:, AREA] >= 20) & (measures[:, AREA] <= 400))  # thin ones have ~27 pixels
    assert np.all((measures[:, THICKNESS] >= 1) & (measures[:, THICKNESS] <= 6))
    assert np.all((measures[:, LENGTH] > 5) & (measures[:, LENGTH] < 120))
    assert np.all(np.abs(measures[:, SLANT]) < np.pi / 2)
    assert np.all((measures[:, HEIGHT] > 5) & (measures[:, HEIGHT] <= 28))
    by_name = morpho_measures_dict(digits[:5, 0])
    assert list(by_name) == list(MORPHO_MEASURES)
    np.testing.assert_allclose(np.stack(list(by_name.values()), 1), measures[:5])


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (28, 28), (2, 1, 1, 28, 28)])
def test_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(FeatureError, match=r"got shape \(" + ", ".join(map(str, shape))):
        morpho_measures(np.zeros(shape))
