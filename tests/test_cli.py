"""The command line: JSON output, a tiny end-to-end training run, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import assert_traces_hardware, run_cli
from latentspectra.models.files import shipped_models_dir


def test_data_info_json(capsys, tiny_npz):
    code, out, _ = run_cli(capsys, "data", "info", f"npz:{tiny_npz}", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["train"] == 64 and info["test"] == 32 and info["shape"] == [1, 28, 28]
    assert len(info["train_counts"]) == len(info["classes"]) == 10 and sum(info["train_counts"]) == 64


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data", "info", "idx:/no/such/dir"], "/no/such/dir"),
        (["data", "info", "imagenet"], "imagenet"),
        (["evaluate", "--models", "/no/such/models"], "/no/such/models"),
        (["train", "encoder", "--out", "{empty}", "--dataset", "{npz}"], "no trained generator"),
        (["train", "gan", "--out", "{file}"], "is a file"),
        (["train", "gan", "--epochs", "0", "--out", "{empty}"], "--epochs"),
        (["train", "encoder", "--encoder-weights", "1", "1", "-5", "--out", "{empty}/new"], "--encoder-weights"),
        (["train", "encoder", "--encoder-weights", "0", "0", "0", "--out", "{empty}/new"], "not all zero"),
        (["train", "autoencoder", "--interpolation-weight", "-1", "--out", "{empty}/new"], "--interpolation-weight"),
        (["train", "gan", "--interpolation-weight", "1", "--out", "{empty}/new"], "autoencoder only"),
        (["basis", "--models", "/no/such/models", "--out", "{empty}/b.safetensors"], "/no/such/models"),
        (["basis", "--out", "{file}"], "expected a .safetensors file"),
        (["basis", "--per-set", "0"], "--per-set"),
        (["basis", "--per-set", "many"], "--per-set"),
        (["basis", "--tolerance", "0"], "--tolerance"),
        (["basis", "--orthogonalisation", "qr"], "--orthogonalisation"),
        (["reproduce", "--out", "{file}"], "not a directory"),
        (["reproduce", "--out", "{empty}", "--models", "{empty}"], "generator"),
        (["reproduce", "--out", "{empty}", "--retrain", "--models", "{empty}"], "--retrain"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, tiny_npz, args, expected):
    (tmp_path / "file").write_text("x")
    args = [a.format(empty=tmp_path / "empty", file=tmp_path / "file", npz=f"npz:{tiny_npz}") for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err


@pytest.mark.slow
def test_truncated_dataset_file_is_one_line_from_the_real_executable(tmp_path, tiny_npz):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(tiny_npz.read_bytes()[:200])
    result = subprocess.run(
        [sys.executable, "-m", "latentspectra", "data", "info", f"npz:{broken}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "broken.npz" in result.stderr


@pytest.mark.slow
def test_train_all_then_evaluate_end_to_end(readme_runs):
    """The README's `train all --out runs/mnist` (one epoch on a 300-image slice) and `evaluate --networks runs/mnist
    --json` (tests/readme.py)."""
    out = readme_runs.out("latentspectra train all --out runs/mnist")
    summary = json.loads(readme_runs.run("latentspectra train all --out runs/mnist").stdout)
    assert set(summary["seconds"]) == {"classifier", "gan", "encoder", "total"}
    for name in ("generator", "discriminator", "classifier", "encoder"):
        assert (out / f"{name}.safetensors").is_file() and (out / f"{name}.json").is_file()
    record = json.loads((out / "train-all.json").read_text())
    assert record["seed"] == 0 and record["config"]["dataset"] == "npz:slice.npz"
    assert record["config"]["gan"]["epochs"] == 1
    assert_traces_hardware(record)
    assert_traces_hardware(json.loads((out / "generator.json").read_text()))

    metrics = json.loads(readme_runs.run("latentspectra evaluate --networks runs/mnist --json").stdout)
    for key in (
        "classifier_accuracy",
        "encode_decode_accuracy",
        "sample_confidence",
        "sample_label_entropy",
        "classifier_fid",
    ):
        assert isinstance(metrics[key], float), key
    assert len(metrics["encode_decode_trials"]) == 20 and metrics["models"] == "runs/mnist"
    assert_traces_hardware(metrics)


def test_networks_that_draw_too_few_labels_make_the_basis_one_line(capsys, tmp_path, tiny_models, tiny_npz):
    code, _, err = run_cli(
        capsys,
        "basis",
        "--models",
        str(tiny_models),
        "--dataset",
        f"npz:{tiny_npz}",
        "--per-set",
        "2",
        "--out",
        str(tmp_path / "basis.safetensors"),
        "--json",
        "--quiet",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1  # untrained networks decode to a few labels
    assert "has 0 of 2" in err and "too few latents" in err


@pytest.mark.slow
def test_basis_builds_either_orthogonalisation_and_records_it(capsys, tmp_path, mnist_slice, readme_runs):
    out = tmp_path / "basis.safetensors"
    code, stdout, _ = run_cli(
        capsys,
        "basis",
        "--per-set",
        "3",
        "--orthogonalisation",
        "gram-schmidt",
        "--out",
        str(out),
        "--dataset",
        mnist_slice,
        "--models",
        str(shipped_models_dir("mnist")),
        "--json",
        "--quiet",
    )
    assert code == 0
    stats = json.loads(stdout)
    assert stats["orthogonalisation"] == "gram-schmidt" and stats["orthogonality_error"] <= 1e-10
    assert json.loads(out.with_suffix(".json").read_text())["provenance"]["orthogonalisation"] == "gram-schmidt"
    assert_traces_hardware(stats)
    # the README's `basis` ran with the default, symmetric
    record = json.loads((readme_runs.directory / "runs" / "basis.json").read_text())
    assert record["provenance"]["orthogonalisation"] == "symmetric" and record["provenance"]["per_set"] == 3
