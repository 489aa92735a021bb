"""The report layer: every figure writes a readable PNG, image grids tile correctly, and the report renders
to Markdown and self-contained HTML, even from a partial metrics dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

from latentspectra.report import (
    figure2,
    figure3,
    figure4,
    figure5,
    figure6,
    figure7,
    figure8,
    fragmentation_figures,
    image_grid,
    image_rows,
    results_table_markdown,
    sfvq_figures,
    write_report,
)
from latentspectra.report import figures as report_figures

M = 100
RNG = np.random.default_rng(0)


def images(count: int, side: int = 8) -> np.ndarray:
    return RNG.random((count, side, side))


def assert_png(path, min_side: int = 100) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side and max(image.size) < 5000
    assert [entry.name for entry in path.parent.iterdir() if entry.name.endswith(".part")] == []


def test_image_grid_places_each_image_in_its_tile():
    stack = np.stack([np.full((2, 3), float(k)) for k in range(5)])
    grid = image_grid(stack, columns=2, fill=-1.0)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    for k in range(5):
        row, column = divmod(k, 2)
        assert np.all(grid[row * 3 : row * 3 + 2, column * 4 : column * 4 + 3] == k)
    assert np.all(grid[2, :] == -1.0) and np.all(grid[:, 3] == -1.0)  # 1-pixel gaps
    assert np.all(grid[6:, 4:] == -1.0)  # padded last row


@pytest.mark.parametrize("shape", [(4, 4), (2, 2, 4, 4), (2, 4, 4, 3), (1, 1, 1, 4, 4)])
def test_image_grid_rejects_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, C, H, W\) with C in \(1, 3\)"):
        image_grid(np.zeros(shape), columns=2)


def test_image_grid_of_rgb_images_keeps_their_colours():
    red, blue = np.zeros((3, 32, 20)), np.zeros((3, 32, 20))
    red[0], blue[2] = 1.0, 1.0
    grid = image_grid(np.stack([red, blue, red]), columns=2, fill=0.5)
    assert grid.shape == (2 * 33 - 1, 2 * 21 - 1, 3)
    assert np.all(grid[:32, :20] == [1, 0, 0]) and np.all(grid[:32, 21:] == [0, 0, 1])
    assert np.all(grid[33:, :20] == [1, 0, 0])
    assert np.all(grid[32] == 0.5) and np.all(grid[:, 20] == 0.5) and np.all(grid[33:, 21:] == 0.5)


def test_image_grid_of_single_channel_images_is_grey():
    stack = RNG.random((3, 20, 12))
    grid = image_grid(stack[:, None], columns=2)
    assert grid.shape == (2 * 21 - 1, 2 * 13 - 1)
    np.testing.assert_array_equal(grid, image_grid(stack, columns=2))


def test_rgb_images_are_drawn_in_colour(tmp_path):
    red = np.zeros((2, 3, 32, 32))
    red[:, 0] = 1.0
    with Image.open(image_rows({"red": red}, tmp_path / "red.png")) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    assert np.sum((pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)) > 1000


def test_figure2(tmp_path):
    assert_png(figure2(images(9), images(9), images(9), tmp_path / "fig2.png"))


@pytest.mark.parametrize("latent_dim", [M, 7])
def test_figure3(tmp_path, latent_dim):
    def panel():
        labels = np.repeat(np.arange(3), [2, 1, 2])
        return {
            "latents": RNG.normal(size=(len(labels), latent_dim)),
            "latent_labels": labels,
            "decoded_etas": images(3),
            "components": {label: RNG.normal(size=50) for label in range(3)},
        }

    panels = {"step 4a: encoded training set": panel(), "step 4b: z ~ N(0, I)": panel()}
    assert_png(figure3(panels, tmp_path / "fig3.png"))


def test_figure4(tmp_path):
    gram = RNG.normal(size=(M, M))
    assert_png(figure4(images(M), images(M), gram, gram, tmp_path / "fig4.png"))


def test_figure5(tmp_path):
    cumulative = np.linspace(0.9, 1.0, M).tolist()
    path = figure5(
        images(6),
        [1, 2, 3, 4, 5, 6],
        [1, 2, 0, 4, 5, 7],
        [0.91, 0.92, 0.93],
        0.989,
        [0.94, 0.95, 0.93],
        cumulative,
        tmp_path / "fig5.png",
    )
    assert_png(path)


def test_figure6(tmp_path):
    amplitudes = -np.sort(-RNG.random((20, M)), axis=1)
    amplitudes /= amplitudes[:, :1]
    assert_png(figure6(amplitudes, np.tile([1, 2, 3, 1, 5], 4), tmp_path / "fig6.png"))


def test_figure7(tmp_path):
    rows = {title: images(4) for title in ("ground truth", "noisy", "all 100", "top 1", "top 4")}
    assert_png(figure7(rows, tmp_path / "fig7.png"))


def test_figure8(tmp_path):
    sequence = RNG.random((5, 2, 8, 8))
    assert_png(figure8(sequence, tmp_path / "fig8.png", caption="0 -> 1 -> 2 along the quasi-eigenvectors"))


def trial(mean: float) -> dict:
    return {"mean": mean, "std": 0.002, "trials": [mean] * 3}


def full_metrics() -> dict:
    sigmas = [0.25, 0.5, 0.75]
    methods = ["noisy", "encode-decode", "top 1"]
    mode = {"segment_end_accuracy": 0.8, "per_target": [0.7 + 0.01 * k for k in range(9)]}
    return {
        "dataset": "mnist",
        "seed": 0,
        "latent_dim": M,
        "per_set": 5000,
        "versions": {"latentspectra": "0.1.0", "torch": "2.13 <script>alert(1)</script>"},
        "classifier_accuracy": trial(0.9876),
        "encode_decode_accuracy": trial(0.9412),
        "lsd_top1_accuracy": trial(0.9203),
        "lsd_topn_cumulative": [0.92, 0.95, 0.97, 0.985] + [1.0] * (M - 4),
        "basis_orthogonality_error": 3.2e-15,
        "orthogonalisation": "symmetric",
        "lsd_by_orthogonalisation": {
            "gram-schmidt": {"top1": trial(0.8371), "top4": trial(0.9612)},
            "symmetric": {"top1": trial(0.9203), "top4": trial(0.985)},
        },
        "denoising": {
            "images": 100,
            "sigmas": sigmas,
            "methods": methods,
            "accuracy": {method: [0.9, 0.8, 0.7] for method in methods},
            "psnr": {method: [20.0, 15.5, 12.25] for method in methods},
        },
        "rotation": {
            "images": 50,
            "labels": list(range(10)),
            "dtheta": 0.01,
            "steps": 157,
            "modes": {"literal": mode, "plane": mode},
        },
        "seconds": {"train": 12.5, "basis": 3.0},
    }


@pytest.fixture
def figures(tmp_path):
    paths = {}
    for number in (2, 7):
        path = tmp_path / "figures" / f"fig{number}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 3), "white").save(path)
        paths[f"fig{number}"] = path
    return paths


def test_write_report_writes_markdown_and_self_contained_html(tmp_path, figures):
    md_path, html_path = write_report(tmp_path, full_metrics(), figures)
    assert (md_path, html_path) == (tmp_path / "report.md", tmp_path / "report.html")
    markdown, page = md_path.read_text(), html_path.read_text()
    assert "(figures/fig2.png)" in markdown and "(figures/fig7.png)" in markdown
    assert "*Fig. 7: denoising" in markdown and "<figcaption>Fig. 2: " in page
    assert page.count("data:image/png;base64,") == 2
    assert '<img src="figures' not in page
    assert "PSNR (dB) σ=0.25" in markdown and "15.50" in markdown
    assert "→ 9" in markdown and "78.0%" in markdown
    assert "| train | 12.5 |" in markdown
    assert "3.2e-15" in page and "98.8% ± 0.2% (3 trials)" in page


def test_results_table_shows_paper_and_run_values():
    table = results_table_markdown(full_metrics())
    assert table.splitlines()[0] == "| quantity | paper | this run |"
    assert "98.9%" in table
    assert "98.8% ± 0.2% (3 trials)" in table
    assert "| 98.5% |" in table  # within top 4: metrics["lsd_topn_cumulative"][3]
    assert "| gram-schmidt, Eqs. 4-7 | symmetric |" in table
    assert "| LSD top-1, Gram-Schmidt (the paper's basis, Eq. 5 order, same encodings) | ~92% | 83.7% ± 0.2%" in table
    assert "| LSD within top 4, symmetric (" in table and "| not in the paper | 98.5% ± 0.2% (3 trials) |" in table
    assert "| 5000 |" in table


def test_partial_metrics_render_as_dashes(tmp_path):
    table = results_table_markdown({"latent_dim": M})
    assert table.count("—") == len(table.splitlines()) - 3  # every row but M and the two header lines
    md_path, html_path = write_report(tmp_path, {"rotation": {"labels": [0, 1, 2]}}, {})
    assert "—" in md_path.read_text() and "—" in html_path.read_text()


def test_a_relative_report_directory_links_and_embeds_its_figures(tmp_path, monkeypatch):
    """The figures' paths as the run opens them (relative to the working directory, like --out runs/x)."""
    monkeypatch.chdir(tmp_path)
    out = Path("runs/report")
    figure = out / "figures" / "fig2.png"
    figure.parent.mkdir(parents=True)
    Image.new("RGB", (4, 3), "white").save(figure)
    md_path, html_path = write_report(out, full_metrics(), {"fig2": figure})
    assert "(figures/fig2.png)" in md_path.read_text()
    assert html_path.read_text().count("data:image/png;base64,") == 1


def test_text_is_escaped_in_html_and_markdown(tmp_path, figures):
    md_path, html_path = write_report(tmp_path, full_metrics(), figures)
    page, markdown = html_path.read_text(), md_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in markdown and "\\<script\\>" in markdown


# --- Any image shape, any labels: RGB 3 x 32 x 32 (and grey 1 x 20 x 12) images, 4 named labels ---------------

NAMES = ("cat", "dog", "owl", "elk")
SHAPES = {"rgb": (3, 32, 32), "grey": (1, 20, 12)}


def shaped(count: int, shape: tuple[int, ...]) -> np.ndarray:
    return RNG.random((count, *shape))


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved during the test, by file name, with the texts written on it."""
    figures = {}
    save = report_figures.save_figure

    def keep(figure, path):
        figures[Path(path).name] = {text.get_text() for text in figure.findobj(Text)}
        return save(figure, path)

    for module in (report_figures, sfvq_figures, fragmentation_figures):
        monkeypatch.setattr(module, "save_figure", keep)
    return figures


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_figure2_and_figure7_draw_any_image_shape(tmp_path, shape):
    assert_png(figure2(shaped(9, shape), shaped(9, shape), shaped(4, shape), tmp_path / "fig2.png"))
    rows = {title: shaped(4, shape) for title in ("ground truth", "noisy", "top 1")}
    assert_png(figure7(rows, tmp_path / "fig7.png"))


def test_figure3_names_four_labels(tmp_path, drawn):
    labels = np.repeat(np.arange(4), [2, 1, 2, 1])
    panel = {
        "latents": RNG.normal(size=(len(labels), 16)),
        "latent_labels": labels,
        "decoded_etas": shaped(4, SHAPES["rgb"]),
        "components": {label: RNG.normal(size=50) for label in range(4)},
    }
    assert_png(figure3({"step 4a": panel}, tmp_path / "fig3.png", label_names=NAMES))
    assert set(NAMES) <= drawn["fig3.png"]


def test_figure4_lays_out_the_given_labels_as_columns(tmp_path, monkeypatch):
    columns, grid = [], report_figures.image_grid

    def recording_grid(images, count):
        columns.append(count)
        return grid(images, count)

    monkeypatch.setattr(report_figures, "image_grid", recording_grid)
    gram = RNG.normal(size=(8, 8))
    assert_png(figure4(shaped(8, SHAPES["rgb"]), shaped(8, SHAPES["rgb"]), gram, gram, tmp_path / "fig4.png", labels=4))
    assert columns == [4, 4]


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.slow
def test_figure5_writes_label_names(tmp_path, drawn, shape):
    cumulative = np.linspace(0.9, 1.0, 16).tolist()
    path = figure5(
        shaped(4, shape),
        [0, 1, 2, 3],
        [0, 1, 3, 3],
        [0.9, 0.92],
        0.95,
        [0.93, 0.94],
        cumulative,
        tmp_path / "fig5.png",
        label_names=NAMES,
    )
    assert_png(path)
    assert {"cat/cat", "owl/elk"} <= drawn["fig5.png"]


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_figure8_draws_any_image_shape(tmp_path, shape):
    sequence = RNG.random((4, 2, *shape))
    assert_png(figure8(sequence, tmp_path / "fig8.png", caption="labels cat -> elk"), min_side=80)


def test_panoptic_map_writes_label_names(tmp_path, drawn):
    path = sfvq_figures.panoptic_map(
        shaped(6, SHAPES["rgb"]), [0, 0, 1, 2, 3, 3], tmp_path / "panoptic.png", columns=4, label_names=NAMES
    )
    assert_png(path, min_side=80)
    assert set(NAMES) <= drawn["panoptic.png"]


def test_fragmentation_image_figures_draw_rgb_and_write_label_names(tmp_path, drawn):
    rows = {"box b=1": shaped(3, SHAPES["rgb"]), "N(0, I)": shaped(3, SHAPES["rgb"])}
    data = {"name": "ae", "sample_images": rows, "path_images": rows}
    steps = {"label": [0, 2, 3], "top_probability": [0.9, 0.5, 0.7], "mahalanobis": [1.0, 3.0, 1.0]}
    record = {
        "samplers": {name: {"sample_confidence": 0.8, "frechet_distance": 12.0} for name in rows},
        "bulk": {"mahalanobis_threshold": 2.0},
        "paths": dict.fromkeys(rows, steps),
    }
    assert_png(fragmentation_figures.samplers_figure(data, record, tmp_path / "samplers.png"), min_side=80)
    assert_png(fragmentation_figures.paths_figure(data, record, tmp_path / "paths.png", label_names=NAMES), min_side=80)
    assert {"cat 0.90", "owl 0.50", "elk 0.70"} <= drawn["paths.png"]
