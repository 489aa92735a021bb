"""Every command line of the README runs as written from a fresh working directory (its relative paths
included, small sizes appended; tests/readme.py) and writes the files it promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from latentspectra.experiments.networks import load_networks
from latentspectra.models.files import shipped_models_dir
from readme import README, option, readme_commands

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def promised_files(args: list[str]) -> list[str]:
    """The files the README and the command's help promise for ``args``, relative to the working directory."""
    out = option(args, "--out") or option(args, "--to")
    if args[0] == "reproduce":
        return [
            f"{out}/{name}"
            for name in (
                "metrics.json",
                "report.md",
                "report.html",
                "basis.safetensors",
                *(f"figures/fig{n}.png" for n in range(2, 9)),
            )
        ]
    if args[0] == "train":
        networks = {
            "all": ("classifier", "generator", "discriminator", "encoder"),
            "gan": ("generator", "discriminator"),
            "autoencoder": ("autoencoder",),
        }[args[1]]
        return [
            f"{out}/train-{args[1]}.json",
            *(f"{out}/{name}.{suffix}" for name in networks for suffix in ("json", "safetensors")),
        ]
    if args[0] == "basis":
        return [out, str(Path(out).with_suffix(".json"))]
    if args[0] == "sfvq":
        return [f"{out}/sfvq.json", f"{out}/curve.safetensors", f"{out}/curve.json", f"{out}/figures/panoptic.png"]
    if args[0] == "reds":
        return [f"{out}/reds.json", f"{out}/change-{option(args, '--change')}_hold-{option(args, '--hold')}.png"]
    if args[0] == "fragmentation":
        return [f"{out}/fragmentation.json", f"{out}/figures/comparison.png"]
    if args[0] == "compare":
        return [
            f"{out}/{name}"
            for name in ("compare.json", "report.md", "report.html", "figures/lsd.png", "figures/sefa-rescoring.png")
        ]
    if args[0] == "invert":
        return [f"{out}/{name}" for name in ("invert.json", "latents.safetensors", "latents.json")]
    if args[:2] == ["data", "download"]:
        return [f"{out}/{name}" for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    return []


def test_the_readme_lists_its_commands():
    commands = readme_commands()
    assert commands[0] == "latentspectra reproduce --out runs/reproduce"  # the quick start's main command
    assert {command.split()[1] for command in commands} >= {
        "data",
        "train",
        "evaluate",
        "reproduce",
        "basis",
        "sfvq",
        "reds",
        "fragmentation",
        "compare",
        "invert",
    }


def test_every_readme_command_runs_as_written_from_a_fresh_directory(readme_runs):
    for run in readme_runs.runs:
        assert "Traceback" not in run.stderr, run.command
        if run.command == "latentspectra data info fashion-mnist" and not FASHION_MNIST.is_dir():
            assert run.code == 2 and "dataset-fashion-mnist" in run.stderr, run.stderr  # what it says without it
            continue
        if "--retrain" in run.args:  # one epoch on 300 images trains a generator that draws too few of the labels
            assert run.code == 0 or (run.code == 2 and "too few latents decode" in run.stderr), run.stderr
            assert (readme_runs.out(run.command) / "models" / "train-all.json").is_file(), "networks not trained"
            continue
        assert run.code == 0, f"{run.command}: {run.stderr}"
        if "--json" in run.args:
            assert isinstance(json.loads(run.stdout), dict), run.command
        missing = [path for path in promised_files(run.args) if not (readme_runs.directory / path).is_file()]
        assert missing == [], f"{run.command}: promised files missing"
    assert not (readme_runs.directory / "runs" / "runs").exists(), "a run wrote under a doubled relative path"


# What each command prints without --json: a line of its plain-text summary.
PLAIN_TEXT = {
    "latentspectra data info idx:DIR": "train_counts: [",
    "latentspectra reproduce --out runs/reproduce": "lsd_top1_accuracy: 0.",
    "latentspectra evaluate --networks runs/mnist --device cpu --precision float32": "classifier_accuracy: 0.",
    "latentspectra basis": "orthogonality_error: ",
    "latentspectra sfvq": "test quantization error, sfvq_curve: ",
    "latentspectra reds": "change-thickness_hold-identity reds: delta_f ",
    "latentspectra fragmentation": "GAN G(z): Frechet distance ",
    "latentspectra compare": "label edit class_means: success ",
    "latentspectra invert": "hybrid: pixel MSE ",
}


def test_the_commands_print_a_plain_summary_without_json(readme_runs):
    for command, expected in PLAIN_TEXT.items():
        run = readme_runs.run(command)
        assert "--json" not in run.args and expected in run.stdout, (command, run.stdout[:300])


@pytest.mark.slow
def test_the_python_example_runs_as_written_with_the_shipped_networks():
    """The README's Python block, with the networks it names: the shipped generator and classifier (inference
    copies) and a few latents z."""
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[1]
    networks = load_networks(shipped_models_dir("mnist"))
    names = {
        "generator": networks.generator,
        "classifier": networks.classifier,
        "z": torch.randn(4, networks.latent_dim, generator=torch.Generator().manual_seed(0)),
    }
    exec(compile(code, "README.md", "exec"), names)
    assert names["c"].shape == (4, 100) and names["labels"].shape == (4, 4)
    assert names["path"].shape == (1 + 3 * 9, 4, 100) and names["denoised"].shape == (4, 100)
    assert names["basis"].provenance["orthogonalisation"] == "symmetric" and names["sets"].per_set == 50


def test_the_reports_link_their_figures_relative_to_themselves(readme_runs):
    report = (readme_runs.out("latentspectra reproduce --out runs/reproduce") / "report.md").read_text()
    assert "(figures/fig2.png)" in report and "](runs/" not in report
