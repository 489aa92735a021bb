"""Figures of ``latentspectra fragmentation``, drawn from the study's arrays and records (nothing computed here
beyond histogram binning and the Gaussian density curves of fits the study made).

Per model, in ``figures/<model>/``: components.png (per-component Gaussian fits and histograms of the
dominant components), correlation.png, radii.png (the codes' radius against the box shells),
projections.png (coordinate planes and the flat slice), samplers.png (decoded samples per sampler),
paths.png (decoded images along the paths); and ``figures/comparison.png``, the samplers of every model
side by side against the GAN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from .figures import TILE_INCHES, annotate_tiles, heatmap, label_name, new_figure, save_figure, show_images, tile_inches


def _gaussian_density(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def components_figure(data: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> Path:
    """(a) mean +- std of every component, dominant ones marked; (b) histograms of the dominant components
    with their Gaussian fits."""
    dominant = record["dominant_components"]
    figure = new_figure(14, 4.2)
    overview, *histograms = figure.subplots(1, 1 + len(dominant), width_ratios=[4] + [1.2] * len(dominant))
    means, stds = np.asarray(record["component_means"]), np.asarray(record["component_stds"])
    overview.errorbar(np.arange(len(means)), means, yerr=stds, fmt=".", markersize=3, elinewidth=0.6, color="C0")
    marked = [entry["component"] for entry in dominant]
    overview.plot(marked, means[marked], "o", color="C3", label="dominant")
    overview.axhline(0, color="k", linewidth=0.5)
    overview.set(xlabel="component j", ylabel="mean +- std", title=f"{data['name']}: Gaussian fit per component")
    overview.legend()
    codes = np.asarray(data["codes"])
    for ax, entry in zip(histograms, dominant):
        values = codes[:, entry["component"]]
        ax.hist(values, bins=40, density=True, color="0.7")
        x = np.linspace(values.min(), values.max(), 200)
        ax.plot(x, _gaussian_density(x, entry["mean"], entry["std"]), "C3")
        ax.set_title(f"x_{entry['component']}", fontsize=9)
        ax.set_yticks([])
    return save_figure(figure, path)


def correlation_figure(data: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> Path:
    """The correlation matrix of the components, its strongest pairs in the title."""
    figure = new_figure(6.5, 5.8)
    ax = figure.subplots()
    pairs = record["correlation"]["strongest_pairs"][:3]
    strongest = ", ".join(f"({p['components'][0]}, {p['components'][1]}): {p['r']:+.2f}" for p in pairs)
    heatmap(
        ax,
        np.asarray(data["correlation"]),
        f"{data['name']}: correlation of components\nstrongest {strongest}",
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
    )
    return save_figure(figure, path)


def radii_figure(data: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> Path:
    """Histogram of the codes' radius |z| and of box-sampled vectors' radius for each b, with b sqrt(N/3)."""
    figure = new_figure(8, 4)
    ax = figure.subplots()
    ax.hist(data["radii"], bins=80, density=True, color="0.5", label="codes")
    for index, shell in enumerate(record["box_shells"]):
        color = f"C{index}"
        ax.hist(
            data["box_radii"][shell["bound"]],
            bins=40,
            density=True,
            histtype="step",
            color=color,
            label=f"box b={shell['bound']:g}",
        )
        ax.axvline(shell["radius_formula"], color=color, linestyle=":", linewidth=1)
    ax.set(
        xlabel="radius |z|",
        ylabel="density",
        title=f"{data['name']}: radius of codes and of box samples (dotted: b sqrt(N/3))",
    )
    ax.legend(fontsize=8)
    return save_figure(figure, path)


def _scatter(ax: Axes, codes: np.ndarray, i: int, j: int, title: str, mask: np.ndarray | None = None) -> None:
    shown = codes if mask is None else codes[mask]
    ax.scatter(codes[:, i], codes[:, j], s=1, color="0.85", rasterized=True)
    ax.scatter(shown[:, i], shown[:, j], s=1, color="C0", rasterized=True)
    ax.plot([0], [0], "k+", markersize=12)
    ax.set(xlabel=f"x_{i}", ylabel=f"x_{j}", title=title)


def projections_figure(data: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> Path:
    """Codes projected onto the plane of the two dominant components and of the strongest-correlated pair,
    and the shown codes inside the flat slice |x_k| <= b around the dominant plane (``data["in_slice"]``;
    the counts over all codes are the record's)."""
    codes = np.asarray(data["codes"])
    first, second = (entry["component"] for entry in record["dominant_components"][:2])
    i, j = record["correlation"]["strongest_pairs"][0]["components"]
    bound = data["slice_bound"]
    counts = next(entry for entry in record["slices"] if entry["bound"] == bound)
    figure = new_figure(15, 4.6)
    dominant_ax, pair_ax, slice_ax = figure.subplots(1, 3)
    _scatter(dominant_ax, codes, first, second, f"{data['name']}: dominant plane (+ = origin)")
    _scatter(pair_ax, codes, i, j, "strongest-correlated pair")
    _scatter(
        slice_ax,
        codes,
        first,
        second,
        f"slice |x_k| <= {bound:g}: {counts['codes_in_slice_at_origin']} of "
        f"{record['points']} codes (at the centre: "
        f"{counts['codes_in_slice_at_centre']})",
        mask=np.asarray(data["in_slice"]),
    )
    return save_figure(figure, path)


def samplers_figure(data: Mapping[str, Any], record: Mapping[str, Any], path: Path) -> Path:
    """One row of decoded samples per sampler, titled with its confidence share and Fréchet distance."""
    rows = data["sample_images"]
    columns = max(len(images) for images in rows.values())
    figure = new_figure(3.2 + tile_inches(next(iter(rows.values()))) * columns, 0.4 + 1.15 * TILE_INCHES * len(rows))
    for ax, (name, images) in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        metrics = record["samplers"][name]
        show_images(
            ax,
            images,
            columns,
            side_title=f"{name}\nconf {metrics['sample_confidence']:.0%}, FD {metrics['frechet_distance']:.1f}",
        )
    figure.suptitle(f"{data['name']}: decoded samples per sampler")
    return save_figure(figure, path)


def paths_figure(
    data: Mapping[str, Any], record: Mapping[str, Any], path: Path, label_names: Sequence[str] | None = None
) -> Path:
    """Decoded images along each path, one row per path; each image labelled with the classifier's label
    (written as ``label_names``, default: the integers) and top probability, in red where the latent is
    outside the codes' bulk."""
    rows = data["path_images"]
    columns = max(len(images) for images in rows.values())
    threshold = record["bulk"]["mahalanobis_threshold"]
    figure = new_figure(2.6 + 0.6 * columns, 0.5 + 0.75 * len(rows))
    for ax, (name, images) in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        show_images(ax, images, columns, side_title=name)
        steps = record["paths"][name]
        texts = [
            f"{label_name(label, label_names)} {probability:.2f}"
            for label, probability in zip(steps["label"], steps["top_probability"])
        ]
        colors = ["red" if distance > threshold else "yellow" for distance in steps["mahalanobis"]]
        annotate_tiles(ax, images, columns, texts, colors, fontsize=6)
    figure.suptitle(f"{data['name']}: decoded paths (label, top probability; red = outside the bulk)")
    return save_figure(figure, path)


def comparison_figure(records: Mapping[str, Mapping[str, Any]], gan: Mapping[str, Any], path: Path) -> Path:
    """Per sampler and model: the Fréchet distance (log scale; the GAN's as a line) and the share of
    samples inside the codes' bulk."""
    names = list(next(iter(records.values()))["samplers"])
    figure = new_figure(14, 4.8)
    distance_ax, bulk_ax = figure.subplots(1, 2)
    width = 0.8 / len(records)
    positions = np.arange(len(names))
    for index, (model, record) in enumerate(records.items()):
        offset = positions + (index - (len(records) - 1) / 2) * width
        distance_ax.bar(offset, [record["samplers"][n]["frechet_distance"] for n in names], width, label=model)
        bulk_ax.bar(offset, [record["samplers"][n]["inside_bulk"] for n in names], width, label=model)
    distance_ax.axhline(gan["frechet_distance"], color="k", linestyle="--", label="GAN G(z), z ~ N(0, I)")
    distance_ax.set(yscale="log", ylabel="classifier-feature Fréchet distance to the test set", title="decoded samples")
    bulk_ax.set(ylabel="share of samples inside the codes' bulk", title="samples inside the bulk (Mahalanobis)")
    for ax in (distance_ax, bulk_ax):
        ax.set_xticks(positions, names, rotation=35, ha="right")
    distance_ax.legend(fontsize=8)
    return save_figure(figure, path)


PER_MODEL = {
    "components": components_figure,
    "correlation": correlation_figure,
    "radii": radii_figure,
    "projections": projections_figure,
    "samplers": samplers_figure,
    "paths": paths_figure,
}


def draw_all(
    directory: Path,
    figure_data: Mapping[str, Mapping[str, Any]],
    records: Mapping[str, Mapping[str, Any]],
    gan: Mapping[str, Any],
    label_names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Every figure of the study under ``directory``, labels written as ``label_names`` (default: the
    integers); returns their paths by "model/figure" name."""
    per_model: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], Path], Path]] = {
        **PER_MODEL,
        "paths": partial(paths_figure, label_names=label_names),
    }
    drawn = {}
    for model, data in figure_data.items():
        for name, draw in per_model.items():
            drawn[f"{model}/{name}"] = draw(data, records[model], Path(directory) / model / f"{name}.png")
    drawn["comparison"] = comparison_figure(records, gan, Path(directory) / "comparison.png")
    return drawn
