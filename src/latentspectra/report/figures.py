"""The figures of the reproduction report, drawn from plain numpy arrays.

Each public function draws one figure of Toledo-Marin & Glazier (PLOS ONE 18(6): e0287736, 2023) and
writes it as one PNG, atomically, returning its path. Images are floats in [0, 1] of shape (N, H, W) or
(N, C, H, W) with C = 1 (drawn grey) or C = 3 (drawn in colour), of any height and width. Labels are the
integers 0..l-1; a figure that writes them takes ``label_names`` (default: the integers themselves).
Figures are ``matplotlib.figure.Figure`` objects, so no pyplot and no backend selection is involved.
Nothing here computes results: the arrays come from the experiments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator

from ..io import atomic_write

DPI = 100
GRAY: dict[str, Any] = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
TILE_INCHES = 0.45  # on-page height of one image in an image grid (its width follows the image's aspect)
CHANNELS = (1, 3)  # grey, RGB


def drawable_images(images: np.ndarray) -> np.ndarray:
    """Images (N, H, W) or (N, C, H, W), C in CHANNELS, as floats ready to draw: (N, H, W) grey or
    (N, H, W, 3) colour (channels last).

    Raises:
        ValueError: any other shape.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim == 3:
        return images
    if images.ndim != 4 or images.shape[1] not in CHANNELS:
        raise ValueError(f"expected images (N, H, W) or (N, C, H, W) with C in {CHANNELS}, got shape {images.shape}")
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def image_size(images: np.ndarray) -> tuple[int, int]:
    """(H, W) of images (N, H, W) or (N, C, H, W)."""
    height, width = np.shape(images)[-2:]
    return height, width


def tile_inches(images: np.ndarray) -> float:
    """On-page width of one image of an image grid: TILE_INCHES scaled by the images' width / height."""
    height, width = image_size(images)
    return TILE_INCHES * width / height


def image_grid(images: np.ndarray, columns: int, fill: float = 1.0) -> np.ndarray:
    """Tile images row-major into one array ``columns`` wide, with a 1-pixel gap of ``fill``.

    Images (N, H, W) or (N, 1, H, W) give a grey grid (rows (H + 1) - 1, columns (W + 1) - 1); images
    (N, 3, H, W) a colour grid of the same height and width with 3 channels last. The last row is padded
    with ``fill``. Every image panel of Figs. 2-5, 7 and 8 is one such grid.

    Raises:
        ValueError: images of another shape (see `drawable_images`), or ``columns`` < 1.
    """
    images = drawable_images(images)
    if columns < 1:
        raise ValueError(f"expected columns >= 1, got {columns}")
    count, height, width, *channels = images.shape
    rows = max(1, math.ceil(count / columns))
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1, *channels), fill, dtype=float)
    for index, image in enumerate(images):
        top, left = tile_corner(index, columns, (height, width))
        grid[top : top + height, left : left + width] = image
    return grid


def tile_corner(index: int, columns: int, size: tuple[int, int]) -> tuple[int, int]:
    """(row, column) pixel of the top-left corner of image ``index`` in an `image_grid` ``columns`` wide
    of images of ``size`` (H, W)."""
    height, width = size
    return (index // columns) * (height + 1), (index % columns) * (width + 1)


def label_name(label: int, label_names: Sequence[str] | None = None) -> str:
    """The name of the integer ``label``: ``label_names[label]``, or the integer itself without names."""
    return str(label) if label_names is None else label_names[int(label)]


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure of ``width`` x ``height`` inches, not tied to any GUI backend."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically and return the path."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))


def _square_columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def show_images(ax: Axes, images: np.ndarray, columns: int, title: str = "", side_title: str = "") -> None:
    """Draw ``images`` (grey or colour, see `image_grid`) as one grid into ``ax``: no ticks or frame,
    ``title`` above, ``side_title`` at the left."""
    grid = image_grid(images, columns)
    if grid.ndim == 2:
        ax.imshow(grid, **GRAY)
    else:
        ax.imshow(np.clip(grid, 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    ax.set_title(title)
    ax.set_ylabel(side_title, rotation=0, ha="right", va="center")


def annotate_tiles(
    ax: Axes, images: np.ndarray, columns: int, texts: Sequence[str], colors: Sequence[str], **style: Any
) -> None:
    """Write ``texts[k]`` in ``colors[k]`` at the top-left corner of image k of the grid that `show_images`
    drew of ``images`` into ``ax``, ``columns`` wide."""
    size = image_size(images)
    for index, (text, color) in enumerate(zip(texts, colors)):
        top, left = tile_corner(index, columns, size)
        ax.text(left + 1, top + 1, text, ha="left", va="top", color=color, **style)


def heatmap(ax: Axes, array: np.ndarray, title: str, **style: Any) -> None:
    """Draw a 2-D array as a heat image with a colorbar."""
    image = ax.imshow(array, interpolation="nearest", **style)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)


def _latent_image(vector: np.ndarray) -> np.ndarray:
    """A latent vector as a square heat image (10 x 10 for M = 100), or a 1 x M strip if M is not square."""
    side = math.isqrt(vector.size)
    return vector.reshape(side, side) if side * side == vector.size else vector.reshape(1, -1)


def _draw_latents(ax: Axes, latents: np.ndarray, latent_labels: np.ndarray, label_names: Sequence[str] | None) -> None:
    """Latent vectors as heat images, one row per label (rows padded with blanks to the same length)."""
    latents, latent_labels = np.asarray(latents, dtype=float), np.asarray(latent_labels)
    labels = np.unique(latent_labels)
    groups = [[_latent_image(vector) for vector in latents[latent_labels == label]] for label in labels]
    columns = max(len(group) for group in groups)
    blank = np.full_like(groups[0][0], np.nan)
    tiles = np.stack([tile for group in groups for tile in group + [blank] * (columns - len(group))])
    limit = float(np.max(np.abs(latents)))
    heatmap(
        ax,
        image_grid(tiles, columns, fill=np.nan),
        "latent vectors z, by label",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
    )
    height = tiles.shape[1]
    ax.set_yticks(
        [row * (height + 1) + (height - 1) / 2 for row in range(len(labels))],
        [label_name(label, label_names) for label in labels],
    )
    ax.set_xticks([])
    ax.set_ylabel("label")


def _draw_component_histograms(
    ax: Axes, components: Mapping[int, np.ndarray], label_names: Sequence[str] | None
) -> None:
    """Per-label densities of pooled latent components, with the N(0, 1) density for reference."""
    for label, values in components.items():
        ax.hist(np.ravel(values), bins=40, density=True, histtype="step", label=label_name(label, label_names))
    x = np.linspace(-4.0, 4.0, 201)
    ax.plot(x, np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi), "k--", label="N(0, 1)")
    ax.set(xlabel="latent component", ylabel="density", title="components per label")
    ax.legend(title="label", fontsize=6, title_fontsize=7, ncols=max(2, math.ceil(len(components) / 10)))


def figure2(real: np.ndarray, decoded: np.ndarray, samples: np.ndarray, path: Path) -> Path:
    """Fig. 2: test images, their encode -> decode reconstructions G(E(x)) and random samples G(z)."""
    figure = new_figure(12, 4.4)
    panels = {"test images": real, "encode -> decode": decoded, "random samples G(z)": samples}
    for ax, (title, images) in zip(figure.subplots(1, 3), panels.items()):
        show_images(ax, images, _square_columns(len(images)), title)
    return save_figure(figure, path)


def figure3(panels: Mapping[str, Mapping[str, Any]], path: Path, label_names: Sequence[str] | None = None) -> Path:
    """Fig. 3: per latent source (Methods step 4a, 4b, ...), latent vectors by label, the decoded label
    means G(eta) and the per-label distribution of latent components against N(0, 1); labels written
    as ``label_names`` (default: the integers)."""
    figure = new_figure(15, 3.6 * len(panels))
    for subfigure, (source, panel) in zip(figure.subfigures(len(panels), 1, squeeze=False)[:, 0], panels.items()):
        _draw_source(subfigure, source, panel, label_names)
    return save_figure(figure, path)


def _draw_source(
    subfigure: SubFigure, source: str, panel: Mapping[str, Any], label_names: Sequence[str] | None
) -> None:
    subfigure.suptitle(source)
    latent_ax, eta_ax, histogram_ax = subfigure.subplots(1, 3, width_ratios=[1.0, 2.2, 1.2])
    _draw_latents(latent_ax, panel["latents"], panel["latent_labels"], label_names)
    decoded_etas = panel["decoded_etas"]
    show_images(eta_ax, decoded_etas, len(decoded_etas), "G(eta) per label")
    _draw_component_histograms(histogram_ax, panel["components"], label_names)


def figure4(
    decoded_etas: np.ndarray,
    decoded_xis: np.ndarray,
    gram_etas: np.ndarray,
    gram_xis: np.ndarray,
    path: Path,
    *,
    labels: int | None = None,
) -> Path:
    """Fig. 4: decoded label means G(eta) and quasi-eigenvectors G(xi) (rows = sets, columns = the
    ``labels`` labels, in the order of Eq. 5) and the Gram matrices of the etas and of the xis. Without
    ``labels`` the images are laid out in a square grid (10 columns for M = 100)."""
    columns = labels or _square_columns(len(decoded_etas))
    figure = new_figure(12, 11)
    (eta_ax, xi_ax), (gram_eta_ax, gram_xi_ax) = figure.subplots(2, 2)
    show_images(eta_ax, decoded_etas, columns, "G(eta): rows = sets, columns = labels")
    show_images(xi_ax, decoded_xis, columns, "G(xi): rows = sets, columns = labels")
    heatmap(gram_eta_ax, np.asarray(gram_etas), "<eta_a|eta_b>", cmap="viridis")
    heatmap(gram_xi_ax, np.asarray(gram_xis), "<xi_a|xi_b> / C", cmap="viridis")
    return save_figure(figure, path)


def figure5(
    batch_images: np.ndarray,
    batch_true: Sequence[int] | np.ndarray,
    batch_pred: Sequence[int] | np.ndarray,
    lsd_trials: Sequence[float],
    classifier_accuracy: float,
    encode_decode_trials: Sequence[float],
    cumulative: Sequence[float],
    path: Path,
    label_names: Sequence[str] | None = None,
) -> Path:
    """Fig. 5: (a) a batch labelled by LSD (true/pred, written as ``label_names``, default: the integers),
    (b) accuracy per trial of LSD top-1 and of encode -> decode against the classifier, (c) P(true label
    among the n largest |c_k|)."""
    figure = new_figure(16, 5)
    batch_ax, trials_ax, cumulative_ax = figure.subplots(1, 3)
    _draw_predictions(batch_ax, batch_images, batch_true, batch_pred, label_names)
    _draw_trials(trials_ax, lsd_trials, classifier_accuracy, encode_decode_trials)
    _draw_cumulative(cumulative_ax, cumulative)
    return save_figure(figure, path)


def _draw_predictions(
    ax: Axes,
    images: np.ndarray,
    true: Sequence[int] | np.ndarray,
    pred: Sequence[int] | np.ndarray,
    label_names: Sequence[str] | None,
) -> None:
    columns = _square_columns(len(images))
    show_images(ax, images, columns, "(a) LSD labels: true/pred")
    texts = [f"{label_name(label, label_names)}/{label_name(guess, label_names)}" for label, guess in zip(true, pred)]
    colors = ["green" if label == guess else "red" for label, guess in zip(true, pred)]
    annotate_tiles(ax, images, columns, texts, colors, fontsize=8, fontweight="bold")


def _draw_trials(
    ax: Axes, lsd_trials: Sequence[float], classifier_accuracy: float, encode_decode_trials: Sequence[float]
) -> None:
    for name, values, style in (("LSD top-1", lsd_trials, "o-"), ("encode -> decode", encode_decode_trials, "s-")):
        ax.plot(np.arange(1, len(values) + 1), 100 * np.asarray(values, dtype=float), style, label=name)
    ax.axhline(100 * classifier_accuracy, color="k", linestyle="--", label=f"classifier ({classifier_accuracy:.1%})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel="accuracy (%)", title="(b) accuracy per trial")
    ax.legend()


def _draw_cumulative(ax: Axes, cumulative: Sequence[float]) -> None:
    values = 100 * np.asarray(cumulative, dtype=float)
    ax.semilogx(np.arange(1, len(values) + 1), values, "-")
    for n in (1, 4):
        if n <= len(values):
            ax.plot(n, values[n - 1], "o", color="C3")
            ax.annotate(
                f"n = {n}: {values[n - 1]:.1f}%", (n, values[n - 1]), textcoords="offset points", xytext=(8, -14)
            )
    ax.margins(y=0.1)
    ax.set(xlabel="n (largest |c_k| kept)", ylabel="true label among top n (%)", title="(c) cumulative top-n")


def figure6(sorted_amplitudes: np.ndarray, true_rank: np.ndarray, path: Path) -> Path:
    """Fig. 6: (a) mean normalised |c| against rank, for latents whose true label comes 1st, 2nd, 3rd;
    (b) densities of the 2nd, 3rd and 4th largest normalised |c|."""
    amplitudes, true_rank = np.asarray(sorted_amplitudes, dtype=float), np.asarray(true_rank)
    figure = new_figure(12, 4.5)
    mean_ax, density_ax = figure.subplots(1, 2)
    ranks = np.arange(1, amplitudes.shape[1] + 1)
    for rank in (1, 2, 3):
        chosen = amplitudes[true_rank == rank]
        if len(chosen):
            mean_ax.plot(
                ranks,
                chosen.mean(axis=0),
                "o-",
                markersize=3,
                label=f"true label at rank {rank} ({len(chosen)} latents)",
            )
    mean_ax.set(xscale="log", xlabel="rank", ylabel="mean |c| / max |c|", title="(a) sorted amplitudes")
    mean_ax.legend()
    for column, name in ((1, "2nd"), (2, "3rd"), (3, "4th")):
        density_ax.hist(
            amplitudes[:, column], bins=30, range=(0.0, 1.0), density=True, histtype="step", label=f"{name} largest"
        )
    density_ax.set(xlabel="|c| / max |c|", ylabel="density", title="(b) runner-up amplitudes")
    density_ax.legend()
    return save_figure(figure, path)


def image_rows(rows: Mapping[str, np.ndarray], path: Path, title: str = "") -> Path:
    """One row of images (N, H, W) or (N, C, H, W) per entry, titled at the left with its key, ``title`` above."""
    columns = max(len(images) for images in rows.values())
    width = tile_inches(next(iter(rows.values())))
    figure = new_figure(1.5 + width * columns, 0.3 + 1.1 * TILE_INCHES * len(rows) + 0.3 * bool(title))
    for ax, (side_title, images) in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        show_images(ax, images, columns, side_title=side_title)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def figure7(rows: Mapping[str, np.ndarray], path: Path) -> Path:
    """Fig. 7: denoising; one row per entry (ground truth, noisy, reconstructions), titled at the left."""
    return image_rows(rows, path)


def figure8(sequence: np.ndarray, path: Path, caption: str = "") -> Path:
    """Fig. 8: rotation in latent space; columns = steps along the path, rows = examples, caption below.
    ``sequence`` is (steps, examples, H, W) or (steps, examples, C, H, W)."""
    sequence = np.asarray(sequence, dtype=float)
    steps, examples, *image_shape = sequence.shape
    figure = new_figure(0.5 + tile_inches(sequence) * steps, 1.0 + TILE_INCHES * examples)
    ax = figure.subplots()
    show_images(
        ax, sequence.swapaxes(0, 1).reshape(-1, *image_shape), steps, "rotation: columns = steps, rows = examples"
    )
    ax.set_xlabel(caption, wrap=True)
    return save_figure(figure, path)
