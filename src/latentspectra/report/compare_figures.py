"""The figures and the report (Markdown and self-contained HTML) of `latentspectra compare`, drawn from plain
arrays and its record; nothing here computes results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .document import Block, FigureRef, Heading, Paragraph, Table
from .figures import heatmap, image_rows, new_figure, save_figure


def direction_figure(images: np.ndarray, path: Path, method: str, shift: float) -> Path:
    """One row per direction k of ``images`` (K, steps, H, W) or (K, steps, C, H, W) in [0, 1]: G(z0 + s d_k)
    for s evenly from -``shift`` to +``shift``."""
    rows = {f"d{k}": row for k, row in enumerate(images)}
    return image_rows(rows, path, f"{method}: G(z0 + s d_k), s from -{shift:g} to +{shift:g}")


def rescoring_figure(method: Mapping[str, Any], labels: Sequence[str], measures: Sequence[str], path: Path,
                     name: str) -> Path:
    """The disentanglement figure of one method: its re-scoring matrix |change| (directions x labels), and beside
    it the image measurements' (directions x measures, in standard deviations) where there are any; a
    disentangled direction is one bright cell in its row."""
    panels = [("label probabilities", np.abs(np.array(method["rescoring"])), labels)]
    if method.get("measure_rescoring") is not None:
        panels.append(("image measurements (SD)", np.abs(np.array(method["measure_rescoring"])), measures))
    figure = new_figure(5.0 * len(panels), 4.0)
    for index, (title, matrix, names) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), index)
        heatmap(ax, matrix, f"{name}: |change| of {title}", cmap="magma")
        ax.set_xticks(range(len(names)), list(names), rotation=90, fontsize=7)
        ax.set_ylabel("direction k")
    return save_figure(figure, path)


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def measure_boundary_blocks(record: Mapping[str, Any]) -> list[Block]:
    """InterFaceGAN's boundaries of the image measurements, where compare fitted them: per measure the held-out
    accuracy, the change of that measure along its own normal at the shift t (in standard deviations), the
    largest change of another measure and the largest label-probability change."""
    found = record["methods"].get("interfacegan", {}).get("measure_boundaries")
    if found is None:
        return []
    heading = Heading(f"InterFaceGAN boundaries of the image measurements ({found['samples']} scored latents)")
    if "skipped" in found:
        return [heading, Paragraph(f"Not fitted: {found['skipped']}")]
    rows = []
    for index, name in enumerate(found["measures"]):
        changes = found["measure_rescoring"][index]
        others = max(abs(value) for column, value in enumerate(changes) if column != index)
        labels = max(abs(value) for value in found["rescoring"][index])
        rows.append((name, f"{found['validation_accuracy'][index]:.3f}", f"{changes[index]:+.3f}", f"{others:.3f}",
                     f"{labels:.3f}"))
    return [heading, Table(("measure", "boundary accuracy", "own change (SD)", "largest other measure change (SD)",
                            "largest label change"), tuple(rows))]


def compare_blocks(record: Mapping[str, Any], figures: Mapping[str, Path]) -> list[Block]:
    """The report of `latentspectra compare`: per method its cost, disentanglement, largest re-scoring change,
    reconstructor accuracy and path correlation (or why it was skipped), per label-edit approach its success
    rate and distances, then every figure (``figures``: caption -> PNG path)."""
    methods = []
    for name, method in record["methods"].items():
        if "skipped" in method:
            methods.append((name, f"skipped: {method['skipped']}", "", "", "", "", "", "", ""))
            continue
        largest = max(abs(value) for row in method["rescoring"] for value in row)
        methods.append((name, str(method["directions"]), f"{method['fit_seconds']:.1f}",
                        f"{method['eval_seconds']:.1f}", f"{method['disentanglement']:.3f}", f"{largest:.3f}",
                        f"{method['reconstructor_accuracy']:.3f}", f"{method['reconstructor_seconds']:.1f}",
                        f"{method['path_correlation']:.3f}"))
    edits = record["label_edits"]
    approaches = [(name, str(edit["pairs_measured"]), str(edit["latents"]), _number(edit["success_rate"]),
                   _number(edit["mean_latent_distance"]), _number(edit["mean_feature_distance"]),
                   _number(edit["flip_rate"]), _number(edit["median_latent_distance_to_flip"]),
                   _number(edit["median_feature_distance_at_flip"]))
                  for name, edit in edits["approaches"].items()]
    strongest = max((edit["flipped_within"] for edit in edits["approaches"].values()), default=0)
    return [
        Heading(f"Direction methods compared ({record['models']})", level=1),
        Paragraph(f"K = {record['directions']} directions, shift t = {record['shift']:g}, {record['test_latents']} "
                  f"test latents, seed {record['seed']}. Re-scoring (InterFaceGAN, SeFa): mean change of "
                  "C(G(z + t d_k)) label probabilities; disentanglement: mean over directions of max |change| / sum "
                  "|change|. Reconstructor accuracy (Voynov & Babenko): a fresh reconstructor trained on the frozen "
                  "directions tells which of them moved G(z), accuracy on fresh draws (chance "
                  f"{1 / record['directions']:.2f}); path correlation (after WarpedGANSpace): mean over directions of "
                  "the largest |Pearson correlation| between s and a label probability along z + s d_k."),
        Table(("method", "directions", "fit s", "eval s", "disentanglement", "largest mean change",
               "reconstructor accuracy", "reconstructor s", "path correlation"), tuple(methods)),
        *measure_boundary_blocks(record),
        Heading(f"Label edits a -> a + 1 (feature distance: {edits['feature_space']})"),
        Paragraph("At each approach's own step (s = 1): success rate and mean distances; made at multiples s of "
                  f"that step up to {strongest:g}, the share of latents some s flips, and the median latent "
                  "distance needed and feature distance at the first s that flips each."),
        Table(("approach", "pairs", "latents", "success rate", "mean latent distance", "mean feature distance",
               f"flipped by s <= {strongest:g}", "median latent distance to flip",
               "median feature distance at flip"), tuple(approaches)),
        Heading("Figures"),
        *(FigureRef(caption, path) for caption, path in figures.items()),
    ]
