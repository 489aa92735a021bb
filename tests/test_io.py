"""Atomic writes (nothing half-written survives a failure, new files get the usual permissions) and the JSON
records beside safetensors files."""

from __future__ import annotations

import os

import pytest
import torch

from latentspectra.errors import CheckpointError
from latentspectra.io import (
    atomic_write,
    load_tensors,
    load_tensors_with_record,
    read_json,
    read_record,
    record_path,
    save_tensors_with_record,
    tensors_digest,
    write_json,
)


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.json", fail)
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a" / "record.json", {"x": 1})
    finally:
        os.umask(previous)
    assert read_json(path) == {"x": 1}
    assert path.stat().st_mode & 0o777 == 0o644


def test_record_path_sits_beside_the_tensors_and_refuses_a_json_path(tmp_path):
    assert record_path(tmp_path / "basis.safetensors") == tmp_path / "basis.json"
    with pytest.raises(CheckpointError, match="would be overwritten"):
        record_path(tmp_path / "basis.json", CheckpointError)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "my record not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "other/1"}', "not a mine/1 record"),
    ],
)
def test_read_record_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "record.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CheckpointError, match=message) as error:
        read_record(path, CheckpointError, "my record", "mine/1")
    assert str(path) in str(error.value)


def test_read_record_returns_the_object(tmp_path):
    path = write_json(tmp_path / "record.json", {"format": "mine/1", "x": 1})
    assert read_record(path, CheckpointError, format="mine/1") == {"format": "mine/1", "x": 1}


def test_tensors_and_their_record_are_written_side_by_side(tmp_path):
    path = save_tensors_with_record(tmp_path / "thing.safetensors", {"x": torch.arange(3.0)}, {"format": "mine/1"})
    assert torch.equal(load_tensors(path, CheckpointError, "thing")["x"], torch.arange(3.0))
    assert read_record(tmp_path / "thing.json", CheckpointError, format="mine/1") == {
        "format": "mine/1",
        "tensors_sha256": tensors_digest({"x": torch.arange(3.0)}),
    }
    assert load_tensors_with_record(path, CheckpointError, "thing", "mine/1")[1] == {"format": "mine/1"}
    with pytest.raises(CheckpointError, match="would be overwritten"):
        save_tensors_with_record(tmp_path / "other.json", {"x": torch.zeros(1)}, {}, CheckpointError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing.json", "thing.safetensors"]
