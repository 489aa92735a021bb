"""Downloading MNIST / Fashion-MNIST IDX files with content checksums.

Checksums are SHA-256 digests of the *decompressed* IDX payload, so a mirror that
recompresses the ``.gz`` files still verifies.  Each file is written to a
temporary file in the target directory and moved into place with
:func:`os.replace` only after it verifies, so an interrupted or bad download
never leaves a file under the final name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from ..errors import DataError

__all__ = ["CHECKSUMS", "DEFAULT_BASE_URLS", "download_dataset"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}

#: file name -> SHA-256 of the decompressed IDX payload, per dataset.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def _payload_sha256(path: Path, label: str) -> str:
    """SHA-256 of the gunzipped content of ``path``; DataError naming ``label`` if not valid gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{label}: downloaded file is not valid gzip data: {exc}") from None
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> bool:
    """Whether an existing file already holds the expected content."""
    try:
        return path.is_file() and _payload_sha256(path, path.name) == expected
    except DataError:
        return False


def _fetch(url: str, target: Path, expected: str) -> None:
    """Download ``url``, verify its payload checksum and atomically move it to ``target``."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DataError(f"{target}: cannot create temporary file: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DataError(f"{target.name}: download from {url} failed: {reason}") from None
        actual = _payload_sha256(tmp, target.name)
        if actual != expected:
            raise DataError(
                f"{target.name}: checksum mismatch for {url}: sha256 of decompressed data is "
                f"{actual}, expected {expected}"
            )
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise DataError(f"{target}: cannot move download into place: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def download_dataset(name: str, directory: str | Path, *, base_url: str | None = None) -> Path:
    """Download the four IDX ``.gz`` files of ``name`` ("mnist" or "fashion-mnist") into ``directory``.

    Files already present whose decompressed content matches the checksum are kept.
    Each new file is fetched with urllib from ``base_url`` (default: the dataset's
    official mirror; ``file://`` URLs work too), checked against the SHA-256 of its
    decompressed payload and only then moved into place.  Raises :class:`DataError`
    naming the file on network errors, invalid gzip data or checksum mismatch.
    Returns ``directory``, ready for ``load_dataset(name, root=directory)``.
    """
    if name not in CHECKSUMS:
        raise DataError(f"cannot download {name!r}: expected one of {', '.join(sorted(CHECKSUMS))}")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{directory}: cannot create directory: {exc.strerror or exc}") from None
    base = base_url if base_url is not None else DEFAULT_BASE_URLS[name]
    if not base.endswith("/"):
        base += "/"
    for filename, expected in CHECKSUMS[name].items():
        target = directory / filename
        if not _verified(target, expected):
            _fetch(base + filename, target, expected)
    return directory
