"""The README's command lines, and one run of them all in a fresh working directory, shared by the tests.

`readme_commands` reads the `latentspectra ...` lines of the README's bash blocks; `run_readme` runs each as
written (relative paths and all) from an empty directory, with the README's placeholders filled and small
sizes appended (click keeps the last value of an option given twice): a 300-image slice of MNIST for the
commands that train or study, fewer vectors, epochs and samples, a local mirror for the download. The
README's order matters (evaluate reads what train wrote). conftest.py runs this once per test session
(`readme_runs`); test_readme.py checks every command and the files it promises, and the tests of each
study read that study's outputs from the same run instead of running it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import shlex
import time
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from latentspectra.cli import main
from latentspectra.compute import Compute
from latentspectra.data import datasets as datasets_module
from latentspectra.data import load_dataset
from latentspectra.errors import SlowPrecisionWarning
from latentspectra.models.files import shipped_models_dir

Config = TypeVar("Config")

README = Path(__file__).resolve().parents[1] / "README.md"
BUNDLED_MNIST = Path(datasets_module.__file__).parent / "mnist"
SLICE = "npz:slice.npz"

# Appended to a command, by its first word.
SMALL: dict[str, list[str]] = {
    "train": ["--epochs", "1", "--dataset", SLICE, "--quiet"],
    "evaluate": ["--dataset", SLICE],
    "reproduce": ["--per-set", "5", "--trials", "1", "--dataset", SLICE, "--quiet"],
    "basis": ["--per-set", "3", "--quiet"],
    "sfvq": ["--codewords", "8", "--dataset", SLICE, "--quiet"],
    "reds": ["--latents", "2", "--steps", "2", "--basis-per-set", "5", "--quiet"],
    "compare": [  # one seed: compare's intervals over two are test_ground_truth's
        "--seeds",
        "1",
        "--directions",
        "3",
        "--latents",
        "4",
        "--edit-latents",
        "20",
        "--reconstructor-steps",
        "3",
        "--reconstructor-validation",
        "64",
        "--measure-samples",
        "100",
        "--param",
        "lsd.per_set=5",
        "--param",
        "interfacegan.n_samples=300",
        "--param",
        "ganspace.n_samples=500",
        "--param",
        "learned.steps=3",
        "--param",
        "learned.n_validation=64",
        "--param",
        "sfvq.epochs_per_stage=1",
        "--dataset",
        SLICE,
        "--quiet",
    ],
    "invert": ["--count", "3", "--steps", "3", "--quiet"],
    "fragmentation": [
        "--samples",
        "200",
        "--mixture-components",
        "4",
        "--mixture-codes",
        "200",
        "--dataset",
        SLICE,
        "--quiet",
    ],
    # a server runs until Ctrl-C: --check starts it, fetches the page and its API once and stops; a free port, a
    # cache in the working directory instead of the user's
    "explore": ["--port", "0", "--check", "--per-set", "5", "--cache", "explore-cache", "--quiet"],
}
# Commands that default to the shipped networks of --dataset get them named when the slice replaces MNIST.
SHIPPED_DEFAULT = ("reproduce", "sfvq", "fragmentation", "compare")
# What the README's placeholders stand for in the working directory.
PLACEHOLDERS = {"idx:DIR": "idx:mnist-idx", "npz:FILE": SLICE, "--to DIR": "--to downloaded"}


def readme_commands() -> list[str]:
    """The `latentspectra ...` command lines of the README's bash blocks (continuations joined, comments cut)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL)
    commands = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        for part in line.split("#")[0].split("&&"):
            if part.strip().startswith("latentspectra "):
                commands.append(" ".join(part.split()))
    return commands


def small(command: str) -> list[str]:
    """The command's arguments with the placeholders filled and the small sizes appended."""
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    args = shlex.split(command)[1:]
    extra = list(SMALL.get(args[0], []))
    if (
        args[0] in SHIPPED_DEFAULT
        and not {"--models", "--networks"} & set(args)
        and "--retrain" not in args
        and "--dataset" in extra
    ):
        extra += ["--models", str(shipped_models_dir("mnist"))]
    if "--retrain" in args:
        extra += ["--epochs", "1"]
    if args[:2] == ["data", "download"]:
        extra += ["--base-url", BUNDLED_MNIST.as_uri()]
    return args + extra


def option(args: list[str], name: str) -> str | None:
    """The value of option ``name`` in ``args`` (the last one given), or None."""
    values = [args[index + 1] for index, arg in enumerate(args[:-1]) if arg == name]
    return values[-1] if values else None


@dataclass(frozen=True)
class Run:
    """One README command as run: the arguments given, exit code, stdout, stderr and seconds."""

    command: str
    args: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class ReadmeRuns:
    """Every README command run in order in ``directory``."""

    directory: Path
    runs: list[Run]

    def run(self, command: str) -> Run:
        """The run of the README command line that is ``command`` followed by nothing or by more arguments."""
        matches = [run for run in self.runs if f"{run.command} ".startswith(f"{command} ")]
        assert len(matches) == 1, f"the README has {len(matches)} command lines starting with {command!r}"
        return matches[0]

    def out(self, command: str) -> Path:
        """The --out of that run, as a path."""
        return self.directory / option(self.run(command).args, "--out")


def prepare_directory(directory: Path) -> None:
    """What the README's placeholders need: the MNIST slice as an npz and a directory of IDX files."""
    mnist = load_dataset("mnist")
    np.savez(
        directory / "slice.npz",
        x_train=mnist.train.images[:300],
        y_train=mnist.train.labels[:300],
        x_test=mnist.test.images[:150],
        y_test=mnist.test.labels[:150],
    )
    (directory / "mnist-idx").mkdir()
    for path in BUNDLED_MNIST.glob("*.gz"):
        (directory / "mnist-idx" / path.name).write_bytes(path.read_bytes())


def run_command(args: list[str]) -> tuple[int, str, str, float]:
    """The CLI in-process: (exit code, stdout, stderr, seconds)."""
    began = time.perf_counter()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(args)
            code = 0
        except SystemExit as done:
            code = done.code or 0
    return code, stdout.getvalue(), stderr.getvalue(), time.perf_counter() - began


def run_readme(directory: Path) -> ReadmeRuns:
    """Run every README command, in order, from ``directory`` (emptied of everything but its inputs)."""
    prepare_directory(directory)
    previous = Path.cwd()
    os.chdir(directory)
    try:
        runs = [Run(command, small(command), *run_command(small(command))) for command in readme_commands()]
    finally:
        os.chdir(previous)
    return ReadmeRuns(directory, runs)


def rerun_compute(record: dict[str, Any]) -> Compute:
    """Where a run's study is computed again: the device its config asked for, at the precision its `auto` resolved
    to (``record["compute"]["precision"]``; a pretended CPU kind, conftest, may resolve `auto` otherwise here, and
    call that precision slow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPrecisionWarning)
        return Compute.select(record["config"]["device"], record["compute"]["precision"])


def comparable_compute(record: dict[str, Any]) -> dict[str, Any]:
    """A record's compute report less what was asked (`auto` in the run, its answer in a re-run) and the CPU report
    a pretended CPU kind changes: what a run and its re-run share."""
    return {key: value for key, value in record["compute"].items() if key not in ("cpu_native_bfloat16", "requested")}


def config_from_record(config_type: type[Config], recorded: dict[str, Any]) -> Config:
    """The config a run recorded (``record["config"]``, `config.config_record`) as ``config_type`` again: JSON's
    lists back to tuples, a nested config's record back to its class (by the field's type)."""
    hints = typing.get_type_hints(config_type)
    return config_type(**{name: _recorded_value(hints[name], value) for name, value in recorded.items()})


def _recorded_value(hint: Any, value: Any) -> Any:
    if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return config_from_record(hint, value)
    if isinstance(value, list):
        return tuple(_recorded_value(None, item) for item in value)
    return value
