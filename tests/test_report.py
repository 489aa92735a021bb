"""The report layer: every figure writes a readable PNG, image grids tile correctly, and the report renders
to Markdown and self-contained HTML, even from a partial metrics dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentspectra.report import (figure2, figure3, figure4, figure5, figure6, figure7, figure8, image_grid,
                                  results_table_markdown, write_report)

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
        assert np.all(grid[row * 3:row * 3 + 2, column * 4:column * 4 + 3] == k)
    assert np.all(grid[2, :] == -1.0) and np.all(grid[:, 3] == -1.0)  # 1-pixel gaps
    assert np.all(grid[6:, 4:] == -1.0)  # padded last row


def test_image_grid_rejects_wrong_shape():
    with pytest.raises(ValueError):
        image_grid(np.zeros((4, 4)), columns=2)


def test_figure2(tmp_path):
    assert_png(figure2(images(9), images(9), images(9), tmp_path / "fig2.png"))


@pytest.mark.parametrize("latent_dim", [M, 7])
def test_figure3(tmp_path, latent_dim):
    def panel():
        labels = np.repeat(np.arange(3), [2, 1, 2])
        return {"latents": RNG.normal(size=(len(labels), latent_dim)), "latent_labels": labels,
                "decoded_etas": images(3), "components": {label: RNG.normal(size=50) for label in range(3)}}

    panels = {"step 4a: encoded training set": panel(), "step 4b: z ~ N(0, I)": panel()}
    assert_png(figure3(panels, tmp_path / "fig3.png"))


def test_figure4(tmp_path):
    gram = RNG.normal(size=(M, M))
    assert_png(figure4(images(M), images(M), gram, gram, tmp_path / "fig4.png"))


def test_figure5(tmp_path):
    cumulative = np.linspace(0.9, 1.0, M).tolist()
    path = figure5(images(6), [1, 2, 3, 4, 5, 6], [1, 2, 0, 4, 5, 7], [0.91, 0.92, 0.93], 0.989, [0.94, 0.95, 0.93],
                   cumulative, tmp_path / "fig5.png")
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
        "dataset": "mnist", "seed": 0, "latent_dim": M, "per_set": 5000,
        "versions": {"latentspectra": "0.1.0", "torch": "2.13 <script>alert(1)</script>"},
        "classifier_accuracy": trial(0.9876), "encode_decode_accuracy": trial(0.9412),
        "lsd_top1_accuracy": trial(0.9203), "lsd_topn_cumulative": [0.92, 0.95, 0.97, 0.985] + [1.0] * (M - 4),
        "basis_orthogonality_error": 3.2e-15, "orthogonalisation": "symmetric",
        "lsd_by_orthogonalisation": {"gram-schmidt": {"top1": trial(0.8371), "top4": trial(0.9612)},
                                     "symmetric": {"top1": trial(0.9203), "top4": trial(0.985)}},
        "denoising": {"images": 100, "sigmas": sigmas, "methods": methods,
                      "accuracy": {method: [0.9, 0.8, 0.7] for method in methods},
                      "psnr": {method: [20.0, 15.5, 12.25] for method in methods}},
        "rotation": {"images": 50, "labels": list(range(10)), "dtheta": 0.01, "steps": 157,
                     "modes": {"literal": mode, "plane": mode}},
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
