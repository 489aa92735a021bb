"""The figures and the report (Markdown and self-contained HTML) of `latentspectra compare`, drawn from plain
arrays and its record; nothing here computes results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CONVERGED_GAIN
from .document import Block, FigureRef, Heading, Paragraph, Table
from .figures import heatmap, image_rows, new_figure, save_figure


def direction_figure(images: np.ndarray, path: Path, method: str, shift: float) -> Path:
    """One row per direction k of ``images`` (K, steps, H, W) or (K, steps, C, H, W) in [0, 1]: G(z0 + s d_k)
    for s evenly from -``shift`` to +``shift``."""
    rows = {f"d{k}": row for k, row in enumerate(images)}
    return image_rows(rows, path, f"{method}: G(z0 + s d_k), s from -{shift:g} to +{shift:g}")


def rescoring_figure(
    method: Mapping[str, Any],
    labels: Sequence[str],
    measures: Sequence[str],
    path: Path,
    name: str,
    factors: Sequence[str] = (),
) -> Path:
    """The disentanglement figure of one method: its re-scoring matrix |change| (directions x labels), and beside
    it the image measurements' (directions x measures, in standard deviations) where there are any, and the
    ground-truth factors' change along its edits (directions x ``factors``, standard deviations, first seed) where
    the dataset has factors; a disentangled direction is one bright cell in its row."""
    panels = [("label probabilities", np.abs(np.array(method["rescoring"])), labels)]
    if method.get("measure_rescoring") is not None:
        panels.append(("image measurements (SD)", np.abs(np.array(method["measure_rescoring"])), measures))
    edits = method.get("ground_truth", {}).get("edit_changes")
    if edits is not None:
        panels.append(("ground-truth factors (SD)", np.array(edits), factors))
    figure = new_figure(5.0 * len(panels), 4.0)
    for index, (title, matrix, names) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), index)
        heatmap(ax, matrix, f"{name}: |change| of {title}", cmap="magma")
        ax.set_xticks(range(len(names)), list(names), rotation=90, fontsize=7)
        ax.set_ylabel("direction k")
    return save_figure(figure, path)


HEADLINE_TITLES = {
    "disentanglement": "disentanglement",
    "target_change": "target label change",
    "rest_change": "other labels' change",
    "reconstructor_accuracy": "reconstructor accuracy",
    "path_correlation": "path correlation",
}


# The ground-truth track's numbers (datasets with factors), in the report's words.
GROUND_TRUTH_TITLES = {
    "mig": "MIG",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
    "sap": "SAP",
    "factor_vae": "FactorVAE score",
    "edit_concentration": "edit concentration",
    "edit_target_change": "largest factor change (SD)",
}


def interval_text(found: Mapping[str, Any] | None, digits: int = 3) -> str:
    """An `intervals.interval` record as "mean [low, high]" (the mean alone from one seed; "n/a" unmeasured)."""
    if found is None or found.get("mean") is None:
        return "n/a"
    mean = f"{found['mean']:.{digits}f}"
    if found.get("ci95") is None:
        return mean
    low, high = found["ci95"]
    return f"{mean} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_figure(record: Mapping[str, Any], path: Path) -> Path:
    """One panel per headline metric: each measured method's mean with its 95% interval over the seeds as an error
    bar, and the random baseline's interval as a grey band across the panel, so that a number inside the band
    is visibly one chance gives."""
    measured = {name: method for name, method in record["methods"].items() if "skipped" not in method}
    names = list(measured)
    figure = new_figure(3.2 * len(HEADLINE_TITLES), 3.6)
    baseline = measured.get(record.get("baseline", ""))
    for index, (key, title) in enumerate(HEADLINE_TITLES.items(), start=1):
        ax = figure.add_subplot(1, len(HEADLINE_TITLES), index)
        means = [measured[name][key]["mean"] for name in names]
        spans = [measured[name][key].get("ci95") or [mean, mean] for name, mean in zip(names, means, strict=True)]
        errors = np.array([[mean - low, high - mean] for mean, (low, high) in zip(means, spans, strict=True)]).T
        ax.errorbar(range(len(names)), means, yerr=errors, fmt="o", capsize=3, color="black")
        if baseline is not None:
            low, high = baseline[key].get("ci95") or [baseline[key]["mean"]] * 2
            ax.axhspan(low, high, color="0.8", zorder=0, label="random baseline")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_title(title, fontsize=9)
    return save_figure(figure, path)


def measure_boundary_blocks(record: Mapping[str, Any]) -> list[Block]:
    """InterFaceGAN's boundaries of the image measurements, where compare fitted them: per measure the held-out
    accuracy and the change of that measure along its own normal at the shift t (in standard deviations), with
    their intervals over the seeds, the largest change of another measure and the largest label-probability
    change (first seed), and the measure whose normal is closest to it (|cos| averaged over the seeds)."""
    found = record["methods"].get("interfacegan", {}).get("measure_boundaries")
    if found is None:
        return []
    heading = Heading(f"InterFaceGAN boundaries of the image measurements ({found['samples']} scored latents)")
    if "skipped" in found:
        return [heading, Paragraph(f"Not fitted: {found['skipped']}")]
    rows = []
    cosines = np.array(found["normals_cosine"])
    for index, name in enumerate(found["measures"]):
        changes = found["measure_rescoring"][index]
        others = max(abs(value) for column, value in enumerate(changes) if column != index)
        labels = max(abs(value) for value in found["rescoring"][index])
        closest = int(np.argmax(np.where(np.arange(len(cosines)) == index, -1.0, cosines[index])))
        accuracy, own = found["validation_accuracy"][index], found.get("own_change", [None] * len(cosines))[index]
        rows.append(
            (
                name,
                interval_text(accuracy) if isinstance(accuracy, Mapping) else f"{accuracy:.3f}",
                interval_text(own) if own is not None else f"{changes[index]:+.3f}",
                f"{others:.3f}",
                f"{labels:.3f}",
                f"{found['measures'][closest]} ({cosines[index, closest]:.2f})",
            )
        )
    return [
        heading,
        Table(
            (
                "measure",
                "boundary accuracy",
                "own change (SD)",
                "largest other measure change (SD)",
                "largest label change",
                "closest normal (|cos|)",
            ),
            tuple(rows),
        ),
    ]


def _method_row(name: str, method: Mapping[str, Any]) -> tuple[str, ...]:
    if "skipped" in method:
        return (name, f"skipped: {method['skipped']}", *("",) * (len(HEADLINE_TITLES) + 2))
    stability = method.get("stability")
    measure = method.get("largest_measure")
    return (
        name,
        interval_text(method["fit_seconds"], 1),
        *(interval_text(method[key]) for key in HEADLINE_TITLES),
        interval_text(stability) if stability is not None else "n/a",
        f"{interval_text(method['largest_measure_change'], 2)} ({measure})" if measure else "n/a",
    )


def leader_line(title: str, best: Sequence[str], within: Sequence[str]) -> str:
    """Who leads one metric (`intervals.leaders`' ``best``: one method where its interval clears every other's, else
    the methods whose intervals overlap the best one's), and which methods stay within the random baseline's
    interval."""
    verdict = f"{best[0]} ahead of every other method" if len(best) == 1 else f"tied: {', '.join(best)}"
    chance = f"; within the random baseline's interval: {', '.join(within)}" if within else ""
    return f"{title}: {verdict}{chance}."


def leader_lines(record: Mapping[str, Any]) -> list[str]:
    """Per headline metric its `leader_line`, or why it ranks nobody (``unranked``)."""
    return [_headline_line(record, key, title) for key, title in HEADLINE_TITLES.items()]


def _headline_line(record: Mapping[str, Any], key: str, title: str) -> str:
    found = record["leaders"][key]
    if "unranked" in found:
        return f"{title}: {found['unranked']}."
    within = [
        name
        for name, method in record["methods"].items()
        if method.get("against_baseline", {}).get(key) == "within" and name != record.get("baseline")
    ]
    return leader_line(title, found["best"], within)


def ground_truth_blocks(record: Mapping[str, Any]) -> list[Block]:
    """The ground-truth track, where the dataset has factors: what was scored and how, the factor regressor's
    accuracy, per method MIG, DCI, SAP and the edit-based scores with their intervals over the seeds (or why they
    were not scored), and per metric who leads and who stays within the random baseline's interval."""
    found = record.get("ground_truth")
    if found is None:
        return []
    titles = {key: title for key, title in GROUND_TRUTH_TITLES.items() if key != "edit_target_change"}
    rows: list[tuple[str, ...]] = []
    within: dict[str, list[str]] = {key: [] for key in titles}
    for name, method in record["methods"].items():
        truth = method.get("ground_truth")
        if truth is None:
            continue
        if "skipped" in truth:
            rows.append((name, f"not scored: {truth['skipped']}", *("",) * (len(GROUND_TRUTH_TITLES) - 1)))
            continue
        rows.append(
            (name, *(interval_text(truth[key], 2 if key == "edit_target_change" else 3) for key in GROUND_TRUTH_TITLES))
        )
        for key, verdict in truth.get("against_baseline", {}).items():
            if verdict == "within" and name != record.get("baseline"):
                within[key].append(name)
    regressor = found["factor_regressor"]
    read = "; ".join(
        f"{factor} R^2 {_number(scores['r2'])}, accuracy {_number(scores['accuracy'])}"
        for factor, scores in regressor["test_accuracy"]["factors"].items()
    )
    trees = found["settings"]
    return [
        Heading(f"Ground truth: the factors {', '.join(found['factors'])}"),
        Paragraph(
            f"Each method's K directions give each of the first {found['images']} test images K codes (its latent, "
            f"--inversion {found['latents']}, projected on them), scored against the images' factors: MIG (codes in "
            f"{trees['bins']} bins), DCI with gradient-boosted trees ({trees['dci_trees']} of depth "
            f"{trees['dci_depth']}), SAP. Edit concentration: along z + t d_k for {found['edits']['latents']} test "
            "latents, the change of each factor as a factor regressor reads it off the images (standard deviations "
            "of the factor); per direction the largest factor's share of the total change, mean over directions "
            f"(1: one factor per direction; 1/{len(found['factors'])}: all alike). The regressor "
            f"({regressor['parameters']:,} parameters, {regressor['train_images']:,} training images) on "
            f"{regressor['test_accuracy']['images']:,} test images: {read}."
        ),
        Table(("method", *GROUND_TRUTH_TITLES.values()), tuple(rows)),
        *(
            Paragraph(leader_line(title, found["leaders"][key]["best"], within[key]))
            for key, title in titles.items()
            if found["leaders"][key]["best"]
        ),
    ]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def convergence_lines(record: Mapping[str, Any]) -> list[str]:
    """Per method with a convergence curve (the learned directions), per seed the steps it trained, its final
    held-out accuracy and what the last two doublings of the steps added, and whether the curve has converged
    (both below the tolerance: the fit's own verdict, recorded in its ``converged``)."""
    lines = []
    for name, method in record["methods"].items():
        curves = [found["convergence"] for found in method.get("fit_record_by_seed", []) if "convergence" in found]
        if not curves:
            continue
        tolerance = curves[0].get("tolerance") or CONVERGED_GAIN
        seeds = "; ".join(
            f"{curve['steps'][-1]:,} steps, accuracy {curve['reconstructor_accuracy'][-1]:.3f}, "
            f"last doublings {_last_gains(curve['reconstructor_accuracy'])}"
            for curve in curves
        )
        converged = [bool(curve.get("converged")) for curve in curves]
        verdict = (
            "converged"
            if all(converged)
            else "not converged"
            if not any(converged)
            else f"converged for {sum(converged)} of {len(converged)} seeds"
        )
        lines.append(
            f"{name}: {verdict} (two doublings of the steps in a row each adding less than {tolerance:g} to the "
            f"reconstructor's held-out accuracy); per seed: {seeds}."
        )
    return lines


def _last_gains(accuracy: list[float]) -> str:
    """What the last two doublings added, as "+0.010, +0.002" ("n/a" with one point)."""
    last = accuracy[-3:]
    gains = [after - before for before, after in pairwise(last)]
    return ", ".join(f"{gain:+.3f}" for gain in gains) or "n/a"


def compare_blocks(record: Mapping[str, Any], figures: Mapping[str, Path]) -> list[Block]:
    """The report of `latentspectra compare`: per method its cost and headline metrics with their intervals over
    the seeds, the stability of its directions across seeds and its largest image-measurement change (or why it
    was skipped), who leads each metric and who stays within the random baseline's interval, the ground-truth
    track where the dataset has factors (`ground_truth_blocks`), per label-edit
    approach its rates and distances, then every figure (``figures``: caption -> PNG path)."""
    methods = tuple(_method_row(name, method) for name, method in record["methods"].items())
    edits = record["label_edits"]
    approaches = [
        (
            name,
            str(edit["pairs_measured"]),
            str(edit["latents"]),
            interval_text(edit["success_rate"]),
            interval_text(edit["mean_latent_distance"], 2),
            interval_text(edit["mean_feature_distance"], 1),
            interval_text(edit["flip_rate"]),
            interval_text(edit["median_latent_distance_to_flip"], 2),
            interval_text(edit["median_feature_distance_at_flip"], 1),
        )
        for name, edit in edits["approaches"].items()
    ]
    strongest = max((edit["flipped_within"] for edit in edits["approaches"].values()), default=0)
    return [
        Heading(f"Direction methods compared ({record['models']})", level=1),
        Paragraph(
            f"K = {record['directions']} directions, shift t = {record['shift']:g}, {record['test_latents']} "
            f"test latents, seeds {record['seeds']}: each number is the mean over the seeds with its 95% "
            "Student t-interval, and a method is ahead of another only where the intervals do not overlap. "
            "Re-scoring (InterFaceGAN, SeFa): mean change of C(G(z + t d_k)) label probabilities; "
            "disentanglement: mean over directions of max |change| / sum |change|; target label change and "
            "other labels' change: per direction the mean |change| of the label it changes most and of the "
            "others. Reconstructor accuracy (Voynov & Babenko): a fresh reconstructor trained on the frozen "
            "directions tells which of them moved G(z), accuracy on fresh draws (chance "
            f"{1 / record['directions']:.2f}); path correlation (after WarpedGANSpace): mean over directions of "
            "the largest |Pearson correlation| between s and a label probability along z + s d_k. Stability: "
            "mean |cos| of the best one-to-one matching of two seeds' directions."
        ),
        Table(
            ("method", "fit s", *HEADLINE_TITLES.values(), "stability across seeds", "largest measure change (SD)"),
            methods,
        ),
        *(Paragraph(line) for line in leader_lines(record)),
        *(Paragraph(line) for line in convergence_lines(record)),
        *measure_boundary_blocks(record),
        *ground_truth_blocks(record),
        Heading(f"Label edits a -> a + 1 (feature distance: {edits['feature_space']})"),
        Paragraph(
            "At each approach's own step (s = 1): success rate and mean distances; made at multiples s of "
            f"that step up to {strongest:g}, the share of latents some s flips, and the median latent "
            "distance needed and feature distance at the first s that flips each."
        ),
        Table(
            (
                "approach",
                "pairs",
                "latents",
                "success rate",
                "mean latent distance",
                "mean feature distance",
                f"flipped by s <= {strongest:g}",
                "median latent distance to flip",
                "median feature distance at flip",
            ),
            tuple(approaches),
        ),
        Heading("Figures"),
        *(FigureRef(caption, path) for caption, path in figures.items()),
    ]
