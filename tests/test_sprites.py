"""The sprites dataset: the images show the factors they are stored with (centroid = position, area = the
shape's at its scale, second and third moments = orientation) to within a pixel; rendering is deterministic;
the split is a fixed hash order; the cache is written once, checked on every load, and a damaged one is one
line naming the file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import one_error_line, run_cli
from latentspectra.data import load_dataset
from latentspectra.data import sprites as sprites_module
from latentspectra.data.sprites import (
    ELLIPSE_AXES,
    FACTOR_NAMES,
    HEART,
    SHAPES,
    SPRITES,
    SQUARE_HALF_SIDE,
    SpritesGrid,
    load_sprites,
    render_sprites,
    sprite_area,
)
from latentspectra.errors import DataError

SMALL = SpritesGrid(size=16, scales=2, orientations=4, positions=4)
# one worker under pytest-xdist's loadgroup, so that the whole dataset is drawn once (`sprites`, seconds)
pytestmark = pytest.mark.xdist_group("sprites")


@pytest.fixture(scope="module")
def sprites():
    """The dataset ``sprites`` as drawn (not read from a cache)."""
    return render_sprites(SPRITES)


def unit_perimeter(shape: int) -> float:
    """Perimeter of ``shape`` at radius 1: the square's four sides, the ellipse's (Ramanujan's second
    approximation), the heart's two lower diamond sides and two half circles."""
    if shape == 0:
        return 8 * SQUARE_HALF_SIDE
    if shape == 1:
        a, b = ELLIPSE_AXES
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    return HEART.side * (2 + math.pi)


def moments(images: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel count, centroid (pixel centres at k + 0.5, x right, y down) and the central moments of order 2
    and 3 with y up, of binary images (N, 1, H, W)."""
    mass = images[:, 0].astype(np.float64) / 255
    centres = np.arange(mass.shape[-1]) + 0.5
    count = mass.sum((1, 2))
    cx = mass.sum(1) @ centres / count
    cy = mass.sum(2) @ centres / count
    x = centres[None, :] - cx[:, None]  # (N, W)
    y = cy[:, None] - centres[None, :]  # (N, H), up
    by_row = mass @ x[:, :, None] ** np.arange(4)  # (N, H, p): each row's sum of mass x^p, for p = 0..3

    def central(p: int, q: int) -> np.ndarray:
        return (by_row[:, :, p] * y**q).sum(1) / count

    return {
        "count": count,
        "cx": cx,
        "cy": cy,
        **{f"mu{p}{q}": central(p, q) for p, q in ((2, 0), (0, 2), (1, 1), (3, 0), (2, 1), (1, 2), (0, 3))},
    }


def turn(angle: np.ndarray, period: float) -> np.ndarray:
    """``angle`` reduced to (-period / 2, period / 2]."""
    return (angle + period / 2) % period - period / 2


def measured(sprites, shape: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The factors and moments of every image of ``shape`` in both splits."""
    rows = [(split.factors[split.labels == shape], split.images[split.labels == shape]) for split in sprites]
    factors = np.concatenate([f for f, _ in rows])
    return factors, moments(np.concatenate([i for _, i in rows]))


@pytest.fixture(scope="module")
def by_shape(sprites):
    splits = (sprites.train, sprites.test)
    return {shape: measured(splits, shape) for shape in range(len(SHAPES))}


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_the_centroid_is_the_stated_position_within_a_pixel(by_shape, shape):
    factors, m = by_shape[shape]
    assert np.abs(m["cx"] - SPRITES.centre(factors[:, 3])).max() < 1.0
    assert np.abs(m["cy"] - SPRITES.centre(factors[:, 4])).max() < 1.0


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_the_area_is_the_shapes_at_the_stated_scale_within_a_pixel_of_its_outline(by_shape, shape):
    """Pixel count = area at radius s R (so it grows as the scale squared), give or take a band one pixel wide
    along the outline; and the mean count rises with every step of scale."""
    factors, m = by_shape[shape]
    radius = factors[:, 1] * SPRITES.radius
    assert np.abs(m["count"] - sprite_area(shape) * radius**2).max() < unit_perimeter(shape) * radius.min()
    means = [m["count"][factors[:, 1] == scale].mean() for scale in np.unique(factors[:, 1])]
    assert np.all(np.diff(means) > 0)


def principal_angle(m: dict[str, np.ndarray]) -> np.ndarray:
    """The angle of the major axis of the second moments (y up), in (-pi/2, pi/2]."""
    return 0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])


def test_the_ellipse_long_axis_is_the_stated_orientation_within_a_pixel(by_shape):
    """Mod a half turn (the ellipse looks the same turned by pi): the tip of the long axis is within a pixel."""
    factors, m = by_shape[1]
    error = turn(principal_angle(m) - factors[:, 2], math.pi)
    tip = ELLIPSE_AXES[0] * factors[:, 1] * SPRITES.radius
    assert (np.abs(error) * tip).max() < 1.0


def test_the_heart_shows_the_stated_orientation_within_a_pixel(by_shape):
    """The heart's long second-moment axis runs across it (through the lobes), so it gives the orientation
    mod pi; its third moment along the perpendicular (the mirror axis) is negative towards the lobes (the tip's
    long tail lies the other way), which settles the half turn. The farthest point moves less than a pixel."""
    factors, m = by_shape[2]
    across = principal_angle(m)
    lobes = np.stack([-np.sin(across), np.cos(across)])  # the mirror axis of orientation `across`
    third = (
        m["mu30"] * lobes[0] ** 3
        + 3 * m["mu21"] * lobes[0] ** 2 * lobes[1]
        + 3 * m["mu12"] * lobes[0] * lobes[1] ** 2
        + m["mu03"] * lobes[1] ** 3
    )
    orientation = np.where(third < 0, across, across + math.pi)
    error = turn(orientation - factors[:, 2], 2 * math.pi)
    assert (np.abs(error) * factors[:, 1] * SPRITES.radius).max() < 1.0


def test_a_wrong_orientation_is_caught(by_shape):
    """The orientation check can fail: the ellipses' stated orientation shifted by one step misses a pixel."""
    factors, m = by_shape[1]
    step = 2 * math.pi / SPRITES.orientations
    error = turn(principal_angle(m) - (factors[:, 2] + step), math.pi)
    assert (np.abs(error) * ELLIPSE_AXES[0] * factors[:, 1] * SPRITES.radius).max() > 1.0


def test_every_combination_once_split_by_a_fixed_hash(sprites):
    train, test = sprites.train, sprites.test
    assert len(train) + len(test) == SPRITES.count == 3 * 6 * 40 * 12 * 12
    assert len(test) == SPRITES.count // 6
    both = np.concatenate([train.factors, test.factors])
    assert len(np.unique(both, axis=0)) == SPRITES.count
    for column, values in zip(both.T, SPRITES.factor_values()):
        np.testing.assert_array_equal(np.unique(column), values)
    np.testing.assert_array_equal(train.labels, train.factors[:, 0])
    # any prefix of a split samples every factor: the first tenth of the test split holds every value
    prefix = test.factors[: len(test) // 10]
    assert [len(np.unique(c)) for c in prefix.T] == [len(v) for v in SPRITES.factor_values()]
    assert sprites.factor_names == FACTOR_NAMES and sprites.classes == SHAPES


def test_rendering_is_deterministic():
    first, second = render_sprites(SMALL), render_sprites(SMALL)
    for a, b in ((first.train, second.train), (first.test, second.test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.factors, b.factors)
    assert set(np.unique(first.train.images)) == {0, 255}


def test_the_grid_refuses_positions_that_leave_no_room():
    with pytest.raises(DataError, match="at most 16"):
        SpritesGrid(size=32, positions=17)
    with pytest.raises(DataError, match="scales"):
        SpritesGrid(scales=1)


def test_drawn_once_then_read_from_the_cache(tmp_path, monkeypatch):
    drawn = load_sprites(tmp_path, SMALL)
    path = tmp_path / SMALL.file_name
    assert path.is_file()
    monkeypatch.setattr(sprites_module, "render_sprites", lambda grid: pytest.fail("drawn again"))
    cached = load_sprites(tmp_path, SMALL)
    assert cached.name == "sprites" and cached.factor_names == FACTOR_NAMES
    np.testing.assert_array_equal(cached.test.images, drawn.test.images)
    np.testing.assert_array_equal(cached.train.factors, drawn.train.factors)


def test_the_cache_lives_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_sprites(grid=SMALL)
    assert (tmp_path / "latentspectra" / "datasets" / SMALL.file_name).is_file()


def damage(path: Path, target: Path | None = None) -> Path:
    """Rewrite the cached file ``path`` (to ``target``) with one pixel flipped and its recorded checksum kept."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    arrays["test_images"][0, 0, 0, 0] ^= 255
    target = target or path
    with open(target, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target


def test_a_damaged_cache_is_one_error_naming_the_file(tmp_path):
    load_sprites(tmp_path, SMALL)
    damage(tmp_path / SMALL.file_name)
    with pytest.raises(DataError, match="checksum mismatch") as failure:
        load_sprites(tmp_path, SMALL)
    assert str(tmp_path / SMALL.file_name) in str(failure.value) and "\n" not in str(failure.value)


def test_a_cache_of_another_grid_is_refused(tmp_path):
    load_sprites(tmp_path, SMALL)
    other = SpritesGrid(size=16, scales=2, orientations=4, positions=3)
    (tmp_path / SMALL.file_name).rename(tmp_path / other.file_name)
    with pytest.raises(DataError, match="expected the sprites grid's 216 "):
        load_sprites(tmp_path, other)


def test_the_command_line_reports_a_damaged_cache_in_one_line(tmp_path, capsys):
    load_sprites(tmp_path, SMALL)
    damage(tmp_path / SMALL.file_name, tmp_path / SPRITES.file_name)  # SMALL's arrays under SPRITES' name
    code, _, err = run_cli(capsys, "data", "info", "sprites", "--root", str(tmp_path))
    assert code == 2
    assert str(tmp_path / SPRITES.file_name) in one_error_line(err)


def test_data_info_lists_the_factors_without_torch(session_cache):
    """`latentspectra data info sprites --json` (drawing the dataset into the session's cache if no test did
    yet) lists every factor's values, the counts and the shape, and imports no torch."""
    script = (
        "import sys\n"
        "from latentspectra.cli import main\n"
        "try:\n"
        "    main(['data', 'info', 'sprites', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    *json_lines, torch_imported = done.stdout.strip().splitlines()
    assert torch_imported == "False"
    info = json.loads("\n".join(json_lines))
    assert info["train"] + info["test"] == SPRITES.count and info["shape"] == [1, 32, 32]
    assert [f["name"] for f in info["factors"]] == list(FACTOR_NAMES)
    for listed, values in zip(info["factors"], SPRITES.factor_values()):
        np.testing.assert_allclose(listed["values"], values)
    assert (session_cache / "latentspectra" / "datasets" / SPRITES.file_name).is_file()
    assert load_dataset("sprites").info() == info  # read back from the cache it wrote


def test_the_shipped_sprites_networks_draw_every_shape():
    """The shipped sprites generator (a VAE's decoder, training/vae.py) draws all three shapes, as the shipped
    classifier reads its samples (8% squares, 43% ellipses, 48% hearts of 2,000); the GAN recipe's generator drew
    1.6% squares (docs/ground-truth.md)."""
    import torch

    from latentspectra.models.files import load_model, shipped_models_dir

    directory = shipped_models_dir("sprites")
    generator = load_model(directory, "generator", "generator")[0]
    classifier = load_model(directory, "classifier", "classifier")[0]
    encoder = load_model(directory, "encoder", "encoder")[0]
    assert tuple(generator.config["image_shape"]) == (1, 32, 32)
    assert encoder.latent_dim == generator.latent_dim
    latents = torch.randn(600, generator.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        shapes = classifier(generator(latents)).argmax(1)
    shares = torch.bincount(shapes, minlength=len(SHAPES)).double() / len(latents)
    assert shares.min() > 0.05, shares.tolist()
