"""Nothing silent, nothing corrupted: a killed run resumes as if it had not been killed, a safetensors file and
its record are one unit, outputs are locked while a run writes them, and every bad input or failed write is one
line on stderr with exit code 2."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_CLASSIFIER, make_dataset, one_error_line, rewrite_pair, run_cli
from latentspectra import io
from latentspectra.errors import CheckpointError, OutputError
from latentspectra.latent import BasisError, QuasiEigenBasis, load_basis, save_basis
from latentspectra.models import Classifier, Generator, build_model
from latentspectra.models.files import load_model, save_model, shipped_models_dir
from latentspectra.training.classifier import ClassifierJob
from latentspectra.training.loop import run_training

TESTS = Path(__file__).parent


# ------------------------------------------------------------------ a kill between the two checkpoint writes

TRAIN_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from conftest import TINY_CLASSIFIER, make_dataset
    from latentspectra.training.classifier import ClassifierJob
    from latentspectra.training.loop import run_training

    kill_at, renames, rename = int(sys.argv[2]), [], os.replace

    def replace(source, target):
        if str(target).endswith("-state.json"):  # the second write of a checkpoint: its JSON record
            renames.append(target)
            if len(renames) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target)

    os.replace = replace
    run_training(ClassifierJob(make_dataset(train=32, test=16), TINY_CLASSIFIER, 5), sys.argv[1], epochs=2, seed=5,
                 config={}, progress=False)
""")


def _train_in_child(out: Path, kill_at: int) -> int:
    return subprocess.run(
        [sys.executable, "-c", TRAIN_CHILD, str(out), str(kill_at), str(TESTS)], capture_output=True, timeout=120
    ).returncode


def _train(out: Path) -> int:
    return run_training(
        ClassifierJob(make_dataset(train=32, test=16), TINY_CLASSIFIER, 5),
        out,
        epochs=2,
        seed=5,
        config={},
        progress=False,
    ).resumed_from_epoch


@pytest.mark.slow
def test_a_run_killed_between_the_checkpoint_writes_resumes_byte_for_byte(tmp_path):
    assert _train(tmp_path / "straight") == 0
    assert _train_in_child(tmp_path / "killed", kill_at=2) == -9  # after epoch 2's tensors, before its JSON
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert json.loads((checkpoints / "classifier-state.json").read_text())["meta"]["epochs_done"] == 1
    assert list(checkpoints.glob(".*.part"))  # the killed process's temporary file

    assert _train(tmp_path / "killed") == 2  # from what the tensors hold, not from the stale JSON
    assert not list(checkpoints.glob(".*.part"))
    straight_weights = io.load_tensors(tmp_path / "straight" / "classifier.safetensors", CheckpointError, "w")
    resumed_weights = io.load_tensors(tmp_path / "killed" / "classifier.safetensors", CheckpointError, "w")
    assert straight_weights.keys() == resumed_weights.keys()
    for key, value in straight_weights.items():
        assert value.numpy().tobytes() == resumed_weights[key].numpy().tobytes(), key


@pytest.mark.parametrize(
    "record, message",
    [
        (lambda r: {**r, "meta": {**r["meta"], "epochs_done": "x"}}, "'meta.epochs_done'"),
        (lambda r: {key: value for key, value in r.items() if key != "meta"}, "'meta'"),
        (lambda r: {**r, "meta": {**r["meta"], "history": 3}}, "'meta.history'"),
        (lambda r: {**r, "optimizers": {"model": {"param_groups": "x", "indices": []}}}, "does not match this run"),
    ],
)
def test_a_checkpoint_record_of_the_wrong_structure_is_one_line(tmp_path, capsys, tiny_npz, record, message):
    args = ("train", "classifier", "--dataset", f"npz:{tiny_npz}", "--out", str(tmp_path / "run"), "--quiet")
    assert run_cli(capsys, *args, "--epochs", "1")[0] == 0
    rewrite_pair(tmp_path / "run" / "checkpoints" / "classifier-state.safetensors", record)
    code, _, err = run_cli(capsys, *args, "--epochs", "2")
    assert code == 2 and message in one_error_line(err) and "classifier-state.safetensors" in err


# ------------------------------------------------------------------ a tensor file and its record are one unit


def test_a_record_that_could_not_be_written_leaves_a_pair_that_load_refuses(tmp_path, monkeypatch):
    path = save_basis(_basis(seed=0), tmp_path / "basis.safetensors")
    real_write_json = io.write_json

    def full_disk(target, obj):
        raise OutputError(f"{target}: cannot write (No space left on device)")

    monkeypatch.setattr(io, "write_json", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        save_basis(_basis(seed=7), path)
    monkeypatch.setattr(io, "write_json", real_write_json)
    with pytest.raises(BasisError, match="were not written together"):  # seed 7 vectors beside the seed 0 record
        load_basis(path)


def test_pairs_of_two_runs_are_refused_and_an_edited_record_too(tmp_path):
    first = save_basis(_basis(seed=0), tmp_path / "a" / "basis.safetensors")
    second = save_basis(_basis(seed=1, provenance={"seed": 1}), tmp_path / "b" / "basis.safetensors")
    shutil.copy(second, first)
    with pytest.raises(BasisError, match="were not written together"):
        load_basis(first)
    record = json.loads(second.with_suffix(".json").read_text())
    second.with_suffix(".json").write_text(json.dumps({**record, "norm": 7.0}))
    with pytest.raises(BasisError, match="were not written together"):
        load_basis(second)


def test_damaged_tensors_are_refused(tmp_path):
    path = save_basis(_basis(seed=0), tmp_path / "basis.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit pattern in the last vector
    path.write_bytes(bytes(data))
    with pytest.raises(BasisError, match="not the ones its record was written with"):
        load_basis(path)


def test_a_safetensors_file_without_its_record_in_the_header_is_refused(tmp_path):
    path = tmp_path / "classifier.safetensors"
    model = Classifier(width=4)
    io.save_tensors(path, model.state_dict())
    io.write_json(path.with_suffix(".json"), {"kind": "classifier", "config": model.config})
    with pytest.raises(CheckpointError, match="holds no latentspectra record in its header"):
        load_model(tmp_path, "classifier")


@contextmanager
def held_by_another_process(lock: str, path: Path) -> Iterator[None]:
    """``latentspectra.io.<lock>(path)`` held by another process for the block (killed after it)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time\nfrom latentspectra.io import {lock}\n"
            f"with {lock}(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.slow
def test_a_second_run_on_an_output_being_written_stops_at_once(tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    with held_by_another_process("directory_lock", out):
        code, _, err = run_cli(capsys, "sfvq", "--out", str(out), "--codewords", "4", "--quiet")
        assert code == 2
        assert f"--out {out.resolve()}: another latentspectra run is writing there" in one_error_line(err)
        io.LOCK_WAIT_SECONDS, wait = 0.2, io.LOCK_WAIT_SECONDS
        try:  # a single write waits for the other run, then gives up with one line
            with pytest.raises(OutputError, match=r"another latentspectra run is writing there \(waited 0.2 s\)"):
                save_basis(_basis(seed=0), out / "basis.safetensors")
        finally:
            io.LOCK_WAIT_SECONDS = wait
    assert sorted(path.name for path in out.iterdir()) == []
    save_basis(_basis(seed=0), out / "basis.safetensors")  # the lock went with the process


@pytest.mark.slow
def test_a_second_basis_run_on_the_same_file_stops_at_once(tmp_path, capsys):
    """`basis --out FILE` holds FILE's lock for its whole run, as the commands with an output directory hold
    theirs: a second run writing the same file stops with one line and leaves the first run's file alone."""
    out = tmp_path / "runs" / "b.safetensors"
    out.parent.mkdir()
    with held_by_another_process("output_file_lock", out):
        code, _, err = run_cli(capsys, "basis", "--out", str(out), "--per-set", "2", "--quiet")
        assert code == 2
        assert f"--out {out}: another latentspectra run is writing it" in one_error_line(err)
        assert not out.exists()
    with io.output_file_lock(out):  # the lock went with the process, and the lock file with the lock
        assert io.output_lock_path(out).exists()
    assert sorted(path.name for path in out.parent.iterdir()) == []


# ------------------------------------------------------------------ write failures


@pytest.mark.parametrize("cause", [errno.ENOSPC, errno.EACCES, errno.EPERM])
def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, tiny_npz, cause):
    def failing_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError(cause, os.strerror(cause))

    monkeypatch.setattr("safetensors.torch.save_file", failing_save)  # io imports it where it writes
    out = tmp_path / "new" / "run"
    code, _, err = run_cli(
        capsys, "train", "classifier", "--dataset", f"npz:{tiny_npz}", "--epochs", "1", "--out", str(out), "--quiet"
    )
    state = out / "checkpoints" / "classifier-state.safetensors"
    assert code == 2 and f"{state}: cannot write ({os.strerror(cause)})" in one_error_line(err)
    assert not (tmp_path / "new").exists()  # neither the file nor its temporary, nor the directories made for them


def test_strict_json_both_ways(tmp_path):
    path = io.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    assert path.read_text().replace(" ", "").replace("\n", "") == '{"a":null,"b":[null,1.5]}'
    path.write_text('{"a": NaN}')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        io.read_record(path, CheckpointError)


# ------------------------------------------------------------------ artefacts checked for what they claim


def _basis(seed: int, provenance: dict | None = None) -> QuasiEigenBasis:
    etas = torch.randn(6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return QuasiEigenBasis.from_etas(etas, [0, 1, 2] * 2, [1, 1, 1, 2, 2, 2], provenance=provenance)


@pytest.mark.parametrize(
    "tensors_change, record_change, message",
    [
        (lambda t: {**t, "vectors": torch.full_like(t["vectors"], float("nan"))}, None, "NaN or infinite"),
        (lambda t: {**t, "vectors": t["vectors"] * 1.01}, None, "are not orthogonal"),
        (None, lambda r: {**r, "norm": float("inf")}, "norm C must be a finite number > 0"),
        (lambda t: {**t, "vectors": t["vectors"].float()}, None, "must be float64"),
    ],
)
def test_a_basis_file_is_checked_for_what_it_claims(tmp_path, tensors_change, record_change, message):
    path = save_basis(_basis(seed=0), tmp_path / "basis.safetensors")
    rewrite_pair(path, record_change or (lambda r: r), tensors_change)
    with pytest.raises(BasisError, match=message):
        load_basis(path)


def test_reds_with_a_nan_basis_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = save_basis(
        QuasiEigenBasis.from_etas(
            torch.randn(100, 100, dtype=torch.float64), list(range(10)) * 10, [i // 10 + 1 for i in range(100)]
        ),
        tmp_path / "basis.safetensors",
    )
    rewrite_pair(path, lambda r: r, lambda t: {**t, "vectors": torch.full_like(t["vectors"], float("nan"))})
    code, _, err = run_cli(
        capsys,
        "reds",
        "--basis",
        str(path),
        "--out",
        str(tmp_path / "reds"),
        "--latents",
        "1",
        "--steps",
        "1",
        "--quiet",
    )
    assert code == 2 and "NaN or infinite" in one_error_line(err)
    assert not (tmp_path / "reds").exists()


def test_weights_that_are_not_floating_point_or_not_finite_are_refused(tmp_path):
    save_model(tmp_path, "classifier", Classifier(width=4), {})
    path = tmp_path / "classifier.safetensors"
    rewrite_pair(path, lambda r: r, lambda t: {**t, "head.weight": t["head.weight"].to(torch.int32)})
    with pytest.raises(CheckpointError, match="'head.weight' have dtype torch.int32, expected floating point"):
        load_model(tmp_path, "classifier")
    rewrite_pair(
        path,
        lambda r: r,
        lambda t: {**t, "head.weight": torch.full_like(t["head.weight"], float("nan"), dtype=torch.float32)},
    )
    with pytest.raises(CheckpointError, match="'head.weight' hold NaN or infinite values"):
        load_model(tmp_path, "classifier")


# ------------------------------------------------------------------ one line, never a traceback


def test_a_model_file_in_the_wrong_role_is_one_line(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(shipped_models_dir() / f"classifier{suffix}", models / f"generator{suffix}")
    code, _, err = run_cli(capsys, "evaluate", "--models", str(models), "--device", "cpu")
    assert code == 2 and "generator.json: holds a classifier, expected the generator" in one_error_line(err)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"latent_dim": -5}, "latent_dim must be a whole number >= 1, got -5"),
        ({"latent_dim": 10**12}, "GiB are available"),
        ({"latent_dim": 0}, "latent_dim must be a whole number >= 1, got 0"),
        ({"image_shape": [1, -28, 28]}, r"image_shape must be three whole numbers >= 1"),
        ({"colour": 3}, "unexpected keyword argument 'colour'"),
    ],
)
def test_impossible_configs_are_refused_before_anything_is_built(tmp_path, capsys, tiny_models, config, message):
    rewrite_pair(tiny_models / "generator.safetensors", lambda r: {**r, "config": {**r["config"], **config}})
    code, _, err = run_cli(capsys, "evaluate", "--models", str(tiny_models), "--device", "cpu")
    assert code == 2
    assert message in one_error_line(err) and "generator.json: cannot rebuild the network" in err


def _npz(path: Path, images_shape: tuple[int, ...], train: int = 20) -> str:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 255, (train, *images_shape), dtype=np.uint8),
        y_train=np.arange(train) % 10,
        x_test=rng.integers(0, 255, (10, *images_shape), dtype=np.uint8),
        y_test=np.arange(10),
    )
    return f"npz:{path}"


@pytest.mark.parametrize("shape", [(3, 28, 28), (2, 2)])
def test_images_the_networks_cannot_take_are_one_line(tmp_path, capsys, tiny_models, shape):
    dataset = _npz(tmp_path / "images.npz", shape)
    for command in (("evaluate",), ("sfvq", "--codewords", "4", "--out", str(tmp_path / "sfvq"))):
        code, _, err = run_cli(capsys, *command, "--models", str(tiny_models), "--dataset", dataset, "--device", "cpu")
        assert code == 2 and "take (1, 28, 28)" in one_error_line(err)
    code, _, err = run_cli(
        capsys,
        "train",
        "gan",
        "--dataset",
        _npz(tmp_path / "small.npz", (6, 6)),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--quiet",
    )
    assert code == 2 and "cannot train the gan on its images" in one_error_line(err)
    assert not (tmp_path / "run").exists() and not (tmp_path / "sfvq").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("basis", "--batch-size", str(10**9)), "--batch-size 1000000000: needs about"),
        (("basis", "--per-set", str(10**12)), "--per-set"),
        (("reproduce", "--seed", str(2**64)), "--seed"),
    ],
)
def test_sizes_beyond_the_machine_are_refused_before_work_starts(tmp_path, capsys, tiny_models, args, message):
    out = ("--out", str(tmp_path / "o.safetensors")) if args[0] == "basis" else ("--out", str(tmp_path / "o"))
    code, _, err = run_cli(capsys, *args, "--models", str(tiny_models), *out, "--device", "cpu", "--quiet")
    assert code == 2 and message in one_error_line(err)
    assert "models" not in err.split(message)[0] or args[0] != "reproduce"


def test_the_encoder_hint_names_a_command_that_exists(tmp_path, capsys, tiny_npz):
    code, _, err = run_cli(
        capsys, "train", "encoder", "--dataset", f"npz:{tiny_npz}", "--out", str(tmp_path / "run"), "--quiet"
    )
    assert code == 2 and "latentspectra train gan --out" in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_zero_sized_networks_print_one_line_and_no_torch_warning(tmp_path, capsys, tiny_models):
    rewrite_pair(tiny_models / "classifier.safetensors", lambda r: {**r, "config": {**r["config"], "hidden": 0}})
    code, _, err = run_cli(capsys, "evaluate", "--models", str(tiny_models), "--device", "cpu")
    assert code == 2 and "hidden must be a whole number >= 1" in one_error_line(err)


def test_a_resumed_run_says_so_without_progress_bars(tmp_path, capsys, tiny_npz):
    args = ("train", "classifier", "--dataset", f"npz:{tiny_npz}", "--out", str(tmp_path / "run"), "--quiet")
    assert run_cli(capsys, *args, "--epochs", "1")[0] == 0
    code, _, err = run_cli(capsys, *args, "--epochs", "2")
    assert code == 0 and "resuming classifier after epoch 1 of 2" in err


def test_build_model_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="must be an object"):
        build_model("generator", [1, 2])
    assert isinstance(build_model("generator", {"latent_dim": 3, "width": 2, "hidden": 4}), Generator)


@pytest.mark.parametrize(
    "args, kept",
    [
        (("basis", "--out", "x.safetensors"), "finished latent sets are kept beside --out, rerun the same command"),
        (("train", "gan", "--out", "runs/x"), "finished epochs are saved, rerun the same command to resume training"),
    ],
)
def test_ctrl_c_says_what_the_command_kept(capsys, monkeypatch, args, kept):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("latentspectra.io.output_directory", interrupted)
    code, _, err = run_cli(capsys, *args)
    assert (
        code == 130
        and err.strip().startswith(f"latentspectra: interrupted; {kept}")
        and len(err.strip().splitlines()) == 1
    )


def test_a_train_interrupted_before_its_first_epoch_leaves_no_directories(tmp_path, capsys, monkeypatch, tiny_npz):
    """Ctrl-C before any state is saved: neither --out nor its checkpoints/ is left behind (empty)."""

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ClassifierJob, "train_step", interrupted)
    out = tmp_path / "runs" / "x"
    code, _, _ = run_cli(capsys, "train", "classifier", "--dataset", f"npz:{tiny_npz}", "--out", str(out), "--quiet")
    assert code == 130 and not (tmp_path / "runs").exists()
