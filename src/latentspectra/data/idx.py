"""Reading and validating files in the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the array data in C order.  Only the
unsigned-byte dtype code (``0x08``) is accepted, which is what image and label
files use.  Files may be gzip-compressed (detected from the content, not only
from the ``.gz`` suffix).

The header is read first: a file whose header declares more bytes than the memory
available is refused before anything is allocated, and a file is never read (a
gzip stream never decompressed) further than ``MAX_TRAILING_BYTES`` past the end
its header declares.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError
from ..host import available_host_memory

__all__ = ["MAX_TRAILING_BYTES", "check_fits_in_memory", "parse_idx", "read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_DTYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
#: Bytes past the declared data that are counted (and, in a gzip file, decompressed) before reading stops:
#: a file is never read beyond its header's declared size plus this, so a gzip bomb costs at most that much.
MAX_TRAILING_BYTES = 1 << 20
_DATA_CHUNK = 1 << 20
_TRAILING_CHUNK = 1 << 16


@contextmanager
def reading(path: Path, expected: str) -> Iterator[None]:
    """Turn the OS errors of reading ``path`` inside the block into one-line `DataError`s naming it; a
    directory is reported as not the ``expected`` kind of file (e.g. "an IDX file")."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected {expected}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from None


def check_fits_in_memory(nbytes: int, what: str) -> None:
    """Raise DataError ``"<what> declares <nbytes> bytes, more than the <N> bytes of memory available"`` when
    ``nbytes`` exceeds :func:`available_host_memory` (never when that is unknown), before anything is allocated."""
    available = available_host_memory()
    if available is not None and nbytes > available:
        raise DataError(f"{what} declares {nbytes} bytes, more than the {available} bytes of memory available")


def _read_header(stream: io.BufferedIOBase, source: str | Path) -> tuple[int, tuple[int, ...]]:
    """Read and validate the IDX header at the start of ``stream``; return its size in bytes and the shape."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{source}: truncated: {len(magic)} bytes, too short for an IDX header")
    zero0, zero1, code, ndim = magic
    if zero0 != 0 or zero1 != 0:
        raise DataError(f"{source}: bad magic number {magic.hex(' ')}: an IDX file starts with 00 00")
    if code != _UBYTE:
        kind = _DTYPE_NAMES.get(code, "unknown")
        raise DataError(
            f"{source}: unsupported IDX dtype code 0x{code:02x} ({kind}); only 0x08 (unsigned byte) is supported"
        )
    if ndim == 0:
        raise DataError(f"{source}: bad magic number {magic.hex(' ')}: declares 0 dimensions")

    header_size = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"{source}: truncated: header declares {ndim} dimensions ({header_size} header bytes) "
            f"but file holds {4 + len(dims)} bytes"
        )
    return header_size, tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))


def _check_length(held: int, expected: int, shape: tuple[int, ...], source: str | Path, exact: bool = True) -> None:
    """Raise DataError unless the file holds exactly the ``expected`` bytes its header declares: fewer is
    truncated, more is trailing garbage (``exact=False``: more than ``expected + MAX_TRAILING_BYTES``)."""
    declared = f"header declares shape {shape} ({expected} bytes)"
    if held < expected:
        raise DataError(f"{source}: truncated: {declared} but file holds {held} bytes")
    if held > expected:
        holds = (
            f"{held} bytes ({held - expected} extra)" if exact else f"more than {expected + MAX_TRAILING_BYTES} bytes"
        )
        raise DataError(f"{source}: trailing garbage: {declared} but file holds {holds}")


def _read_into(stream: io.BufferedIOBase, out: np.ndarray) -> int:
    """Fill the 1-D uint8 array ``out`` from ``stream`` chunk by chunk; return the bytes received (fewer at its end)."""
    view = out.data  # memoryview(out), which numpy types as a buffer on Python >= 3.12 only
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled : filled + _DATA_CHUNK])
        if not count:
            break
        filled += count
    return filled


def _count_trailing(stream: io.BufferedIOBase) -> int:
    """Count the bytes left in ``stream``, reading no further than just past ``MAX_TRAILING_BYTES`` of them."""
    count = 0
    while count <= MAX_TRAILING_BYTES:
        chunk = stream.read(_TRAILING_CHUNK)
        if not chunk:
            break
        count += len(chunk)
    return count


def _read_idx_stream(stream: io.BufferedIOBase, source: str | Path, size: int | None) -> np.ndarray:
    """Read IDX data from ``stream`` (``size`` bytes long, None when unknown as in a gzip stream).

    The header comes first: its declared size is checked against the memory available and, when ``size``
    is known, against it, before the data is allocated and read; reading stops at most
    ``MAX_TRAILING_BYTES`` past the declared end.
    """
    header_size, shape = _read_header(stream, source)
    expected = header_size + math.prod(shape)
    check_fits_in_memory(expected, f"{source}: header (shape {shape})")
    if size is not None:
        _check_length(size, expected, shape, source)
    # An ordinary writable array that owns its memory (torch.from_numpy warns on read-only ones).
    data = np.empty(expected - header_size, dtype=np.uint8)
    filled = _read_into(stream, data)
    extra = _count_trailing(stream)
    _check_length(header_size + filled + extra, expected, shape, source, exact=extra <= MAX_TRAILING_BYTES)
    return data.reshape(shape)


def parse_idx(data: bytes, source: str | Path) -> np.ndarray:
    """Parse uncompressed IDX bytes into a writable uint8 array of the declared shape.

    Validates the magic number (two zero bytes, dtype code ``0x08``, ndim >= 1),
    that the header is complete, and that the data size equals the product of the
    declared dimensions exactly: a short payload is reported as truncated, a long
    one as trailing garbage.  ``source`` is used to name the file in errors.
    """
    return _read_idx_stream(io.BytesIO(data), source, len(data))


def _regular_file_size(handle: BinaryIO) -> int | None:
    """Size in bytes of the open file, or None when it is not a regular file (a pipe, a device)."""
    status = os.fstat(handle.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def read_idx(path: str | Path) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file and return a uint8 array of its declared shape.

    Raises :class:`DataError` naming the file when it is missing or unreadable, when
    gzip data is corrupt or a ``.gz`` file is not gzip, when the magic number or the
    dtype code (must be ``0x08``, unsigned byte) is wrong, when the header declares
    more bytes than the memory available (:func:`available_host_memory`), or when the data is
    shorter (truncated) or longer (trailing garbage) than the declared dimensions.
    Sizes in messages refer to the decompressed data.  The header is read first and
    nothing is allocated before it is checked; gzip data is decompressed incrementally
    and never beyond the declared size plus ``MAX_TRAILING_BYTES`` (a "gzip bomb" stops there).
    """
    path = Path(path)
    with reading(path, "an IDX file"), open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
        handle.seek(0)
        if not compressed:
            if path.suffix == ".gz":
                raise DataError(f"{path}: not a gzip file (missing gzip magic bytes 1f 8b)")
            return _read_idx_stream(handle, path, _regular_file_size(handle))
        try:
            with gzip.GzipFile(fileobj=handle) as stream:
                return _read_idx_stream(stream, path, None)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from None
