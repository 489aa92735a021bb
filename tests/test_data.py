"""Tests for latentspectra.data: IDX parsing, npz loading, named datasets and downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import UNPICKLED, PickleTrap
from latentspectra.compute import available_memory
from latentspectra.data import (
    FASHION_MNIST_CLASSES,
    ImageDataset,
    Split,
    available_datasets,
    download_dataset,
    images_to_tensor,
    load_dataset,
    load_idx_dir,
    load_npz,
    read_idx,
)
from latentspectra.data import datasets as datasets_module
from latentspectra.data import download as download_module
from latentspectra.data import idx as idx_module
from latentspectra.errors import DataError

BUNDLED_MNIST = Path(datasets_module.__file__).parent / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08) -> bytes:
    """Encode a uint8 array as IDX: magic 00 00 code ndim, big-endian uint32 dims, data."""
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """6 train / 3 test images of 4x5 pixels (non-square to catch H/W swaps), labels 0..2."""
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, size=(6, 4, 5), dtype=np.uint8),
        TRAIN_LABELS: np.array([0, 1, 2, 0, 1, 1], dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8),
        TEST_LABELS: np.array([2, 0, 1], dtype=np.uint8),
    }


def write_idx_dir(directory: Path, gz: bool = True, **overrides: bytes) -> dict[str, np.ndarray]:
    """Write the four canonical files; ``overrides`` maps a stem (with - as _) to raw IDX bytes."""
    arrays = tiny_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        data = overrides.get(stem.replace("-", "_"), idx_bytes(array))
        write_idx(directory / (stem + (".gz" if gz else "")), data)
    return arrays


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / f"x-idx3-ubyte{suffix}", idx_bytes(array)))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_read_idx_truncated(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((10, 4, 5), dtype=np.uint8))
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", data[:-7])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: truncated: .*\(10, 4, 5\)"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels-idx1-ubyte", bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: truncated"):
        read_idx(path)


def test_read_idx_trailing_garbage(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros(5, dtype=np.uint8)) + b"junk"
    path = write_idx(tmp_path / "labels-idx1-ubyte.gz", data)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte\.gz: trailing garbage.*4 extra"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    data = b"\x01\x02" + idx_bytes(np.zeros(5, dtype=np.uint8))[2:]
    path = write_idx(tmp_path / "labels-idx1-ubyte", data)
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: bad magic number 01 02 08 01"):
        read_idx(path)


def test_read_idx_wrong_dtype_code(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images.gz", idx_bytes(np.zeros((2, 2), dtype=np.uint8), dtype_code=0x0D))
    with pytest.raises(DataError, match=r"images\.gz: unsupported IDX dtype code 0x0d \(float32\)"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing-here\.gz: file not found"):
        read_idx(tmp_path / "nothing-here.gz")


def _truncated_gzip(data: bytes) -> bytes:
    return gzip.compress(data)[:-20]


def _bad_crc_gzip(data: bytes) -> bytes:
    blob = bytearray(gzip.compress(data))
    blob[-8] ^= 0xFF  # CRC32 in the gzip trailer
    return bytes(blob)


@pytest.mark.parametrize(
    "corrupt",
    [_truncated_gzip, _bad_crc_gzip, lambda data: b"\x1f\x8b" + b"\x00" * 30, lambda data: data],
    ids=["truncated", "bad-crc", "bad-header", "not-gzip"],
)
def test_read_idx_corrupt_gzip(tmp_path: Path, corrupt) -> None:
    data = idx_bytes(np.arange(200, dtype=np.uint8))
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(corrupt(data))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: (corrupt gzip|not a gzip)"):
        read_idx(path)


ABSURD_SHAPE = (2**32 - 1, 2**32 - 1)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_refuses_a_header_declaring_more_than_memory(tmp_path: Path, suffix: str) -> None:
    header = bytes([0, 0, 8, 2]) + b"".join(struct.pack(">I", d) for d in ABSURD_SHAPE)
    path = write_idx(tmp_path / f"huge-idx2-ubyte{suffix}", header + bytes(16))
    declared = 12 + math.prod(ABSURD_SHAPE)
    with pytest.raises(
        DataError,
        match=rf"huge-idx2-ubyte{re.escape(suffix)}: header \(shape \(4294967295, "
        rf"4294967295\)\) declares {declared} bytes, more than the \d+ bytes "
        r"of memory available",
    ):
        read_idx(path)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_compares_the_declared_size_to_available_memory(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", idx_bytes(np.zeros((6, 4, 5), dtype=np.uint8)))
    monkeypatch.setattr(idx_module, "available_host_memory", lambda: 135)
    with pytest.raises(DataError, match=r"declares 136 bytes, more than the 135 bytes of memory available"):
        read_idx(path)
    monkeypatch.setattr(idx_module, "available_host_memory", lambda: None)  # unknown: no cap
    assert read_idx(path).shape == (6, 4, 5)


def test_available_memory_is_a_positive_byte_count() -> None:
    available = available_memory()
    assert available is None or (isinstance(available, int) and available > 0)
    if Path("/proc/meminfo").is_file():
        assert available is not None and available > 2**20


def _gzip_stream(*chunks: bytes, repeat: int = 1) -> bytes:
    """gzip of the concatenated chunks, the last one repeated ``repeat`` times, compressed piece by piece."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(chunk) for chunk in chunks[:-1]]
    out += [compressor.compress(chunks[-1]) for _ in range(repeat)]
    return b"".join(out) + compressor.flush()


def test_read_idx_stops_decompressing_a_gzip_bomb(tmp_path: Path) -> None:
    data = idx_bytes(np.arange(10, dtype=np.uint8))
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(_gzip_stream(data, bytes(2**20), repeat=64))  # 64 MiB of zeros past the declared 18 bytes
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError,
            match=r"bomb-idx1-ubyte\.gz: trailing garbage: header declares shape \(10,\) "
            r"\(18 bytes\) but file holds more than \d+ bytes",
        ):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_read_idx_raw_trailing_garbage_is_refused_before_reading(tmp_path: Path) -> None:
    data = idx_bytes(np.arange(10, dtype=np.uint8))
    path = write_idx(tmp_path / "labels-idx1-ubyte", data + bytes(3 * 2**20))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: trailing garbage: .* \(3145728 extra\)"):
        read_idx(path)


# --------------------------------------------------------------------------- load_idx_dir


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_idx_dir_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_dir(tmp_path / "tiny", gz=gz)
    ds = load_idx_dir(tmp_path / "tiny")
    assert ds.name == "tiny"
    assert ds.shape == (1, 4, 5)
    assert ds.classes == ("0", "1", "2")
    assert ds.train.images.dtype == np.uint8 and ds.train.images.shape == (6, 1, 4, 5)
    assert ds.train.labels.dtype == np.int64 and len(ds.train) == 6 and len(ds.test) == 3
    np.testing.assert_array_equal(ds.train.images[:, 0], arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(ds.test.labels, arrays[TEST_LABELS])
    info = ds.info()
    assert json.loads(json.dumps(info)) == info
    assert info == {
        "name": "tiny",
        "train": 6,
        "test": 3,
        "shape": [1, 4, 5],
        "classes": ["0", "1", "2"],
        "num_classes": 3,
        "train_counts": [2, 3, 1],
        "test_counts": [1, 1, 1],
    }
    assert load_dataset(f"idx:{tmp_path / 'tiny'}").info() == info


def test_load_idx_dir_count_mismatch(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, t10k_labels_idx1_ubyte=idx_bytes(np.array([0, 1], dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: holds 2 labels but t10k-images"):
        load_idx_dir(tmp_path)


def test_load_idx_dir_label_out_of_range(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: label 2 out of range \[0, 2\)"):
        load_idx_dir(tmp_path, classes=("a", "b"))


def test_load_idx_dir_missing_file(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: file not found"):
        load_idx_dir(tmp_path)
    with pytest.raises(DataError, match=r"nowhere: dataset directory not found"):
        load_idx_dir(tmp_path / "nowhere")


def test_load_idx_dir_wrong_dimensions(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, train_images_idx3_ubyte=idx_bytes(np.zeros((6, 20), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: expected 3-D images"):
        load_idx_dir(tmp_path)


def test_load_idx_dir_image_size_mismatch(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, t10k_images_idx3_ubyte=idx_bytes(np.zeros((3, 5, 4), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: images are \(5, 4\)"):
        load_idx_dir(tmp_path)


def test_load_idx_dir_truncated_file_names_it(tmp_path: Path) -> None:
    good = idx_bytes(tiny_arrays()[TEST_LABELS])
    write_idx_dir(tmp_path, t10k_labels_idx1_ubyte=good[:-1])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated: .*\(3,\) \(11 bytes\).* 10 bytes"):
        load_idx_dir(tmp_path)


@pytest.mark.parametrize(
    "stems, words",
    [((TRAIN_IMAGES, TRAIN_LABELS), "training"), ((TEST_IMAGES, TEST_LABELS), "test")],
    ids=["train", "test"],
)
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_idx_dir_refuses_an_empty_split(tmp_path: Path, stems: tuple[str, str], words: str, gz: bool) -> None:
    images, labels = (stem.replace("-", "_") for stem in stems)
    empty = {images: idx_bytes(np.zeros((0, 4, 5), dtype=np.uint8)), labels: idx_bytes(np.zeros(0, dtype=np.uint8))}
    write_idx_dir(tmp_path / "tiny", gz=gz, **empty)
    stem = stems[0]
    message = rf"{stem}{'.gz' if gz else ''}: holds no {words} images, expected at least one"
    with pytest.raises(DataError, match=message):
        load_idx_dir(tmp_path / "tiny")
    with pytest.raises(DataError, match=message):
        load_dataset(f"idx:{tmp_path / 'tiny'}")


def test_load_idx_dir_refuses_images_without_pixels(tmp_path: Path) -> None:
    write_idx_dir(
        tmp_path,
        train_images_idx3_ubyte=idx_bytes(np.zeros((6, 0, 5), dtype=np.uint8)),
        t10k_images_idx3_ubyte=idx_bytes(np.zeros((3, 0, 5), dtype=np.uint8)),
    )
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: images of shape \(0, 5\) hold no pixels"):
        load_idx_dir(tmp_path)


# --------------------------------------------------------------------------- npz


def _tiny_npz_arrays(keras: bool) -> dict[str, np.ndarray]:
    a = tiny_arrays()
    names = (
        ("x_train", "y_train", "x_test", "y_test")
        if keras
        else ("train_images", "train_labels", "test_images", "test_labels")
    )
    return dict(zip(names, (a[TRAIN_IMAGES], a[TRAIN_LABELS].astype(np.int64), a[TEST_IMAGES], a[TEST_LABELS])))


@pytest.mark.parametrize("keras", [False, True], ids=["canonical", "keras"])
def test_load_npz_key_styles(tmp_path: Path, keras: bool) -> None:
    arrays = _tiny_npz_arrays(keras)
    ds = load_npz(save_npz(tmp_path / "tiny.npz", **arrays))
    assert ds.name == "tiny" and ds.shape == (1, 4, 5) and ds.classes == ("0", "1", "2")
    np.testing.assert_array_equal(ds.test.images[:, 0], tiny_arrays()[TEST_IMAGES])
    assert ds.train.labels.dtype == np.int64
    assert load_dataset(f"npz:{tmp_path / 'tiny.npz'}").info() == ds.info()


def test_load_npz_float_images_channels_and_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = rng.random((4, 3, 2, 2)).astype(np.float32)
    train[0, 0, 0, 0], train[0, 0, 0, 1] = 0.0, 1.0
    path = save_npz(
        tmp_path / "color.npz",
        train_images=train,
        train_labels=np.array([0, 1, 1, 0]),
        test_images=np.zeros((1, 3, 2, 2)),
        test_labels=np.array([1]),
        classes=np.array(["cat", "dog"]),
    )
    ds = load_npz(path)
    assert ds.shape == (3, 2, 2) and ds.classes == ("cat", "dog")
    assert ds.train.images.dtype == np.uint8
    assert ds.train.images[0, 0, 0, 0] == 0 and ds.train.images[0, 0, 0, 1] == 255
    np.testing.assert_array_equal(ds.train.images, np.rint(train * 255).astype(np.uint8))
    assert ds.info()["train_counts"] == [2, 2]


def test_load_npz_float_out_of_range(tmp_path: Path) -> None:
    arrays = _tiny_npz_arrays(keras=True)
    arrays["x_train"] = arrays["x_train"].astype(np.float32)  # 0..255, not 0..1
    with pytest.raises(DataError, match=r"bad\.npz: 'x_train': float images must lie in \[0, 1\]"):
        load_npz(save_npz(tmp_path / "bad.npz", **arrays))


def test_load_npz_missing_key(tmp_path: Path) -> None:
    arrays = _tiny_npz_arrays(keras=True)
    del arrays["y_test"]
    with pytest.raises(DataError, match=r"partial\.npz: missing key\(s\) y_test;"):
        load_npz(save_npz(tmp_path / "partial.npz", **arrays))


def test_load_npz_label_out_of_range(tmp_path: Path) -> None:
    arrays = _tiny_npz_arrays(keras=False)
    path = save_npz(tmp_path / "labels.npz", classes=np.array(["a", "b"]), **arrays)
    with pytest.raises(DataError, match=r"labels\.npz: 'train_labels': label 2 out of range"):
        load_npz(path)


@pytest.mark.parametrize("keys, words", [(("x_train", "y_train"), "training"), (("x_test", "y_test"), "test")])
def test_load_npz_refuses_an_empty_split(tmp_path: Path, keys: tuple[str, str], words: str) -> None:
    arrays = _tiny_npz_arrays(keras=True)
    arrays[keys[0]] = arrays[keys[0]][:0]
    arrays[keys[1]] = arrays[keys[1]][:0]
    path = save_npz(tmp_path / "empty.npz", **arrays)
    message = rf"empty\.npz: '{keys[0]}': holds no {words} images, expected at least one"
    with pytest.raises(DataError, match=message):
        load_npz(path)
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize("largest", [2**40, 65_536, 2**63 - 1])
def test_load_npz_refuses_too_many_unnamed_classes(tmp_path: Path, largest: int) -> None:
    arrays = _tiny_npz_arrays(keras=False)
    arrays["test_labels"] = np.array([2, 0, largest], dtype=np.int64)
    path = save_npz(tmp_path / "many.npz", **arrays)
    with pytest.raises(
        DataError,
        match=rf"many\.npz: 'test_labels': largest label {largest} exceeds 65535, "
        r"expected labels 0\.\.K-1 with K <= 65536 .*'classes' array",
    ):
        load_npz(path)


def test_load_npz_accepts_the_most_unnamed_classes(tmp_path: Path) -> None:
    arrays = _tiny_npz_arrays(keras=False)
    arrays["test_labels"] = np.array([2, 0, datasets_module.MAX_CLASSES - 1], dtype=np.int64)
    ds = load_npz(save_npz(tmp_path / "many.npz", **arrays))
    assert len(ds.classes) == datasets_module.MAX_CLASSES == 65_536


@pytest.mark.parametrize(
    "labels, classes, message",
    [
        (np.array([0, 1, 2**64 - 1], dtype=np.uint64), "abc", r"label 18446744073709551615 out of range \[0, 3\)"),
        (np.array([0, 1, 2**63], dtype=np.uint64), None, r"largest label 9223372036854775808 exceeds 65535"),
        (np.array([0, -5, 1], dtype=np.int64), "abc", r"label -5 out of range \[0, 3\)"),
        (np.array([0, 1, -3], dtype=np.int8), None, r"label -3 out of range \[0, 3\)"),
        (np.array([0, 1, 2**40], dtype=np.int64), "abc", r"label 1099511627776 out of range \[0, 3\)"),
    ],
    ids=["uint64-max", "uint64-unnamed", "negative", "negative-unnamed", "huge-named"],
)
def test_load_npz_labels_report_their_real_value(
    tmp_path: Path, labels: np.ndarray, classes: str | None, message: str
) -> None:
    arrays = _tiny_npz_arrays(keras=True)
    arrays["y_test"] = labels
    extra = {} if classes is None else {"classes": np.array(list(classes))}
    path = save_npz(tmp_path / "real.npz", **arrays, **extra)
    with pytest.raises(DataError, match=rf"real\.npz: 'y_test': {message}"):
        load_npz(path)


def _npy_member(header: str, data: bytes = b"") -> bytes:
    """A version 1.0 .npy file with the given header dict literal (padded as numpy pads it)."""
    text = header + " " * ((-(len(header) + 11)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def _npz_with_member(path: Path, key: str, member: bytes) -> Path:
    """Write the tiny Keras-style archive with the member ``key``.npy replaced by raw ``member`` bytes."""
    arrays = _tiny_npz_arrays(keras=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", member if name == key else buffer.getvalue())
    return path


@pytest.mark.parametrize("shape", [(2**42,), (2**40, 2**40, 5)], ids=["4TiB", "overflows-int64"])
def test_load_npz_refuses_a_member_declaring_more_than_memory(tmp_path: Path, shape: tuple[int, ...]) -> None:
    member = _npy_member(f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}", bytes(64))
    path = _npz_with_member(tmp_path / "absurd.npz", "x_train", member)
    with pytest.raises(
        DataError,
        match=rf"absurd\.npz: 'x_train' \(uint8{re.escape(str(shape))}\) declares "
        rf"{math.prod(shape)} bytes, more than the \d+ bytes of memory available",
    ):
        load_npz(path)


@pytest.mark.parametrize(
    "member",
    [
        b"not an npy array",
        _npy_member("{'descr': '|u1', 'fortran_order': False, 'shape': (6, 4, 5), }")[:-3],
        _npy_member("{'descr': '|u1', 'fortran_order': False, 'shape': (6, 4, 5), }", bytes(7)),
        _npy_member("{}("),
        _npy_member("{'descr': '|u1', 'fortran_order': False, 'shape': (0, 9223372036854775808), }"),
        _npy_member("{'descr': '|u1', 'fortran_order': False, 'shape': (6, -4, 5), }", bytes(120)),
        _npy_member("{'descr': '|u1', 'fortran_order': False, 'shape': (6, 4, 5), }").replace(b"\x01", b"\x03", 1),
    ],
    ids=[
        "not-npy",
        "truncated-header",
        "truncated-data",
        "unbalanced-header",
        "dimension-2**63",
        "negative-dimension",
        "version-3",
    ],
)
def test_load_npz_refuses_a_garbled_member(tmp_path: Path, member: bytes) -> None:
    path = _npz_with_member(tmp_path / "garbled.npz", "x_train", member)
    with pytest.raises(DataError, match=r"garbled\.npz: cannot read array 'x_train': "):
        load_npz(path)


def _patch_central_directory(content: bytes, offset: int, value: int) -> bytes:
    """``content`` (a zip) with the 2-byte field at ``offset`` of its first central directory entry set to ``value``."""
    start = content.index(b"PK\x01\x02") + offset
    return content[:start] + struct.pack("<H", value) + content[start + 2 :]


@pytest.mark.parametrize(
    "offset, value, why",
    [
        (8, 0x0001, "encrypted"),
        (8, 0x0020, "patched data"),
        (10, 9, "compression method"),
        (10, 12, "Invalid data stream"),
        (10, 14, ""),
    ],
    ids=["encrypted", "patched", "deflate64", "bzip2", "lzma"],
)
def test_load_npz_refuses_unsupported_zip_features(tmp_path: Path, offset: int, value: int, why: str) -> None:
    # 1000 images: a member big enough that zipfile's LZMA reader gets to parse (garbage) filter properties.
    path = save_npz(
        tmp_path / "odd.npz",
        train_images=np.zeros((1000, 4, 5), dtype=np.uint8),
        train_labels=np.zeros(1000, dtype=np.int64),
        test_images=np.zeros((1, 4, 5), dtype=np.uint8),
        test_labels=np.zeros(1, dtype=np.int64),
    )
    path.write_bytes(_patch_central_directory(path.read_bytes(), offset, value))
    with pytest.raises(DataError, match=rf"odd\.npz: cannot read array 'train_images': .*{why}"):
        load_npz(path)


@pytest.mark.parametrize("key", ["x_train", "classes"])
def test_load_npz_object_array_is_not_unpickled(tmp_path: Path, key: str) -> None:
    arrays = _tiny_npz_arrays(keras=True)
    trap = np.empty(2, dtype=object)
    trap[0], trap[1] = PickleTrap(), PickleTrap()
    arrays[key] = trap
    path = save_npz(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DataError, match=rf"evil\.npz: cannot read array '{key}'"):
        load_npz(path)
    assert UNPICKLED == []


@pytest.mark.parametrize("content", [b"not an archive at all", b"PK\x03\x04 broken zip"], ids=["garbage", "broken-zip"])
def test_load_npz_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"broken\.npz: "):
        load_npz(path)


def test_load_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.npz: file not found"):
        load_npz(tmp_path / "absent.npz")


# --------------------------------------------------------------------------- specs, containers


def test_unknown_spec_lists_allowed_forms() -> None:
    assert available_datasets() == ["fashion-mnist", "mnist", "sprites"]
    with pytest.raises(DataError, match=r"unknown dataset 'cifar': .*fashion-mnist, mnist, sprites, 'idx:DIR' or 'npz"):
        load_dataset("cifar")
    with pytest.raises(DataError, match=r"missing path after 'npz:'"):
        load_dataset("npz:")


def test_fashion_mnist_resolution_via_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_dir(tmp_path / "fm", gz=False)
    monkeypatch.setenv("LATENTSPECTRA_FASHION_MNIST", str(tmp_path / "fm"))
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion-mnist" and ds.classes == FASHION_MNIST_CLASSES
    assert ds.info()["train_counts"] == [2, 3, 1, 0, 0, 0, 0, 0, 0, 0]
    monkeypatch.setenv("LATENTSPECTRA_FASHION_MNIST", str(tmp_path / "absent"))
    with pytest.raises(DataError, match=r"absent: Fashion-MNIST directory not found; .*LATENTSPECTRA_FASHION_MNIST"):
        load_dataset("fashion-mnist")


def test_split_and_dataset_invariants() -> None:
    images = np.zeros((2, 1, 3, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="labels must be an int64"):
        Split(images, np.zeros(2, dtype=np.int32))
    with pytest.raises(DataError, match="2 images but 3 labels"):
        Split(images, np.zeros(3, dtype=np.int64))
    split = Split(images, np.array([0, 1]))
    with pytest.raises(DataError, match="label 1 out of range"):
        ImageDataset("x", split, split, ("only",))


def test_images_to_tensor() -> None:
    images = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    images.setflags(write=False)
    tensor = images_to_tensor(images)
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 1, 1, 3)
    torch.testing.assert_close(tensor, torch.tensor([[[[-1.0, 127 / 127.5 - 1, 1.0]]]]))
    with pytest.raises(TypeError):
        images_to_tensor(images.astype(np.float32))


# --------------------------------------------------------------------------- real datasets


def test_bundled_mnist() -> None:
    ds = load_dataset("mnist")
    info = ds.info()
    assert info["name"] == "mnist"
    assert info["train"] == 60000 and info["test"] == 10000
    assert info["shape"] == [1, 28, 28]
    assert info["num_classes"] == 10 and info["classes"] == [str(i) for i in range(10)]
    assert sum(info["train_counts"]) == 60000 and sum(info["test_counts"]) == 10000
    assert info["train_counts"][1] == 6742
    assert (BUNDLED_MNIST / "LICENSE.md").is_file()


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENTSPECTRA_FASHION_MNIST", raising=False)
    info = load_dataset("fashion-mnist").info()
    assert info["train"] == 60000 and info["test"] == 10000 and info["shape"] == [1, 28, 28]
    assert info["classes"][0] == "T-shirt/top" and info["classes"][9] == "Ankle boot"
    assert info["train_counts"] == [6000] * 10 and info["test_counts"] == [1000] * 10


# --------------------------------------------------------------------------- download


def test_download_bundled_mnist_via_file_url(tmp_path: Path) -> None:
    target = download_dataset("mnist", tmp_path / "dl", base_url=BUNDLED_MNIST.as_uri())
    assert target == tmp_path / "dl"
    for name in download_module.CHECKSUMS["mnist"]:
        assert (target / name).read_bytes() == (BUNDLED_MNIST / name).read_bytes()
    assert sorted(p.name for p in target.iterdir()) == sorted(download_module.CHECKSUMS["mnist"])
    # Verified files are kept: a second call needs no network (the base URL is unreachable).
    download_dataset("mnist", target, base_url=(tmp_path / "nowhere").as_uri())


def test_download_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "mirror"
    write_idx_dir(source)
    table = {}
    for path in sorted(source.iterdir()):
        table[path.name] = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    table["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    monkeypatch.setitem(download_module.CHECKSUMS, "tiny", table)
    target = tmp_path / "dl"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch"):
        download_dataset("tiny", target, base_url=source.as_uri())
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(target.glob("*.part"))
    assert (target / "t10k-images-idx3-ubyte.gz").is_file()  # files verified before it were kept


def test_download_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match=r"cannot download 'cifar'"):
        download_dataset("cifar", tmp_path)
    with pytest.raises(DataError, match=r"-idx\d-ubyte\.gz: download from file:.* failed"):
        download_dataset("mnist", tmp_path / "dl", base_url=(tmp_path / "empty").as_uri())
    # A mirror serving something that is not gzip.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in download_module.CHECKSUMS["mnist"]:
        (mirror / name).write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"-idx\d-ubyte\.gz: downloaded file is not valid gzip"):
        download_dataset("mnist", tmp_path / "dl", base_url=mirror.as_uri())
    assert not list((tmp_path / "dl").iterdir())
