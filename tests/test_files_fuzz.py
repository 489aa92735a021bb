"""Property-based tests: mutated safetensors files and JSON records given to every loader of the package's own
files (networks, a basis, an SFVQ curve, a training state) either load or raise the package's own error, one
line for the CLI; never another exception type."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY_CLASSIFIER, make_dataset
from latentspectra import SFVQ
from latentspectra.errors import CheckpointError, LatentspectraError
from latentspectra.io import load_tensors_and_record, save_tensors_with_record
from latentspectra.latent import QuasiEigenBasis, load_basis, save_basis
from latentspectra.methods import load_sfvq, save_sfvq
from latentspectra.models import Classifier
from latentspectra.models.files import load_model, save_model
from latentspectra.training.checkpoint import load_training_state
from latentspectra.training.classifier import ClassifierJob
from latentspectra.training.loop import run_training

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)
dtypes = st.sampled_from(
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.uint8, torch.bool]
)
shapes = st.lists(st.integers(0, 4), max_size=3)


def _paths(record: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON object, nested objects included."""
    paths = []
    for key, value in record.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _paths(value, (*prefix, key))
    return paths


@st.composite
def record_mutations(draw: st.DrawFn, record: dict) -> dict:
    """``record`` with one entry replaced by any JSON value, or removed."""
    path = draw(st.sampled_from(_paths(record)))
    mutated = _copy(record)
    holder = mutated
    for key in path[:-1]:
        holder = holder[key]
    if draw(st.booleans()):
        del holder[path[-1]]
    else:
        holder[path[-1]] = draw(json_values)
    return mutated


@st.composite
def tensor_mutations(draw: st.DrawFn, tensors: dict) -> dict:
    """``tensors`` with one tensor removed, or replaced by one of another dtype and shape (NaN among floats)."""
    key = draw(st.sampled_from(sorted(tensors)))
    mutated = dict(tensors)
    if draw(st.booleans()):
        del mutated[key]
        return mutated
    dtype, shape = draw(dtypes), draw(shapes)
    value = torch.full(shape, draw(st.sampled_from([0, 1, -1, 3])), dtype=torch.int64).to(dtype)
    if value.is_floating_point() and value.numel() and draw(st.booleans()):
        value.view(-1)[0] = float("nan")
    mutated[key] = value
    return mutated


def _copy(value):
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _loads_or_own_error(load) -> None:
    """Call ``load``: a result or a `LatentspectraError` passes, any other exception fails the test."""
    with contextlib.suppress(LatentspectraError):
        load()


@st.composite
def pair_mutations(draw: st.DrawFn, tensors: dict, record: dict) -> tuple[dict, dict]:
    kind = draw(st.sampled_from(["record", "tensors", "both"]))
    return (
        draw(tensor_mutations(tensors)) if kind != "record" else tensors,
        draw(record_mutations(record)) if kind != "tensors" else record,
    )


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes overwritten, or with bytes appended."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "append"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=16))
    position = draw(st.integers(0, len(data) - 1))
    patch = draw(st.binary(min_size=1, max_size=8))
    return data[:position] + patch + data[position + len(patch) :]


def _valid_pair(tmp_path: Path, save) -> tuple[Path, dict, dict]:
    path = save(tmp_path / "valid")
    tensors, record = load_tensors_and_record(path, CheckpointError, "file")
    return path, tensors, record


def _save_model(directory: Path) -> Path:
    return save_model(directory, "classifier", Classifier(width=2, hidden=4, num_classes=3), {"seed": 0})


def _save_basis(directory: Path) -> Path:
    etas = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return save_basis(QuasiEigenBasis.from_etas(etas, [0, 1, 0, 1], [1, 1, 2, 2]), directory / "basis.safetensors")


def _save_sfvq(directory: Path) -> Path:
    return save_sfvq(SFVQ(4, epochs_per_stage=1).fit(torch.randn(20, 3)), directory / "curve.safetensors")


LOADERS = {
    "model": (_save_model, "classifier.safetensors", lambda path: load_model(path.parent, "classifier")),
    "basis": (_save_basis, "basis.safetensors", load_basis),
    "sfvq": (_save_sfvq, "curve.safetensors", load_sfvq),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.slow
def test_mutated_pairs_load_or_raise_the_packages_error(tmp_path, name):
    save, file_name, load = LOADERS[name]
    _, tensors, record = _valid_pair(tmp_path, save)
    target = tmp_path / "mutated" / file_name

    @FUZZ
    @given(pair_mutations(tensors, record))
    def check(mutation):
        save_tensors_with_record(target, *mutation)
        _loads_or_own_error(lambda: load(target))

    check()


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_mutated_bytes_load_or_raise_the_packages_error(tmp_path, name):
    save, _file_name, load = LOADERS[name]
    path, _, _ = _valid_pair(tmp_path, save)
    tensors_bytes, json_bytes = path.read_bytes(), path.with_suffix(".json").read_bytes()

    @FUZZ
    @given(st.booleans(), st.data())
    def check(tensor_file, data):
        path.write_bytes(data.draw(byte_mutations(tensors_bytes)) if tensor_file else tensors_bytes)
        path.with_suffix(".json").write_bytes(json_bytes if tensor_file else data.draw(byte_mutations(json_bytes)))
        _loads_or_own_error(lambda: load(path))

    check()


@pytest.mark.slow
def test_mutated_training_states_resume_or_raise_the_packages_error(tmp_path):
    job = ClassifierJob(make_dataset(train=16, test=8), TINY_CLASSIFIER, 0)
    run_training(job, tmp_path, epochs=1, seed=0, config={}, progress=False)
    stem = tmp_path / "checkpoints" / "classifier-state"
    tensors, record = load_tensors_and_record(stem.with_suffix(".safetensors"), CheckpointError, "state")

    @FUZZ
    @given(pair_mutations(tensors, record))
    def check(mutation):
        save_tensors_with_record(stem.with_suffix(".safetensors"), *mutation)
        _loads_or_own_error(lambda: load_training_state(stem, job.modules, job.optimizers, job.schedulers))

    check()


MANIFEST_VALUES = st.one_of(
    json_values,
    st.sampled_from(["generator.pt2", "classifier.pt", "missing.pt2", "x"]),
    st.sampled_from([[3, 8, 8], [1, 8, 8], [0, 1], [-1, 1], ["a", "b"]]),
)


def test_mutated_manifests_resolve_or_raise_the_packages_error(tmp_path):
    from latentspectra.models.spec import resolve_networks

    generator = torch.nn.Sequential(torch.nn.Linear(4, 192), torch.nn.Unflatten(1, (3, 8, 8)))
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(
        torch.export.export(generator, (torch.zeros(2, 4),), dynamic_shapes=({0: batch},)),
        str(tmp_path / "generator.pt2"),
    )
    keys = st.sampled_from(
        ["generator", "classifier", "encoder", "latent_dim", "image_shape", "labels", "pixel_range", "prior", "other"]
    )

    @FUZZ
    @given(st.dictionaries(keys, MANIFEST_VALUES, max_size=5) | json_values)
    def check(manifest):
        (tmp_path / "networks.json").write_text(json.dumps(manifest))
        _loads_or_own_error(lambda: resolve_networks(tmp_path))

    check()
