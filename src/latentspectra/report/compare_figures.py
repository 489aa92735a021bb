"""The figures and the Markdown report of `latentspectra compare`, drawn from plain arrays and its record;
nothing here computes results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .figures import image_rows


def direction_figure(images: np.ndarray, path: Path, method: str, shift: float) -> Path:
    """One row per direction k of ``images`` (K, steps, H, W) or (K, steps, C, H, W) in [0, 1]: G(z0 + s d_k)
    for s evenly from -``shift`` to +``shift``."""
    rows = {f"d{k}": row for k, row in enumerate(images)}
    return image_rows(rows, path, f"{method}: G(z0 + s d_k), s from -{shift:g} to +{shift:g}")


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def compare_markdown(record: Mapping[str, Any]) -> str:
    """report.md: per method its cost, disentanglement, largest re-scoring change, reconstructor accuracy and path
    correlation (or why it was skipped), and per label-edit approach its success rate and distances."""
    lines = [f"# Direction methods compared ({record['models']})", "",
             (f"K = {record['directions']} directions, shift t = {record['shift']:g}, {record['test_latents']} test "
              f"latents, seed {record['seed']}. Re-scoring (InterFaceGAN, SeFa): mean change of C(G(z + t d_k)) "
              "label probabilities; disentanglement: mean over directions of max |change| / sum |change|. "
              "Reconstructor accuracy (Voynov & Babenko): a fresh reconstructor trained on the frozen directions "
              f"tells which of them moved G(z), accuracy on fresh draws (chance {1 / record['directions']:.2f}); "
              "path correlation (after WarpedGANSpace): mean over directions of the largest |Pearson correlation| "
              "between s and a label probability along z + s d_k, averaged over the test latents."), "",
             ("| method | directions | fit s | eval s | disentanglement | largest mean change | reconstructor accuracy "
              "| reconstructor s | path correlation |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for name, method in record["methods"].items():
        if "skipped" in method:
            lines.append(f"| {name} | skipped: {method['skipped']} | | | | | | | |")
            continue
        largest = max(abs(value) for row in method["rescoring"] for value in row)
        lines.append(f"| {name} | {method['directions']} | {method['fit_seconds']:.1f} | {method['eval_seconds']:.1f} "
                     f"| {method['disentanglement']:.3f} | {largest:.3f} | {method['reconstructor_accuracy']:.3f} "
                     f"| {method['reconstructor_seconds']:.1f} | {method['path_correlation']:.3f} |")
    edits = record["label_edits"]
    lines += ["", f"## Label edits a -> a + 1 (feature distance: {edits['feature_space']})", "",
              "| approach | pairs | latents | success rate | mean latent distance | mean feature distance |",
              "|---|---|---|---|---|---|"]
    for name, edit in edits["approaches"].items():
        lines.append(f"| {name} | {edit['pairs_measured']} | {edit['latents']} | {_number(edit['success_rate'])} | "
                     f"{_number(edit['mean_latent_distance'])} | {_number(edit['mean_feature_distance'])} |")
    return "\n".join(lines) + "\n"
