"""Files that are written whole or not at all, and read back only when they are what they claim.

- Every file is written to a temporary name beside its target and renamed into place (`atomic_write`): an
  interrupted run never leaves a half-written file, and a failed write is one `OutputError` naming the path.
- Writers in one directory take turns: a process holds an advisory lock (flock) on the directory while it
  writes there (`directory_lock`), and a run holds it on its output directory for its whole length
  (`output_directory`), so a second run on the same output stops at once with one line; a run whose output is
  one file holds a lock on that file's name for its whole length (`output_file_lock`). Temporary files left
  by a killed process are removed by the next writer that takes the lock.
- A safetensors file and its JSON record are one unit: the record carries the SHA-256 of the tensors
  (`DIGEST_KEY`) and is also stored in the safetensors header (`RECORD_KEY`), both files are written under the
  directory's lock, and `load_tensors_with_record` refuses a pair whose record differs from the header's copy or
  whose tensors are not the ones the record names (one file from an interrupted or concurrent run, an edited
  record, damaged bytes).
- JSON is strict both ways: a number that is not finite is written as null, and NaN or Infinity tokens in a
  file are refused as invalid JSON.

Locks use POSIX flock; on a system without it (Windows) writes are still atomic but not locked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open

from .errors import LatentspectraError, OutputError

if TYPE_CHECKING:  # torch is imported where tensors are written: the command line reads records without it
    import torch

    from .distributed import World

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no module there: the locks are skipped where fcntl is None

RECORD_KEY = "latentspectra.record"  # the safetensors header metadata entry that holds the record
DIGEST_KEY = "tensors_sha256"  # the record's entry that names the exact tensors it was written with
LOCK_WAIT_SECONDS = 60.0  # how long a write waits for another process writing in the same directory
_LOCK_POLL_SECONDS = 0.05
_held_locks: dict[Path, list[int]] = {}  # directory -> [file descriptor, depth], this process's locks
_held_locks_guard = threading.Lock()


def versions() -> dict[str, str]:
    """Versions of the software a run used, for its JSON record."""
    import torch

    from . import __version__

    return {
        "latentspectra": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def user_cache_dir() -> Path:
    """The package's cache directory: $XDG_CACHE_HOME/latentspectra, else ~/.cache/latentspectra."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latentspectra"


def _write_failure(path: Path, failure: Exception) -> OutputError:
    cause = failure.strerror if isinstance(failure, OSError) and failure.strerror else str(failure)
    return OutputError(f"{path}: cannot write ({cause})")


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files that a killed writer left in ``directory`` (called with its lock held)."""
    for leftover in directory.glob(".*.part"):
        leftover.unlink(missing_ok=True)


def _try_flock(descriptor: int, wait: float) -> bool:
    """Take an exclusive flock on ``descriptor``, polling for up to ``wait`` seconds; False if it stays taken."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL_SECONDS)


@contextmanager
def directory_lock(directory: str | Path, wait: float | None = None, argument: str | None = None) -> Iterator[None]:
    """Hold the exclusive lock of ``directory`` (which must exist) for the block; re-entrant within a process.

    Raises:
        OutputError: another process held it for ``wait`` seconds (default `LOCK_WAIT_SECONDS`; "another
            latentspectra run is writing there"), naming ``argument`` (e.g. "--out") when given.
    """
    wait = LOCK_WAIT_SECONDS if wait is None else wait
    directory = Path(directory).resolve()
    with _held_locks_guard:
        held = _held_locks.get(directory)
        if held is not None:
            held[1] += 1
    if held is not None or fcntl is None:
        try:
            yield
        finally:
            _release(directory)
        return
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError as failure:
        raise _write_failure(directory, failure) from None
    if not _try_flock(descriptor, wait):
        os.close(descriptor)
        name = f"{argument} {directory}" if argument else str(directory)
        waited = f" (waited {wait:g} s)" if wait else ""
        raise OutputError(
            f"{name}: another latentspectra run is writing there{waited}; wait for it to finish "
            "or choose another output"
        )
    with _held_locks_guard:
        _held_locks[directory] = [descriptor, 1]
    try:
        _remove_stale_temporaries(directory)
        yield
    finally:
        _release(directory)


def _release(directory: Path) -> None:
    with _held_locks_guard:
        held = _held_locks.get(directory)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _held_locks[directory]
            os.close(held[0])  # closing the descriptor releases the flock


def _missing_directories(directory: Path) -> list[Path]:
    """``directory`` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


@contextmanager
def output_directory(path: str | Path, argument: str = "--out", lock: bool = True) -> Iterator[Path]:
    """``path`` as a writable directory, created if needed and, with ``lock``, held for the block so that
    no other run writes there meanwhile. If the block fails, the directories it created are removed again
    when nothing was written into them.

    Raises:
        LatentspectraError: ``path`` is a file, or cannot be created or written; names ``argument``.
        OutputError: another run is writing there.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise LatentspectraError(f"{argument} {path}: exists and is not a directory")
    created = _missing_directories(directory.absolute())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        _remove_empty(created)
        raise LatentspectraError(f"{argument} {path}: cannot write there ({error.strerror})") from None
    try:
        if lock:
            with directory_lock(directory, wait=0, argument=argument):
                yield directory
        else:
            yield directory
    except BaseException:
        _remove_empty(created)
        raise


def output_lock_path(path: Path) -> Path:
    """The lock file of a run whose output is ``path``: runs/b.safetensors -> runs/.b.safetensors.lock."""
    return path.with_name(f".{path.name}.lock")


def _locked_lock_file(lock_path: Path, argument: str, output: Path) -> int:
    """A descriptor of ``lock_path`` holding its flock; the file is the one at ``lock_path`` now (a holder that
    finished may have removed the file it locked, so a lock on a removed file is dropped and taken again)."""
    while True:
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as failure:
            raise _write_failure(lock_path, failure) from None
        if not _try_flock(descriptor, 0):
            os.close(descriptor)
            raise OutputError(
                f"{argument} {output}: another latentspectra run is writing it; wait for it to finish "
                "or choose another output"
            )
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(lock_path)):
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


@contextmanager
def output_file_lock(path: str | Path, argument: str = "--out") -> Iterator[None]:
    """Hold the lock of the output file ``path`` (whose directory must exist) for the block, so that a second
    run writing the same file stops at once with one line; the lock file beside it is removed afterwards.

    Raises:
        OutputError: another process holds it, naming ``argument`` and ``path``.
    """
    path = Path(path)
    if fcntl is None:  # pragma: no cover - Windows: atomic but not locked
        yield
        return
    lock_path = output_lock_path(path)
    descriptor = _locked_lock_file(lock_path, argument, path)
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(descriptor)


@contextmanager
def writer_directory(world: World, path: str | Path, lock: bool = False) -> Iterator[None]:
    """`output_directory` of ``path`` (locked with ``lock``) on the rank that writes; nothing on the others."""
    if world.is_writer:
        with output_directory(path, lock=lock):
            yield
    else:
        yield


@contextmanager
def writer_file_lock(world: World, path: str | Path) -> Iterator[None]:
    """`output_file_lock` of ``path`` on the rank that writes; nothing on the others."""
    with output_file_lock(path) if world.is_writer else nullcontext():
        yield


def _remove_empty(directories: list[Path]) -> None:
    """Remove each of ``directories`` (deepest first) that is empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def _default_file_mode() -> int:
    """0o666 minus the process umask: the mode a plain open() would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path`` with the
    permissions a plain open() would have given it (mkstemp's own are owner-only), holding the directory's
    lock. Nothing is left at ``path`` or beside it when anything fails.

    Raises:
        OutputError: the file cannot be written (no space, no permission, ...), naming ``path`` and the cause.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise _write_failure(path, failure) from None
    with directory_lock(path.parent):
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        except OSError as failure:
            raise _write_failure(path, failure) from None
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, _default_file_mode())
            os.replace(tmp, path)
        except (OSError, SafetensorError) as failure:
            raise _write_failure(path, failure) from None
        finally:
            tmp.unlink(missing_ok=True)
    return path


def finite_json(obj: Any) -> Any:
    """``obj`` with every float that is not finite replaced by None, so that it encodes as strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(value) for value in obj]
    return obj


def json_text(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as strict JSON (non-finite numbers as null), indented for people unless ``indent`` is None."""
    separators = None if indent else (",", ":")
    return json.dumps(finite_json(obj), indent=indent, separators=separators, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON, atomically."""
    text = json_text(obj) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str) -> Any:
    """Strict JSON: NaN, Infinity and -Infinity are refused with ValueError."""
    return json.loads(text, parse_constant=_refuse_constant)


def read_json(path: str | Path) -> Any:
    """Read a strict JSON file; raises OSError or ValueError for the caller to report."""
    return parse_json(Path(path).read_text())


def record_path(tensors_path: str | Path, error: type[Exception] = ValueError) -> Path:
    """The JSON record that goes beside a safetensors file: the same path with suffix .json. A ``tensors_path``
    that is itself a .json file raises ``error`` (the record would overwrite it)."""
    tensors_path = Path(tensors_path)
    if tensors_path.suffix == ".json":
        raise error(f"{tensors_path} would be overwritten by the JSON record; use a .safetensors path")
    return tensors_path.with_suffix(".json")


def read_record(
    path: str | Path, error: type[LatentspectraError], what: str = "JSON record", format: str | None = None
) -> dict[str, Any]:
    """Read the JSON object at ``path``; a missing file, invalid JSON, a value that is not an object, or (when
    ``format`` is given) a record whose "format" differs raises ``error`` naming ``path`` and ``what``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        record = read_json(path)
    except (ValueError, UnicodeDecodeError, RecursionError) as failure:
        raise error(f"{path}: not valid JSON ({failure})") from None
    except OSError as failure:
        raise error(f"{path}: cannot read ({failure.strerror or failure})") from None
    return _checked_record(record, path, error, format)


def _checked_record(record: Any, path: Path, error: type[LatentspectraError], format: str | None) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise error(f"{path}: expected a JSON object")
    if format is not None and record.get("format") != format:
        raise error(f"{path}: not a {format} record")
    return record


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (and the header ``metadata``) to ``path`` as safetensors, atomically (contiguous,
    detached copies on the CPU)."""
    from safetensors.torch import save_file

    plain = {key: value.detach().cpu().contiguous().clone() for key, value in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(plain, str(tmp), metadata=metadata))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of ``tensors``: every name, dtype, shape and byte, in name order."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of numpy ``arrays``: every name, dtype, shape and byte, in name order (as `tensors_digest`)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def save_tensors_with_record(
    path: str | Path, tensors: dict[str, torch.Tensor], record: dict[str, Any], error: type[Exception] = ValueError
) -> Path:
    """Write ``tensors`` to ``path`` (safetensors, with the record in its header) and the record to its
    `record_path` (JSON), each atomically and both under the directory's lock; the record written is
    ``record`` with the tensors' `tensors_digest` added. Returns ``path``. A .json ``path`` raises ``error``
    before anything is written.

    Raises:
        OutputError: a file cannot be written.
    """
    path, json_path = Path(path), record_path(path, error)
    if DIGEST_KEY in record:
        raise ValueError(f"save_tensors_with_record: {DIGEST_KEY!r} is the entry the record's digest is written to")
    record = {**record, DIGEST_KEY: tensors_digest(tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(path.parent):
        save_tensors(path, tensors, {RECORD_KEY: json_text(record, indent=None)})
        write_json(json_path, record)
    return path


def load_tensors_with_record(
    path: str | Path, error: type[LatentspectraError], what: str, format: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of ``path`` (safetensors) and the JSON record beside it (without its digest), written together
    by `save_tensors_with_record`; with ``format``, the record must say it is of that format.

    Raises:
        ``error``: a missing or unreadable file, a record of another format, or a pair not written together:
            the record differs from the copy in the safetensors header, or names other tensors; naming the
            files and ``what``.
    """
    path = Path(path)
    json_path = record_path(path, error)
    record = read_record(json_path, error, f"{what} JSON record", format)
    tensors, embedded = _load_checked_tensors(path, error, what, format)
    if embedded != record:
        raise error(
            f"{path} and {json_path} were not written together (an interrupted or concurrent run, or an "
            f"edited record): the record in {path.name} differs; write them again"
        )
    return tensors, _without_digest(record)


def load_tensors_and_record(
    path: str | Path, error: type[LatentspectraError], what: str, format: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of ``path`` and the record stored in its own header by `save_tensors_with_record` (the JSON
    beside it is not read), without the digest, once the tensors are checked against it.

    Raises:
        ``error``: a missing or unreadable file, one without a valid record of ``format`` in its header, or
            tensors other than those its record names (damaged or replaced).
    """
    tensors, record = _load_checked_tensors(Path(path), error, what, format)
    return tensors, _without_digest(record)


def _without_digest(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != DIGEST_KEY}


def _load_checked_tensors(
    path: Path, error: type[LatentspectraError], what: str, format: str | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`load_tensors_and_record`, the record keeping its digest."""
    tensors, metadata = _read_safetensors(path, error, what)
    if RECORD_KEY not in metadata:
        raise error(
            f"{path}: holds no latentspectra record in its header (written by another program or an older "
            f"version); expected a {what} file written by latentspectra"
        )
    try:
        record = parse_json(metadata[RECORD_KEY])
    except (ValueError, RecursionError) as failure:
        raise error(f"{path}: the record in its header is not valid JSON ({failure})") from None
    record = _checked_record(record, path, error, format)
    if record.get(DIGEST_KEY) != tensors_digest(tensors):
        raise error(f"{path}: its tensors are not the ones its record was written with (damaged or replaced)")
    return tensors, record


def load_tensors(path: str | Path, error: type[LatentspectraError], what: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never a pickle); a missing or unreadable file raises ``error`` naming
    ``path``, with ``what`` saying what kind of file was expected (e.g. "weights")."""
    return _read_safetensors(Path(path), error, what)[0]


def _read_safetensors(
    path: Path, error: type[LatentspectraError], what: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of ``path``, read without unpickling anything."""
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = handle.keys()  # safe_open has keys() but is not iterable
            return {key: handle.get_tensor(key) for key in keys}, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as failure:
        raise error(f"{path}: not a readable safetensors file ({failure})") from None
