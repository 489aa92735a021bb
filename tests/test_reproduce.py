"""`reproduce` end to end on the shipped MNIST networks, with a small slice of MNIST and small counts: the
README's quick-start command as run by tests/readme.py."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from conftest import assert_traces_hardware
from latentspectra.config import ReproduceConfig
from latentspectra.data import load_dataset
from latentspectra.experiments.networks import load_networks
from latentspectra.experiments.reproduce import reproduce_study
from readme import comparable_compute, config_from_record, rerun_compute

QUICK_START = "latentspectra reproduce --out runs/reproduce"


@pytest.fixture(scope="module")
def study(readme_runs):
    """The README's quick start, `reproduce --out runs/reproduce`, with V = 5, one trial, a 300-image slice."""
    out = readme_runs.out(QUICK_START)
    return out, json.loads((out / "metrics.json").read_text())


def test_writes_metrics_figures_and_report(study, readme_runs):
    out, metrics = study
    stdout = readme_runs.run(QUICK_START).stdout  # the plain-text summary
    assert f"lsd_top1_accuracy: {metrics['lsd_top1_accuracy']['mean']:.4f}" in stdout
    assert "report: runs/reproduce/report.html" in stdout
    for name in [f"fig{n}.png" for n in range(2, 9)]:
        assert (out / "figures" / name).stat().st_size > 1000, name
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "| " in (out / "report.md").read_text()
    assert (out / "basis.safetensors").exists()
    assert_traces_hardware(metrics)
    assert metrics["compute"]["batch_size"] == 500


def test_metrics_are_consistent(study):
    _, metrics = study
    for key in ("classifier_accuracy", "encode_decode_accuracy", "lsd_top1_accuracy"):
        assert metrics[key]["trials"] == [metrics[key]["mean"]] and metrics[key]["std"] == 0.0, key
        assert metrics[key]["mean"] * 150 == pytest.approx(round(metrics[key]["mean"] * 150)), key  # of 150
    cumulative = metrics["lsd_topn_cumulative"]
    assert len(cumulative) == metrics["latent_dim"] == 100
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(cumulative)) and math.isclose(cumulative[-1], 1.0)
    assert math.isclose(cumulative[0], metrics["lsd_top1_accuracy"]["mean"])
    # both orthogonalisations are measured on the same encodings; the run's own one is the headline
    compared = metrics["lsd_by_orthogonalisation"]
    assert set(compared) == {"gram-schmidt", "symmetric"} and metrics["orthogonalisation"] == "symmetric"
    assert compared["symmetric"]["top1"] == metrics["lsd_top1_accuracy"]
    assert math.isclose(compared["symmetric"]["top4"]["mean"], metrics["lsd_top4_accuracy"])
    assert compared["gram-schmidt"]["top1"] != compared["symmetric"]["top1"]
    assert metrics["basis_orthogonality_error"] <= 1e-10
    # the shipped networks are good: far above chance even on 150 test images and V = 5
    assert metrics["classifier_accuracy"]["mean"] > 0.9 and metrics["encode_decode_accuracy"]["mean"] > 0.8
    denoising = metrics["denoising"]
    assert set(denoising["accuracy"]) == {"noisy", "encode-decode", "top 1", "top 2", "top 3", "top 4", "top 10"}
    assert all(len(values) == 3 for values in denoising["psnr"].values())
    assert set(metrics["rotation"]["modes"]) == {"literal", "plane"}
    assert len(metrics["rotation"]["modes"]["plane"]["per_target"]) == 9
    assert set(metrics["seconds"]) >= {"basis", "classification", "denoising", "rotation", "figures", "total"}


@pytest.mark.slow
def test_same_seed_same_metrics(study, readme_runs, monkeypatch):
    """The quick start's study computed again (nothing written) gives its metrics.json but the timings."""
    first = dict(study[1])
    monkeypatch.chdir(readme_runs.directory)  # where its relative paths point
    config = config_from_record(ReproduceConfig, first["config"])
    networks = load_networks(first["models"], rerun_compute(first), config.batch_size)
    result = reproduce_study(networks, load_dataset(config.dataset), config, progress=False)
    second = json.loads(json.dumps(result.metrics()))  # as metrics.json stores it
    for metrics in (first, second):  # everything but the timings, what was asked (auto there, its answer here) and
        # the CPU report a pretended kind changes
        metrics.pop("seconds"), metrics.pop("basis_samples_per_second")
        metrics["compute"] = comparable_compute(metrics)
    assert second == first
