"""Property-based tests of the data loaders: whatever a data file holds, a loader either returns a valid array
or dataset (the one the file encodes) or raises a LatentspectraError; any other exception fails the test.

The inputs are small valid IDX and .npz files, then mutated: truncated, bytes flipped or appended, IDX header
dimensions and dtype code changed, gzip streams corrupted, npz arrays of other dtypes, shapes, counts and
values (huge labels, NaN), object arrays (which must never be unpickled) and garbled .npy headers.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import UNPICKLED, PickleTrap
from latentspectra.data import ImageDataset, load_dataset, load_idx_dir, load_npz, read_idx
from latentspectra.errors import LatentspectraError

FUZZ = settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
#: Dimension sizes worth trying in a header: empty, small, the right ones, and absurd ones.
DIM_SIZES = st.one_of(st.sampled_from([0, 1, 3, 4, 5, 6, 255, 2**16, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))


def refused_or(load: Callable, *args):
    """Run a loader; return its result, or None when it refused the input with a LatentspectraError."""
    try:
        return load(*args)
    except LatentspectraError:
        return None


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: magic 00 00 08 ndim, big-endian uint32 dims, data."""
    return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def tiny_arrays() -> dict[str, np.ndarray]:
    """6 train / 3 test uint8 images of 4x5 pixels and their labels 0..2, under the npz key names."""
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, size=(6, 4, 5), dtype=np.uint8),
        "train_labels": np.array([0, 1, 2, 0, 1, 1], dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8),
        "test_labels": np.array([2, 0, 1], dtype=np.uint8),
    }


# --------------------------------------------------------------------------- byte mutations


def _truncate(draw, blob: bytearray) -> bytearray:
    return blob[: draw(st.integers(0, max(len(blob) - 1, 0)))]


def _flip(draw, blob: bytearray) -> bytearray:
    if blob:
        blob[draw(st.integers(0, len(blob) - 1))] ^= draw(st.integers(1, 255))
    return blob


def _append(draw, blob: bytearray) -> bytearray:
    return blob + draw(st.binary(min_size=1, max_size=64))


def _set_dim(draw, blob: bytearray) -> bytearray:
    start = 4 + 4 * draw(st.integers(0, 2))
    blob[start : start + 4] = draw(DIM_SIZES).to_bytes(4, "big")
    return blob


def _set_dtype_code(draw, blob: bytearray) -> bytearray:
    blob[2:3] = bytes([draw(st.sampled_from([0x00, 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0xFF]))])
    return blob


def _set_ndim(draw, blob: bytearray) -> bytearray:
    blob[3:4] = bytes([draw(st.integers(0, 255))])
    return blob


BYTE_MUTATIONS = (_truncate, _flip, _append)
IDX_MUTATIONS = (*BYTE_MUTATIONS, _set_dim, _set_dtype_code, _set_ndim)


@st.composite
def mutated(draw, data: bytes, mutations: tuple[Callable, ...]) -> bytes:
    """``data`` after one to three mutations drawn from ``mutations``."""
    blob = bytearray(data)
    for mutate in draw(st.lists(st.sampled_from(mutations), min_size=1, max_size=3)):
        blob = mutate(draw, blob)
    return bytes(blob)


@st.composite
def idx_files(draw, array: np.ndarray) -> tuple[str, bytes]:
    """(suffix, content) of the IDX file of ``array``, mutated raw, mutated then gzipped, or gzipped then corrupted."""
    payload = idx_bytes(array)
    kind = draw(st.sampled_from(["raw", "gz", "corrupt-gz"]))
    if kind == "raw":
        return "", draw(mutated(payload, IDX_MUTATIONS))
    if kind == "gz":
        return ".gz", gzip.compress(draw(mutated(payload, IDX_MUTATIONS)), mtime=0)
    return ".gz", draw(mutated(gzip.compress(payload, mtime=0), BYTE_MUTATIONS))


# --------------------------------------------------------------------------- IDX


@FUZZ
@given(file=idx_files(tiny_arrays()["train_images"]))
def test_read_idx_returns_the_encoded_array_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, file: tuple[str, bytes]
) -> None:
    suffix, content = file
    path = tmp_path_factory.mktemp("idx") / f"images-idx3-ubyte{suffix}"
    path.write_bytes(content)
    array = refused_or(read_idx, path)
    if array is not None:  # accepted: it must be exactly what the (decompressed) file encodes
        payload = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
        assert array.dtype == np.uint8 and array.flags.writeable
        assert idx_bytes(array) == payload


@st.composite
def idx_directories(draw) -> dict[str, tuple[str, bytes]]:
    """The four IDX files of the tiny dataset, one of them mutated or replaced by another uint8 array."""
    arrays = dict(zip(IDX_STEMS, tiny_arrays().values()))
    files = {stem: (".gz", gzip.compress(idx_bytes(array), mtime=0)) for stem, array in arrays.items()}
    stem = draw(st.sampled_from(IDX_STEMS))
    if draw(st.booleans()):
        files[stem] = draw(idx_files(arrays[stem]))
    else:
        other = draw(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7)))
        files[stem] = ("", idx_bytes(other))
    return files


IDX_DIR_LOADERS = {
    "load_idx_dir": load_idx_dir,
    "idx:": lambda directory: load_dataset(f"idx:{directory}"),
    "fashion-mnist": lambda directory: load_dataset("fashion-mnist", root=directory),
}


@FUZZ
@given(files=idx_directories(), loader=st.sampled_from(sorted(IDX_DIR_LOADERS)))
@pytest.mark.slow
def test_idx_directory_loads_a_valid_dataset_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, tuple[str, bytes]], loader: str
) -> None:
    directory = tmp_path_factory.mktemp("idxdir")
    for stem, (suffix, content) in files.items():
        (directory / f"{stem}{suffix}").write_bytes(content)
    dataset = refused_or(IDX_DIR_LOADERS[loader], directory)
    if dataset is not None:
        assert isinstance(dataset, ImageDataset)
        assert len(dataset.train) > 0 and len(dataset.test) > 0 and dataset.shape[0] == 1 and min(dataset.shape) > 0
        suffix, _ = files[IDX_STEMS[0]]
        np.testing.assert_array_equal(dataset.train.images[:, 0], read_idx(directory / f"{IDX_STEMS[0]}{suffix}"))


# --------------------------------------------------------------------------- npz: bytes


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


NPZ_LOADERS = {"load_npz": load_npz, "npz:": lambda path: load_dataset(f"npz:{path}")}


def assert_holds(dataset: ImageDataset, arrays: dict[str, np.ndarray]) -> None:
    """The loaded dataset holds exactly the (uint8, 3-D) arrays it was saved from."""
    np.testing.assert_array_equal(dataset.train.images[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(dataset.test.images[:, 0], arrays["test_images"])
    np.testing.assert_array_equal(dataset.train.labels, arrays["train_labels"])
    np.testing.assert_array_equal(dataset.test.labels, arrays["test_labels"])


@FUZZ
@given(compressed=st.booleans(), data=st.data(), loader=st.sampled_from(sorted(NPZ_LOADERS)))
@pytest.mark.slow
def test_mutated_npz_bytes_load_the_saved_dataset_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, compressed: bool, data: st.DataObject, loader: str
) -> None:
    content = data.draw(mutated(npz_bytes(tiny_arrays(), compressed), BYTE_MUTATIONS))
    path = tmp_path_factory.mktemp("npz") / "tiny.npz"
    path.write_bytes(content)
    dataset = refused_or(NPZ_LOADERS[loader], path)
    if dataset is not None:
        assert_holds(dataset, tiny_arrays())


# --------------------------------------------------------------------------- npz: arrays

ODD_DTYPES = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.int16,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
        "U2",
        "S2",
        "M8[s]",
    ]
)
ODD_LABELS = st.one_of(
    st.sampled_from([-(2**63), -1, 3, 9, 65_535, 65_536, 2**40, 2**63 - 1, 2**64 - 1]), st.integers(-(2**63), 2**64 - 1)
)


def _retype(draw, array: np.ndarray) -> np.ndarray:
    return array.astype(draw(ODD_DTYPES))


def _scale(draw, array: np.ndarray) -> np.ndarray:
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    return (array / draw(st.sampled_from([255.0, 100.0, -255.0]))).astype(dtype)


def _nan(draw, array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32) / 255.0
    array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return array


def _odd_label(draw, array: np.ndarray) -> np.ndarray:
    value = draw(ODD_LABELS)
    array = array.astype(np.uint64 if value >= 2**63 else np.int64)
    array.flat[draw(st.integers(0, array.size - 1))] = value
    return array


def _reshape(draw, array: np.ndarray) -> np.ndarray:
    return draw(
        st.sampled_from(
            [
                array[None],
                array[:, None],
                array[:, None, None],
                array.reshape(-1),
                array[..., :1],
                array[..., :0],
                array.reshape(len(array), -1),
            ]
        )
    )


def _slice(draw, array: np.ndarray) -> np.ndarray:
    return array[: draw(st.integers(0, len(array)))]


def _objects(draw, array: np.ndarray) -> np.ndarray:
    trap = np.empty(array.shape, dtype=object)
    trap.fill(PickleTrap())
    return trap


def _random_array(draw, array: np.ndarray) -> np.ndarray:
    return draw(
        hnp.arrays(
            draw(ODD_DTYPES.filter(lambda d: d != "M8[s]")),
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        )
    )


ARRAY_MUTATIONS = (_retype, _scale, _nan, _odd_label, _reshape, _slice, _objects, _random_array)
CLASSES = st.sampled_from(
    [
        np.array(["a", "b", "c"]),
        np.array(["a", "b"]),
        np.array([b"a", b"\xff", b"c"]),
        np.array([], dtype="U1"),
        np.array([["a", "b", "c"]]),
        np.arange(3),
        np.array([str(i) for i in range(70_000)]),
    ]
)


@st.composite
def odd_npz_arrays(draw) -> dict[str, np.ndarray]:
    """The tiny dataset's arrays, up to three of them mutated, maybe one dropped and odd classes added, under
    one of the two key styles."""
    originals = tiny_arrays()
    arrays = dict(originals)
    for mutate, key in draw(
        st.lists(st.tuples(st.sampled_from(ARRAY_MUTATIONS), st.sampled_from(NPZ_KEYS)), max_size=3)
    ):
        arrays[key] = mutate(draw, originals[key])
    if draw(st.integers(0, 9)) == 0:
        del arrays[draw(st.sampled_from(NPZ_KEYS))]
    if draw(st.booleans()):
        arrays["classes"] = draw(CLASSES)
    if draw(st.booleans()):
        keras = dict(zip(NPZ_KEYS, ("x_train", "y_train", "x_test", "y_test")))
        arrays = {keras.get(key, key): array for key, array in arrays.items()}
    return arrays


@FUZZ
@given(arrays=odd_npz_arrays(), compressed=st.booleans(), loader=st.sampled_from(sorted(NPZ_LOADERS)))
@pytest.mark.slow
def test_odd_npz_arrays_load_a_valid_dataset_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, arrays: dict[str, np.ndarray], compressed: bool, loader: str
) -> None:
    path = tmp_path_factory.mktemp("npz") / "odd.npz"
    path.write_bytes(npz_bytes(arrays, compressed))
    dataset = refused_or(NPZ_LOADERS[loader], path)
    assert UNPICKLED == []
    if dataset is not None:
        assert isinstance(dataset, ImageDataset) and len(dataset.train) > 0 and len(dataset.test) > 0
        assert dataset.train.images.dtype == np.uint8 and min(dataset.shape) > 0
        saved = [
            arrays.get(key, arrays.get(other))
            for key, other in (("train_labels", "y_train"), ("test_labels", "y_test"))
        ]
        np.testing.assert_array_equal(dataset.train.labels, saved[0])
        np.testing.assert_array_equal(dataset.test.labels, saved[1])
        assert all(0 <= label < len(dataset.classes) for label in (*saved[0], *saved[1]))


# --------------------------------------------------------------------------- npz: .npy headers

HEADER_VALUES = {
    "descr": st.sampled_from(
        ["'|u1'", "'<i8'", "'>u8'", "'<f4'", "'|O'", "'|b1'", "'<U3'", "'garbage'", "3", "[('a', '<i4')]", "'<u1'"]
    ),
    "fortran_order": st.sampled_from(["False", "True", "'yes'"]),
    "shape": st.one_of(
        st.lists(st.sampled_from([0, 1, 3, 4, 5, 6, -1, 2**31, 2**40, 2**63]), max_size=4).map(
            lambda dims: repr(tuple(dims))
        ),
        st.sampled_from(["[6, 4, 5]", "'six'", "(6.0,)"]),
    ),
}


@st.composite
def npy_members(draw) -> bytes:
    """A .npy file with a header of odd values, version and padding, and some data bytes."""
    fields = {key: draw(values) for key, values in HEADER_VALUES.items() if draw(st.integers(0, 9))}
    header = "{" + "".join(f"'{key}': {value}, " for key, value in fields.items()) + "}"
    header += draw(st.sampled_from(["", "(", "\x00", "}" * 3]))
    text = (header + " " * ((-(len(header) + 11)) % 64) + "\n").encode("latin1")
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"]))
    length = struct.pack("<H" if version == b"\x01\x00" else "<I", len(text) + draw(st.sampled_from([0, 0, -3, 50])))
    data = draw(st.binary(max_size=200)) if draw(st.booleans()) else bytes(120)
    return b"\x93NUMPY" + version + length + text + data


@FUZZ
@given(member=npy_members(), key=st.sampled_from((*NPZ_KEYS, "classes")), loader=st.sampled_from(sorted(NPZ_LOADERS)))
@pytest.mark.slow
def test_garbled_npy_headers_are_refused_or_load(
    tmp_path_factory: pytest.TempPathFactory, member: bytes, key: str, loader: str
) -> None:
    members = {f"{name}.npy": npy_bytes(array) for name, array in tiny_arrays().items()}
    members[f"{key}.npy"] = member
    path = tmp_path_factory.mktemp("npz") / "garbled.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    dataset = refused_or(NPZ_LOADERS[loader], path)
    if dataset is not None:
        assert isinstance(dataset, ImageDataset) and len(dataset.train) > 0 and len(dataset.test) > 0
