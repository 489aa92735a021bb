"""Every command line of the README runs as written from a fresh working directory (its relative paths
included, small sizes appended; tests/readme.py) and writes the files it promises."""

from __future__ import annotations

import json
from pathlib import Path

from readme import option, readme_commands

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def promised_files(args: list[str]) -> list[str]:
    """The files the README and the command's help promise for ``args``, relative to the working directory."""
    out = option(args, "--out") or option(args, "--to")
    if args[0] == "reproduce":
        return [f"{out}/{name}" for name in ("metrics.json", "report.md", "report.html", "basis.safetensors",
                                             *(f"figures/fig{n}.png" for n in range(2, 9)))]
    if args[0] == "train":
        networks = {"all": ("classifier", "generator", "discriminator", "encoder"), "gan": ("generator", "discriminator"),
                    "autoencoder": ("autoencoder",)}[args[1]]
        return [f"{out}/train-{args[1]}.json", *(f"{out}/{name}.{suffix}" for name in networks
                                                 for suffix in ("json", "safetensors"))]
    if args[0] == "basis":
        return [out, str(Path(out).with_suffix(".json"))]
    if args[0] == "sfvq":
        return [f"{out}/sfvq.json", f"{out}/curve.safetensors", f"{out}/curve.json", f"{out}/figures/panoptic.png"]
    if args[0] == "reds":
        return [f"{out}/reds.json", f"{out}/change-{option(args, '--change')}_hold-{option(args, '--hold')}.png"]
    if args[0] == "fragmentation":
        return [f"{out}/fragmentation.json", f"{out}/figures/comparison.png"]
    if args[:2] == ["data", "download"]:
        return [f"{out}/{name}" for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    return []


def test_the_readme_lists_its_commands():
    commands = readme_commands()
    assert commands[0] == "latentspectra reproduce --out runs/reproduce"  # the quick start's main command
    assert {command.split()[1] for command in commands} >= {"data", "train", "evaluate", "reproduce", "basis", "sfvq",
                                                            "reds", "fragmentation"}


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


def test_the_reports_link_their_figures_relative_to_themselves(readme_runs):
    report = (readme_runs.out("latentspectra reproduce --out runs/reproduce") / "report.md").read_text()
    assert "(figures/fig2.png)" in report and "](runs/" not in report
