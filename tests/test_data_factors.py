"""Ground-truth factors in any dataset: an npz's ``train_factors`` / ``test_factors`` (N, F) and
``factor_names`` load onto the splits (None where absent), are checked like labels with one line naming the
file and key, and `data info` lists them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_error_line, run_cli
from latentspectra.data import ImageDataset, Split, load_dataset, load_npz
from latentspectra.errors import DataError


def arrays(train: int = 6, test: int = 3, width: int = 2) -> dict[str, np.ndarray]:
    """A tiny canonical npz's arrays with factors: column 0 an integer grid, column 1 a real value."""
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (train, 4, 4)).astype(np.uint8),
        "train_labels": np.arange(train) % 2,
        "test_images": rng.integers(0, 256, (test, 4, 4)).astype(np.uint8),
        "test_labels": np.arange(test) % 2,
        "train_factors": np.stack([np.arange(train) % 3, rng.random(train)], axis=1)[:, :width],
        "test_factors": np.stack([np.arange(test) % 3, rng.random(test)], axis=1)[:, :width],
        "factor_names": np.array(["grid", "real"][:width]),
    }


def saved(tmp_path: Path, **contents: np.ndarray) -> Path:
    path = tmp_path / "truth.npz"
    np.savez(path, **contents)
    return path


def test_factors_load_onto_the_splits(tmp_path):
    given = arrays()
    dataset = load_npz(saved(tmp_path, **given))
    assert dataset.factor_names == ("grid", "real") and dataset.has_factors
    for split, key in ((dataset.train, "train_factors"), (dataset.test, "test_factors")):
        assert split.factors is not None and split.factors.dtype == np.float64
        np.testing.assert_array_equal(split.factors, given[key])


def test_without_factors_they_are_none(tmp_path):
    given = {k: v for k, v in arrays().items() if "factor" not in k}
    dataset = load_npz(saved(tmp_path, **given))
    assert dataset.factor_names is None and not dataset.has_factors
    assert dataset.train.factors is None and dataset.test.factors is None
    assert "factors" not in dataset.info()


def test_factor_names_default_to_column_numbers_and_integers_and_booleans_are_read(tmp_path):
    given = arrays()
    del given["factor_names"]
    given["train_factors"] = given["train_factors"][:, :1].astype(np.int16)
    given["test_factors"] = np.ones((3, 1), dtype=bool)
    dataset = load_npz(saved(tmp_path, **given))
    assert dataset.factor_names == ("0",)
    np.testing.assert_array_equal(dataset.test.factors, np.ones((3, 1)))


def test_data_info_lists_each_factor(tmp_path, capsys):
    path = saved(tmp_path, **arrays(train=80, test=40))
    code, out, _ = run_cli(capsys, "data", "info", f"npz:{path}", "--json")
    assert code == 0
    grid, real = json.loads(out)["factors"]
    assert grid == {"name": "grid", "distinct": 3, "min": 0.0, "max": 2.0, "values": [0.0, 1.0, 2.0]}
    assert real["name"] == "real" and real["distinct"] == 120 and "values" not in real  # too many to list
    assert 0 <= real["min"] < real["max"] <= 1


def without(key: str) -> dict[str, np.ndarray]:
    given = arrays()
    del given[key]
    return given


def replaced(**changes: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays(), **changes}


@pytest.mark.parametrize(
    "contents, expected",
    [
        (without("test_factors"), "holds 'train_factors' but not 'test_factors'"),
        (without("train_factors"), "holds 'test_factors' but not 'train_factors'"),
        (
            {k: v for k, v in arrays().items() if k not in ("train_factors", "test_factors")},
            "holds 'factor_names' but no train_factors / test_factors arrays",
        ),
        (replaced(train_factors=np.zeros(6)), "'train_factors': factors must be a real array (N, F) with F >= 1"),
        (replaced(test_factors=np.zeros((3, 0))), "'test_factors': factors must be a real array (N, F) with F >= 1"),
        (replaced(train_factors=np.array([["a", "b"]] * 6)), "'train_factors': factors must be a real array"),
        (replaced(test_factors=np.zeros((3, 2), dtype=complex)), "'test_factors': factors must be a real array"),
        (replaced(train_factors=np.zeros((5, 2))), "'train_images' holds 6 images but 'train_factors' holds 5 rows"),
        (replaced(test_factors=np.zeros((4, 2))), "'test_images' holds 3 images but 'test_factors' holds 4 rows"),
        (replaced(test_factors=np.full((3, 2), np.nan)), "'test_factors': factors contain NaN or infinite values"),
        (replaced(train_factors=np.full((6, 2), np.inf)), "'train_factors': factors contain NaN or infinite values"),
        (replaced(test_factors=np.zeros((3, 3))), "'test_factors' has 3 columns but 'train_factors' has 2"),
        (replaced(factor_names=np.array(["a", "b", "c"])), "'factor_names' holds 3 names but the factors have 2"),
        (replaced(factor_names=np.array(["a", "a"])), "'factor_names' must hold distinct non-empty names"),
        (replaced(factor_names=np.array(["a", ""])), "'factor_names' must hold distinct non-empty names"),
        (replaced(factor_names=np.array([1, 2])), "'factor_names' must be a 1-D array of strings"),
    ],
)
def test_bad_factors_are_one_line_naming_the_file_and_key(tmp_path, capsys, contents, expected):
    path = saved(tmp_path, **contents)
    with pytest.raises(DataError) as failure:
        load_npz(path)
    assert str(failure.value).startswith(f"{path}: ") and expected in str(failure.value)
    code, _, err = run_cli(capsys, "data", "info", f"npz:{path}")
    assert code == 2 and expected in one_error_line(err)


def test_object_factors_are_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, **replaced(train_factors=np.array([[object()]] * 6, dtype=object)))
    with pytest.raises(DataError, match="cannot read array 'train_factors'"):
        load_dataset(f"npz:{path}")


def split(count: int, factors: np.ndarray | None) -> Split:
    return Split(np.zeros((count, 1, 2, 2), np.uint8), np.zeros(count, np.int64), factors)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: split(2, np.zeros((2, 1), np.float32)), "factors must be a float64 array (N, F)"),
        (lambda: split(2, np.zeros((3, 1))), "2 images but 3 rows of factors"),
        (lambda: split(2, np.array([[np.nan], [0.0]])), "factors contain NaN"),
        (lambda: ImageDataset("d", split(2, np.zeros((2, 1))), split(1, None), ("0",)), "no factor_names"),
        (lambda: ImageDataset("d", split(2, np.zeros((2, 1))), split(1, None), ("0",), ("f",)), "test: factors have"),
        (
            lambda: ImageDataset("d", split(2, np.zeros((2, 2))), split(1, np.zeros((1, 2))), ("0",), ("f", "f")),
            "distinct",
        ),
    ],
)
def test_the_containers_check_their_factors(make, expected):
    with pytest.raises(DataError) as failure:
        make()
    assert expected in str(failure.value)
