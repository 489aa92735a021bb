"""Atomic writes: nothing half-written survives a failure, and new files get the usual permissions."""

from __future__ import annotations

import os

import pytest

from latentspectra.io import atomic_write, read_json, write_json


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
