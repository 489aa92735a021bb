"""Atomic file writes: a run that is interrupted never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import LatentspectraError


def versions() -> dict[str, str]:
    """Versions of the software a run used, for its JSON record."""
    from . import __version__

    return {
        "latentspectra": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def prepare_out_dir(path: str | Path, argument: str = "--out") -> Path:
    """``path`` as a directory that exists and can be written, created if needed.

    Raises:
        LatentspectraError: ``path`` is a file, or cannot be created or written; names ``argument``.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise LatentspectraError(f"{argument} {path}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise LatentspectraError(f"{argument} {path}: cannot write there ({error.strerror})") from None
    return directory


def _default_file_mode() -> int:
    """0o666 minus the process umask: the mode a plain open() would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path`` with the
    permissions a plain open() would have given it (mkstemp's own are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | Path) -> Any:
    """Read a JSON file; raises FileNotFoundError or json.JSONDecodeError for the caller to report."""
    return json.loads(Path(path).read_text())


def record_path(tensors_path: str | Path, error: type[Exception] = ValueError) -> Path:
    """The JSON record that goes beside a safetensors file: the same path with suffix .json. A ``tensors_path``
    that is itself a .json file raises ``error`` (the record would overwrite it)."""
    tensors_path = Path(tensors_path)
    if tensors_path.suffix == ".json":
        raise error(f"{tensors_path} would be overwritten by the JSON record; use a .safetensors path")
    return tensors_path.with_suffix(".json")


def read_record(path: str | Path, error: type[LatentspectraError], what: str = "JSON record",
                format: str | None = None) -> dict[str, Any]:  # noqa: A002 - the record's "format" key
    """Read the JSON object at ``path``; a missing file, invalid JSON, a value that is not an object, or (when
    ``format`` is given) a record whose "format" differs raises ``error`` naming ``path`` and ``what``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        record = read_json(path)
    except (ValueError, UnicodeDecodeError) as failure:
        raise error(f"{path}: not valid JSON ({failure})") from None
    if not isinstance(record, dict):
        raise error(f"{path}: expected a JSON object")
    if format is not None and record.get("format") != format:
        raise error(f"{path}: not a {format} record")
    return record


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` to ``path`` as safetensors, atomically (contiguous, detached copies on the CPU)."""
    plain = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(plain, str(tmp)))


def save_tensors_with_record(path: str | Path, tensors: dict[str, torch.Tensor], record: dict[str, Any],
                             error: type[Exception] = ValueError) -> Path:
    """Write ``tensors`` to ``path`` (safetensors) and ``record`` to its `record_path` (JSON), each
    atomically; returns ``path``. A .json ``path`` raises ``error`` before anything is written."""
    path, json_path = Path(path), record_path(path, error)
    save_tensors(path, tensors)
    write_json(json_path, record)
    return path


def load_tensors_with_record(path: str | Path, error: type[LatentspectraError], what: str,
                             format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # noqa: A002
    """The tensors of ``path`` (safetensors) and the JSON record beside it, written by `save_tensors_with_record`;
    the record must say it is of ``format``. Errors name the file and ``what`` it should have been.

    Raises:
        ``error``: a missing or unreadable file, or a record of another format.
    """
    record = read_record(record_path(path, error), error, f"{what} JSON record", format)
    return load_tensors(path, error, what), record


def load_tensors(path: str | Path, error: type[LatentspectraError], what: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never a pickle); a missing or unreadable file raises ``error`` naming
    ``path``, with ``what`` saying what kind of file was expected (e.g. "weights")."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as failure:
        raise error(f"{path}: not a readable safetensors file ({failure})") from None
