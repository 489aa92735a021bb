"""Reading and validating files in the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the array data in C order.  Only the
unsigned-byte dtype code (``0x08``) is accepted, which is what image and label
files use.  Files may be gzip-compressed (detected from the content, not only
from the ``.gz`` suffix).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["read_idx", "parse_idx"]

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


def _read_payload(path: Path) -> bytes:
    """Return the bytes of ``path``, gunzipped when the content is gzip-compressed."""
    with reading(path, "an IDX file"):
        raw = path.read_bytes()

    if raw[:2] != _GZIP_MAGIC:
        if path.suffix == ".gz":
            raise DataError(f"{path}: not a gzip file (missing gzip magic bytes 1f 8b)")
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: corrupt gzip data: {exc}") from None


def parse_idx(data: bytes, source: str | Path) -> np.ndarray:
    """Parse uncompressed IDX bytes into a writable uint8 array of the declared shape.

    Validates the magic number (two zero bytes, dtype code ``0x08``, ndim >= 1),
    that the header is complete, and that the data size equals the product of the
    declared dimensions exactly: a short payload is reported as truncated, a long
    one as trailing garbage.  ``source`` is used to name the file in errors.
    """
    if len(data) < 4:
        raise DataError(f"{source}: truncated: {len(data)} bytes, too short for an IDX header")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{source}: bad magic number {data[:4].hex(' ')}: an IDX file starts with 00 00"
        )
    if code != _UBYTE:
        kind = _DTYPE_NAMES.get(code, "unknown")
        raise DataError(
            f"{source}: unsupported IDX dtype code 0x{code:02x} ({kind}); "
            "only 0x08 (unsigned byte) is supported"
        )
    if ndim == 0:
        raise DataError(f"{source}: bad magic number {data[:4].hex(' ')}: declares 0 dimensions")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated: header declares {ndim} dimensions ({header_size} header bytes) "
            f"but file holds {len(data)} bytes"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + math.prod(shape)
    if len(data) < expected:
        raise DataError(
            f"{source}: truncated: header declares shape {shape} ({expected} bytes) "
            f"but file holds {len(data)} bytes"
        )
    if len(data) > expected:
        raise DataError(
            f"{source}: trailing garbage: header declares shape {shape} ({expected} bytes) "
            f"but file holds {len(data)} bytes ({len(data) - expected} extra)"
        )
    # Copy so callers get an ordinary writable array (torch.from_numpy warns on read-only ones).
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file and return a uint8 array of its declared shape.

    Raises :class:`DataError` naming the file when it is missing or unreadable, when
    gzip data is corrupt or a ``.gz`` file is not gzip, when the magic number or the
    dtype code (must be ``0x08``, unsigned byte) is wrong, or when the data is
    shorter (truncated) or longer (trailing garbage) than the declared dimensions.
    Sizes in messages refer to the decompressed data.
    """
    path = Path(path)
    data = _read_payload(path)
    return parse_idx(data, path)
