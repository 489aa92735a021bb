"""`reproduce` end to end on the shipped MNIST networks, with a small slice of MNIST and small counts."""

from __future__ import annotations

import json
import math

import pytest

from latentspectra.experiments.evaluate import shipped_models_dir
from latentspectra.experiments.reproduce import ReproduceConfig, reproduce

SMALL = dict(per_set=20, trials=2, denoise_images=30, rotation_images=20, batch_size=500)


@pytest.fixture(scope="module")
def study(mnist_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    return out, reproduce(out, ReproduceConfig(dataset=mnist_slice, seed=3, **SMALL),
                     models_dir=shipped_models_dir("mnist"), progress=False)


def test_writes_metrics_figures_and_report(study):
    out, metrics = study
    assert json.loads((out / "metrics.json").read_text())["lsd_top1_accuracy"] == metrics["lsd_top1_accuracy"]
    for name in [f"fig{n}.png" for n in range(2, 9)]:
        assert (out / "figures" / name).stat().st_size > 1000, name
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "| " in (out / "report.md").read_text()
    assert (out / "basis.safetensors").exists()


def test_metrics_are_consistent(study):
    _, metrics = study
    for key in ("classifier_accuracy", "encode_decode_accuracy", "lsd_top1_accuracy"):
        assert 0 <= metrics[key]["mean"] <= 1 and len(metrics[key]["trials"]) in (1, 2), key
    cumulative = metrics["lsd_topn_cumulative"]
    assert len(cumulative) == metrics["latent_dim"] == 100
    assert all(a <= b + 1e-12 for a, b in zip(cumulative, cumulative[1:])) and math.isclose(cumulative[-1], 1.0)
    assert math.isclose(cumulative[0], metrics["lsd_top1_accuracy"]["mean"])
    # both orthogonalisations are measured on the same encodings; the run's own one is the headline
    compared = metrics["lsd_by_orthogonalisation"]
    assert set(compared) == {"gram-schmidt", "symmetric"} and metrics["orthogonalisation"] == "symmetric"
    assert compared["symmetric"]["top1"] == metrics["lsd_top1_accuracy"]
    assert math.isclose(compared["symmetric"]["top4"]["mean"], metrics["lsd_top4_accuracy"])
    assert compared["gram-schmidt"]["top1"] != compared["symmetric"]["top1"]
    assert metrics["basis_orthogonality_error"] <= 1e-10
    # the shipped networks are good: far above chance even on 300 images and V = 20
    assert metrics["classifier_accuracy"]["mean"] > 0.9 and metrics["encode_decode_accuracy"]["mean"] > 0.8
    denoising = metrics["denoising"]
    assert set(denoising["accuracy"]) == {"noisy", "encode-decode", "top 1", "top 2", "top 3", "top 4", "top 10"}
    assert all(len(values) == 3 for values in denoising["psnr"].values())
    assert set(metrics["rotation"]["modes"]) == {"literal", "plane"}
    assert len(metrics["rotation"]["modes"]["plane"]["per_target"]) == 9
    assert set(metrics["seconds"]) >= {"basis", "classification", "denoising", "rotation", "figures", "total"}


def test_same_seed_same_metrics(study, mnist_slice, tmp_path):
    _, first = study
    first = dict(first)
    second = reproduce(tmp_path, ReproduceConfig(dataset=mnist_slice, seed=3, **SMALL),
                     models_dir=shipped_models_dir("mnist"), progress=False)
    for metrics in (first, second):  # everything but the timings
        metrics.pop("seconds"), metrics.pop("basis_samples_per_second")
    assert second == first
