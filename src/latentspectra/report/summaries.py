"""The plain-text summaries the commands print (without --json): a few lines read off a study's record.
Nothing here computes results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .compare_figures import convergence_lines, interval_text


def reproduce_summary(metrics: Mapping[str, Any], out: Path) -> list[str]:
    """The headline accuracies, the seconds and where the report is."""
    lines = [
        f"{key}: {metrics[key]['mean']:.4f} +- {metrics[key]['std']:.4f}"
        for key in ("classifier_accuracy", "encode_decode_accuracy", "lsd_top1_accuracy")
    ]
    return [
        *lines,
        f"lsd_top4_accuracy: {metrics['lsd_top4_accuracy']:.4f}",
        f"seconds: {metrics['seconds']['total']:.1f}",
        f"report: {out / 'report.html'}",
    ]


def sfvq_summary(record: Mapping[str, Any], out: Path) -> list[str]:
    """Quantization errors, the curve's label order and how often its directions change the label."""
    lines = [
        f"test quantization error, {name}: {error:.4f}" for name, error in record["quantization_error"]["test"].items()
    ]
    order, directions = record["curve_order"], record["directions"]
    lines.append(
        f"label runs along the curve: {order['label_runs']} (majority agreement {order['majority_agreement']:.3f})"
    )
    for group in ("boundary", "same_label"):
        fraction = directions[f"{group}_changed_fraction"]
        shown = "n/a" if fraction is None else f"{fraction:.3f}"
        lines.append(f"label changed along {group} directions ({directions[f'{group}_pairs']} pairs): {shown}")
    return [*lines, f"fit seconds: {record['fit']['seconds']:.1f}", f"record: {out / 'sfvq.json'}"]


def reds_summary(record: Mapping[str, Any], out: Path) -> list[str]:
    """Per example and path kind, the changes of f and g and how often the label changed."""
    lines = []
    for name, example in record["examples"].items():
        for kind, changes in example["paths"].items():
            lines.append(
                f"{name} {kind}: delta_f {changes['delta_f']['mean']:.4g} "
                f"delta_g {changes['delta_g']['mean']:.4g} ratio_median {changes['ratio_median']:.4g} "
                f"label_changed {changes['label_changed']:.3f}"
            )
        lines.append(f"{name} seconds_per_direction: {example['path_seconds_per_direction']:.4f}")
    return [*lines, f"seconds: {record['seconds']['total']:.1f}", f"record: {out / 'reds.json'}"]


def fragmentation_summary(result: Mapping[str, Any], out: Path) -> list[str]:
    """The GAN's reference, per model its codes' shape and each sampler's quality, and the 2x target."""
    lines = [
        f"GAN G(z): Frechet distance {result['gan']['frechet_distance']:.2f}, "
        f"confidence {result['gan']['sample_confidence']:.3f}"
    ]
    for name, record in result["models"].items():
        lines.append(
            f"{name} (N = {record['latent_dim']}, centre norm {record['centre_norm']:.2f}, "
            f"radius {record['radius']['mean']:.2f} +- {record['radius']['std']:.2f}):"
        )
        for sampler, metrics in record["samplers"].items():
            lines.append(
                f"  {sampler:26s} confidence {metrics['sample_confidence']:.3f}  entropy "
                f"{metrics['sample_label_entropy']:.3f}  FD {metrics['frechet_distance']:8.2f}  "
                f"inside bulk {metrics['inside_bulk']:.3f}"
            )
        target = result["target"][name]
        lines.append(
            f"  best FD / GAN FD: {target['best_ratio']:.2f} (target <= {result['target']['max_ratio']:g}: "
            f"{'met' if target['met'] else 'not met'})"
        )
    return [*lines, f"seconds: {result['seconds']['total']:.1f}", f"record: {out / 'fragmentation.json'}"]


def compare_summary(record: Mapping[str, Any], out: Path) -> list[str]:
    """Per method its disentanglement, reconstructor accuracy and fit seconds with their intervals over the seeds
    (or why it was skipped) and, where the dataset has factors, its MIG, DCI disentanglement and edit
    concentration; whether the learned directions converged (`convergence_lines`), per label-edit approach its
    success rate and the median latent distance it needs to flip a label."""
    lines = [f"seeds {record['seeds']}: mean [95% interval]"]
    for name, method in record["methods"].items():
        if "skipped" in method:
            lines.append(f"{name}: skipped ({method['skipped']})")
        else:
            lines.append(
                f"{name}: disentanglement {interval_text(method['disentanglement'])}, reconstructor "
                f"accuracy {interval_text(method['reconstructor_accuracy'])}, fit seconds "
                f"{interval_text(method['fit_seconds'], 1)}{_ground_truth_text(method.get('ground_truth'))}"
            )
    lines.extend(convergence_lines(record))
    for name, edit in record["label_edits"]["approaches"].items():
        lines.append(
            f"label edit {name}: success {interval_text(edit['success_rate'])}, median latent distance to "
            f"flip {interval_text(edit['median_latent_distance_to_flip'], 2)} ({edit['latents']} latents)"
        )
    return [*lines, f"seconds: {record['seconds']['total']:.1f}", f"report: {out / 'report.html'}"]


def _ground_truth_text(truth: Mapping[str, Any] | None) -> str:
    """The text a method's line of the summary ends with for its ground-truth track: its MIG, DCI disentanglement
    and edit concentration (empty without a track; why not, where it was not scored)."""
    if truth is None:
        return ""
    if "skipped" in truth:
        return f"; ground truth not scored ({truth['skipped']})"
    return (
        f"; MIG {interval_text(truth['mig'])}, DCI disentanglement {interval_text(truth['dci_disentanglement'])}, "
        f"edit concentration {interval_text(truth['edit_concentration'])}"
    )


def invert_summary(record: Mapping[str, Any], out: Path) -> list[str]:
    """Per method its reconstruction measures, how the descent ended, its speed and where the latents are."""
    lines = [
        f"{name}: pixel MSE {measures['pixel_mse']:.4f}, feature distance {measures['feature_distance']:.4f}, "
        f"label kept {measures['label_kept']:.3f}"
        for name, measures in record["reconstruction"].items()
    ]
    descent = record["inversion"]["optimisation"]
    lines.append(
        f"{record['inversion']['inversion']} from {descent['start']}: reached {descent['reached']:.3f}, steps per "
        f"image {descent['steps_per_image']:.0f}, stopped early {descent['stopped_early']:.3f}, finite "
        f"{descent['finite']:.3f}"
    )
    return [
        *lines,
        f"images per second: {record['images_per_second']:.2f}",
        f"latents: {record['latents']}",
        f"record: {out / 'invert.json'}",
    ]
