"""`latentspectra sfvq` end to end on the shipped MNIST networks and a small slice of MNIST, its
measurements on hand-made inputs, and its one-line errors."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
import torch

from conftest import assert_traces_hardware, run_cli
from latentspectra.config import SFVQStudyConfig
from latentspectra.errors import LatentspectraError
from latentspectra.experiments import sfvq as sfvq_experiment
from latentspectra.experiments.sfvq import curve_order, run_sfvq, shown_pairs
from latentspectra.methods import load_sfvq
from latentspectra.models.files import shipped_models_dir


def test_cli_writes_the_record_the_curve_and_the_figures(readme_runs):
    """The README's `sfvq --codewords 64 --out runs/sfvq`, run with 8 codewords on a 300-image slice."""
    out = readme_runs.out("latentspectra sfvq")
    record = json.loads((out / "sfvq.json").read_text())
    summary = readme_runs.run("latentspectra sfvq").stdout  # the plain-text output
    assert f"test quantization error, kmeans: {record['quantization_error']['test']['kmeans']:.4f}" in summary
    assert f"label runs along the curve: {record['curve_order']['label_runs']} " in summary
    assert_traces_hardware(record)
    assert record["seed"] == 0 and record["config"]["codewords"] == 8 and record["train_latents"] == 300
    assert record["config"]["candidates"] == record["fit"]["params"]["candidates"] == "codewords+dithered"
    assert record["config"]["growth"] == record["fit"]["params"]["growth"] == "split"
    assert [stage["codewords"] for stage in record["fit"]["history"]] == [4, 8]
    for name in ("panoptic", "directions", "augmentation"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    curve = load_sfvq(out / "curve.safetensors")
    assert curve.codebook_.shape == (8, 100)

    labels = record["codeword_labels"]
    assert len(labels) == 8 and len(set(labels)) > 1  # the curve runs through more than one digit
    order = record["curve_order"]
    assert order["label_runs"] == 1 + sum(a != b for a, b in itertools.pairwise(labels))
    majority = order["majority_labels"]
    agreeing = [label == vote for label, vote in zip(labels, majority) if vote != -1]
    assert len(majority) == 8 and order["majority_agreement"] == pytest.approx(sum(agreeing) / len(agreeing))
    for split in ("test", "train"):
        errors = record["quantization_error"][split]
        # the codewords lie on the curve, so the curve's error can only be smaller
        assert errors["sfvq_curve"] <= errors["sfvq_nearest_codeword"] + 1e-9
        assert errors["kmeans"] < errors["single_codeword_at_mean"]
    directions = record["directions"]
    assert directions["boundary_pairs"] + directions["same_label_pairs"] == 7 == len(directions["pairs"])
    assert directions["latents"] == 150 and directions["scale"] == 1.0
    for pair in directions["pairs"]:
        for key in ("changed_fraction", "changed_fraction_equal_length"):  # a share of the 150 moved codes
            assert pair[key] * 150 == pytest.approx(round(pair[key] * 150)), key
    boundary = [pair["changed_fraction"] for pair in directions["pairs"] if pair["labels"][0] != pair["labels"][1]]
    expected = pytest.approx(sum(boundary) / len(boundary)) if boundary else None
    assert directions["boundary_changed_fraction"] == expected
    lengths = [pair["step_length"] for pair in directions["pairs"]]
    assert directions["equal_length"]["length"] == pytest.approx(sum(lengths) / len(lengths))
    assert set(record["seconds"]) >= {"encode", "fit", "kmeans", "directions", "figures", "total"}
    assert {"torch", "latentspectra"} <= set(record["versions"]) and record["kmeans"]["random_state"] == 0


@pytest.mark.slow
def test_same_seed_same_record(mnist_slice, tmp_path):
    """The second run is asked for no figures: it draws none, and its numbers are the first's."""
    config = SFVQStudyConfig(dataset=mnist_slice, seed=1, codewords=6, direction_latents=50)
    records = [
        run_sfvq(tmp_path / name, replace(config, networks=shipped_models_dir("mnist"), figures=drawn), progress=False)
        for name, drawn in (("a", True), ("b", False))
    ]
    assert list((tmp_path / "a").rglob("*.png")) and not list((tmp_path / "b").rglob("*.png"))
    assert records[1]["figures"] == {} and records[1].pop("config")["figures"] is False
    records[0].pop("config")
    for record in records:
        for key in ("seconds", "figures", "curve"):
            record.pop(key)
        record["fit"].pop("seconds"), record["kmeans"].pop("seconds")
    assert records[0] == records[1]


def test_the_authors_candidates_reach_the_fit_the_record_and_the_curve_file(mnist_slice, tmp_path):
    config = SFVQStudyConfig(dataset=mnist_slice, codewords=6, direction_latents=50, candidates="dithered")
    record = run_sfvq(tmp_path, replace(config, networks=shipped_models_dir("mnist")), progress=False)
    assert record["config"]["candidates"] == record["fit"]["params"]["candidates"] == "dithered"
    assert load_sfvq(tmp_path / "curve.safetensors").candidates == "dithered"


def test_the_midpoint_growth_reaches_the_fit_the_record_and_the_curve_file(mnist_slice, tmp_path):
    config = SFVQStudyConfig(dataset=mnist_slice, codewords=6, direction_latents=50, growth="midpoint")
    record = run_sfvq(tmp_path, replace(config, networks=shipped_models_dir("mnist")), progress=False)
    assert record["config"]["growth"] == record["fit"]["params"]["growth"] == "midpoint"
    assert load_sfvq(tmp_path / "curve.safetensors").growth == "midpoint"


def test_cli_candidates_and_growth_options_reach_the_config(capsys, monkeypatch, tmp_path):
    configs = []

    def stop_after_the_config(out, config, **kwargs):
        configs.append(config)
        raise LatentspectraError("stopped before the study")

    monkeypatch.setattr(sfvq_experiment, "run_sfvq", stop_after_the_config)
    for args, expected in (
        ([], ("codewords+dithered", "split")),
        (["--candidates", "dithered"], ("dithered", "split")),
        (["--growth", "midpoint"], ("codewords+dithered", "midpoint")),
    ):
        code, _, err = run_cli(capsys, "sfvq", "--out", str(tmp_path), *args)
        assert code == 2 and "stopped before the study" in err
        config = configs.pop()
        assert (config.candidates, config.growth) == expected


def test_curve_order_counts_runs_and_majority_agreement():
    codeword_labels = torch.tensor([1, 1, 2, 2, 1])
    assigned = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4])
    true_labels = torch.tensor([1, 1, 7, 1, 2, 2, 5, 3])
    order = curve_order(codeword_labels, assigned, true_labels, num_labels=10)
    assert order["label_runs"] == 3 and order["distinct_labels"] == 2
    assert order["majority_labels"] == [1, 1, 2, 5, 3]
    assert order["majority_agreement"] == pytest.approx(3 / 5)
    order = curve_order(codeword_labels, torch.tensor([0, 1]), torch.tensor([1, 1]), num_labels=10)
    assert order["empty_codewords"] == 3 and order["majority_labels"] == [1, 1, -1, -1, -1]
    assert order["majority_agreement"] == 1.0


def test_shown_pairs_take_boundaries_first_spread_along_the_curve():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    # boundary pairs 2, 4, 8; same-label pairs 0, 1, 3, 5, 6, 7
    assert shown_pairs(labels, 2) == [2, 8, 0, 7]
    assert shown_pairs(labels, 0) == []
    assert shown_pairs(torch.tensor([4, 4, 4]), 3) == [0, 1]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["sfvq", "--codewords", "1"], "--codewords"),
        (["sfvq", "--candidates", "codewords"], "--candidates"),
        (["sfvq", "--growth", "double"], "--growth"),
        (["sfvq", "--out", "{file}"], "not a directory"),
        (["sfvq", "--models", "/no/such/models", "--out", "{empty}"], "/no/such/models"),
        (["sfvq", "--dataset", "{slice}", "--models", "{models}", "--codewords", "601", "--out", "{empty}"], "601"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, mnist_slice, args, expected):
    (tmp_path / "file").write_text("x")
    args = [
        a.format(
            empty=tmp_path / "empty", file=tmp_path / "file", slice=mnist_slice, models=shipped_models_dir("mnist")
        )
        for a in args
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err
