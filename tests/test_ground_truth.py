"""compare's ground-truth track (experiments/compare.py) and the factor regressor it reads generated images with
(methods/factor_regressor.py), on a toy whose latent coordinates are the factors: G draws each factor as the
brightness of its own band of rows, the encoder inverts it, so the coordinate axes are the factors and must score
MIG, DCI and the edit-based concentration near 1, random orthonormal directions clearly lower."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from latentspectra.config import CompareConfig, FactorRegressorConfig
from latentspectra.data import ImageDataset, Split, images_to_tensor, load_dataset
from latentspectra.disentanglement import SCORE_NAMES, GroundTruthSettings
from latentspectra.distributed import World
from latentspectra.experiments import compare
from latentspectra.experiments.compare import ground_truth_inputs, ground_truth_measures, run_compare
from latentspectra.experiments.image_latents import latents_of_images
from latentspectra.experiments.networks import load_networks
from latentspectra.methods.directions import available
from latentspectra.methods.factor_regressor import (
    FactorRegressorError,
    cached_factor_regressor,
    fit_factor_regressor,
    regressor_path,
)
from latentspectra.methods.morphometry import MORPHO_MEASURES
from latentspectra.models.spec import LatentNetworks
from latentspectra.report.compare_figures import rescoring_figure
from latentspectra.threads import single_thread
from test_compare import TINY_PARAMS

SIDE, FACTORS = 16, 3  # 16 x 16 grey images; factor f is the brightness of rows 5f + 1 .. 5f + 3
AMPLITUDES = (0.30, 0.35, 0.40)  # tanh(a_f z_f) in factor f's band (unequal: SeFa's eigenvalues are distinct)
VALUES = np.linspace(-1.5, 1.5, 6)  # each factor's grid
QUICK_REGRESSOR = FactorRegressorConfig(images=1200, steps=300, batch_size=64, width=8, test_images=300)
GROUND_TRUTH_KEYS = {*SCORE_NAMES, "edit_concentration", "edit_target_change"}


@pytest.fixture(autouse=True)
def _one_thread():
    """The toy's networks are many small operations: on a shared 2-core CPU two threads wait on each other."""
    with single_thread():
        yield


def band_weight() -> torch.Tensor:
    """(H W, F): a_f on the pixels of factor f's band, 0 elsewhere."""
    weight = torch.zeros(SIDE, SIDE, FACTORS)
    for factor, amplitude in enumerate(AMPLITUDES):
        weight[5 * factor + 1 : 5 * factor + 4, :, factor] = amplitude
    return weight.view(SIDE * SIDE, FACTORS)


class BandGenerator(nn.Module):
    """G(z) = tanh(W z) as (N, 1, 16, 16) images: coordinate f of z sets the brightness of band f alone."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(FACTORS, SIDE * SIDE, bias=False)
        with torch.no_grad():
            self.project.weight.copy_(band_weight())
        self.latent_dim = FACTORS

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.project(z.to(self.project.weight.dtype))).view(-1, 1, SIDE, SIDE)


class BandEncoder(nn.Module):
    """G's inverse: per band, the mean of atanh(x) over its pixels divided by its amplitude."""

    def __init__(self) -> None:
        super().__init__()
        weight = band_weight()
        self.register_buffer("reader", weight / weight.square().sum(0))
        self.latent_dim = FACTORS

    def encode_mean(self, images: torch.Tensor) -> torch.Tensor:
        return torch.atanh(images.flatten(1).clamp(-0.999, 0.999)) @ self.reader.to(images.dtype)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means = self.encode_mean(images)
        return means, torch.zeros_like(means)


class BandClassifier(nn.Module):
    """Two labels: whether band 0 is brighter than mid-grey (factor 0 above 0)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        brightness = images[:, 0, 1:4].mean((1, 2))
        return torch.stack([-8 * brightness, 8 * brightness], 1)


def band_networks() -> LatentNetworks:
    return LatentNetworks(
        FACTORS, (1, SIDE, SIDE), ("dark", "bright"), BandGenerator(), BandClassifier(), BandEncoder()
    )


def band_dataset(train: int = 1200, test: int = 600, seed: int = 0) -> ImageDataset:
    """Images G makes of factors drawn from the grid (uint8), labelled as the classifier labels them."""
    rng = np.random.default_rng(seed)
    generator = BandGenerator()

    def split(count: int) -> Split:
        factors = VALUES[rng.integers(0, len(VALUES), size=(count, FACTORS))]
        with torch.no_grad():
            images = generator(torch.from_numpy(factors).float())
        pixels = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        return Split(pixels, (factors[:, 0] > 0).astype(np.int64), factors)

    names = tuple(f"band_{index}" for index in range(FACTORS))
    return ImageDataset("bands", split(train), split(test), ("dark", "bright"), names)


def random_orthonormal(seed: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(FACTORS, FACTORS, generator=torch.Generator().manual_seed(seed))).Q.T


def test_the_factor_axes_score_near_one_and_random_directions_clearly_lower():
    dataset, networks = band_dataset(), load_networks(band_networks())
    config = CompareConfig(ground_truth_images=300, factor_regressor=QUICK_REGRESSOR)
    latents = latents_of_images(images_to_tensor(dataset.test.images[:400]), networks, "encoder").latents
    found = ground_truth_inputs(dataset, config, latents)
    assert found is not None and found.factors.shape == (300, FACTORS)
    truth = replace(found, settings=GroundTruthSettings(dci_trees=20))  # compare's 100 trees take seconds here
    assert torch.allclose(truth.latents.double(), torch.from_numpy(truth.factors), atol=0.05)  # latents are factors
    test = truth.latents[:60]
    axes = ground_truth_measures(truth, networks, torch.eye(FACTORS), test, 0.5)
    assert set(axes) == {*GROUND_TRUTH_KEYS, "edit_changes"}
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert axes[key] > 0.9, (key, axes[key])
    assert axes["edit_concentration"] > 0.9, axes["edit_changes"]
    changes = np.array(axes["edit_changes"])  # each axis moves its own factor most
    assert changes.shape == (FACTORS, FACTORS) and list(changes.argmax(1)) == list(range(FACTORS))
    rotated = ground_truth_measures(truth, networks, random_orthonormal(0), test, 0.5)
    for key in ("mig", "dci_disentanglement", "dci_completeness", "edit_concentration"):  # 0.12-0.50 here
        assert rotated[key] < axes[key] - 0.3, (key, rotated[key], axes[key])
    assert rotated["sap"] < axes["sap"]  # a linear SVM on one code tells few of a factor's 6 values: SAP is small


@pytest.mark.slow
def test_the_factor_regressor_is_deterministic_cached_and_states_its_accuracy(tmp_path):
    dataset = band_dataset()
    first = cached_factor_regressor(dataset, QUICK_REGRESSOR, tmp_path)
    path = regressor_path(dataset, QUICK_REGRESSOR, tmp_path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    accuracy = first.record["test_accuracy"]
    assert accuracy["images"] == 300 and set(accuracy["factors"]) == {"band_0", "band_1", "band_2"}
    for found in accuracy["factors"].values():  # the bands are easy to read
        assert found["r2"] > 0.9 and found["accuracy"] > 0.8, found
    again = fit_factor_regressor(dataset, QUICK_REGRESSOR)  # the same network bit for bit, without the cache
    assert all(torch.equal(a, b) for a, b in zip(first.tensors().values(), again.tensors().values(), strict=True))
    loaded = cached_factor_regressor(dataset, QUICK_REGRESSOR, tmp_path)
    assert loaded.record == first.record  # read back, not trained again
    images = torch.rand(5, 1, SIDE, SIDE) * 2 - 1
    assert torch.equal(loaded.read(images), first.read(images))
    other = band_dataset(seed=1)  # another dataset, another key
    assert regressor_path(other, QUICK_REGRESSOR, tmp_path) != path
    path.write_bytes(path.read_bytes()[:-7] + b"damaged")
    with pytest.raises(FactorRegressorError, match=str(path)):
        cached_factor_regressor(dataset, QUICK_REGRESSOR, tmp_path)
    with pytest.raises(FactorRegressorError, match="has no factors"):
        fit_factor_regressor(load_dataset("mnist"), QUICK_REGRESSOR)


def _tiny_compare(methods: tuple[str, ...], dataset: str, **sizes) -> CompareConfig:
    tiny = CompareConfig(
        dataset=dataset,
        methods=methods,
        directions=3,
        shift=0.5,
        latents=20,
        edit_latents=40,
        steps=3,
        method_params=TINY_PARAMS,
        measure_samples=100,
        seeds=2,
        reconstructor_steps=2,
        reconstructor_validation=8,
        factor_regressor=QUICK_REGRESSOR,
        dci_trees=10,  # compare's 100 trees take seconds
        device="cpu",
        precision="float32",
    )
    return replace(tiny, **sizes)


def _write_npz(path, dataset: ImageDataset, factors: bool) -> str:
    arrays = {
        "train_images": dataset.train.images,
        "train_labels": dataset.train.labels,
        "test_images": dataset.test.images,
        "test_labels": dataset.test.labels,
    }
    if factors:
        arrays.update(
            train_factors=dataset.train.factors, test_factors=dataset.test.factors, factor_names=dataset.factor_names
        )
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.slow
def test_compare_writes_the_ground_truth_track_for_every_method(tmp_path):
    dataset = _write_npz(tmp_path / "bands.npz", band_dataset(), factors=True)
    config = _tiny_compare((), dataset, ground_truth_images=300)
    record = run_compare(  # no figures but the one below (every method's: the README's compare)
        tmp_path / "run", replace(config, networks=band_networks(), figures=False), progress=False
    )
    assert json.loads((tmp_path / "run" / "compare.json").read_text())["ground_truth"] == record["ground_truth"]
    top = record["ground_truth"]
    assert top["factors"] == ["band_0", "band_1", "band_2"] and top["images"] == 300
    assert top["edits"] == {"latents": 20, "shift": 0.5} and top["latents"] == "encoder"
    assert "gradient-boosted trees" in top["definitions"]["dci_disentanglement"]
    assert top["settings"]["dci_trees"] == 10 and top["factor_regressor"]["test_accuracy"]["images"] == 300
    for name in available():
        method = record["methods"][name]
        assert "skipped" not in method, (name, method.get("skipped"))
        truth = method["ground_truth"]
        for key in GROUND_TRUTH_KEYS:  # an interval over the two seeds, as every other number of compare
            assert len(truth[key]["values"]) == 2 and truth[key]["mean"] == pytest.approx(np.mean(truth[key]["values"]))
        assert np.array(truth["edit_changes"]).shape == (method["directions"], FACTORS)
        assert set(truth["against_baseline"].values()) <= {"above", "below", "within"}
        for key in compare.POOLED:
            found = method[key]  # the seeds' values, their mean, and the 95% interval about it
            assert len(found["values"]) == 2 and found["mean"] == pytest.approx(np.mean(found["values"])), (name, key)
            assert found["ci95"][0] <= found["mean"] <= found["ci95"][1], (name, key)
        assert 0 <= method["stability"]["mean"] <= 1 + 1e-9 and len(method["stability"]["values"]) == 1
    assert record["methods"]["axes"]["stability"]["mean"] == pytest.approx(1.0)  # the same axes for every seed
    assert record["methods"]["lsd"]["stability"]["mean"] < 1  # each seed draws its own latent sets
    assert len(record["methods"]["learned"]["fit_record_by_seed"]) == 2
    for edit in record["label_edits"]["approaches"].values():
        assert all(len(edit[key]["values"]) == 2 for key in compare.EDIT_POOLED)
    for key, found in top["leaders"].items():
        assert sorted(found["best"] + found["behind"]) == sorted(available()), key
    axes, random = record["methods"]["axes"]["ground_truth"], record["methods"]["random"]["ground_truth"]
    assert axes["mig"]["mean"] > 0.9 and axes["against_baseline"]["mig"] == "above" and random["mig"]["mean"] < 0.6
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Ground truth" in report and "edit concentration" in report and "| axes |" in report
    page = (tmp_path / "run" / "report.html").read_text()  # asked for no figures: none drawn, none embedded
    assert "data:image/png;base64," not in page and not (tmp_path / "run" / "figures").exists()
    # the re-scoring figure of a method with a ground-truth track has a third panel: the factors' change along its edits
    tracked = record["methods"]["axes"]
    untracked = {key: value for key, value in tracked.items() if key != "ground_truth"}
    widths = {}
    for name, method in (("with", tracked), ("without", untracked)):
        path = rescoring_figure(
            method, record["labels"], MORPHO_MEASURES, tmp_path / f"{name}.png", "axes", top["factors"]
        )
        with Image.open(path) as image:
            widths[name] = image.width
    assert widths["with"] > 1.3 * widths["without"], widths


@pytest.mark.slow
def test_a_dataset_without_factors_gets_no_ground_truth(tmp_path):
    dataset = _write_npz(tmp_path / "bands.npz", band_dataset(train=200, test=60), factors=False)
    config = _tiny_compare(("axes", "random"), dataset, seeds=1, figures=False)
    record = run_compare(tmp_path / "run", replace(config, networks=band_networks()), progress=False)
    assert "ground_truth" not in record and all("ground_truth" not in method for method in record["methods"].values())
    assert "factor_regressor" not in record["seconds"] and "ground_truth" not in record["seconds"]
    assert "Ground truth" not in (tmp_path / "run" / "report.md").read_text()


def test_ground_truth_images_below_two_are_refused():
    with pytest.raises(compare.MethodError, match="ground_truth_images expected an integer >= 2"):
        compare.check_compare(CompareConfig(ground_truth_images=1), 10)


def test_the_other_ranks_of_a_sharded_run_read_the_writers_regressor(monkeypatch):
    dataset, config = band_dataset(), CompareConfig(factor_regressor=QUICK_REGRESSOR)
    written = compare.factor_regressor_of(dataset, config)  # rank 0 (one process): trained and cached

    @dataclass(frozen=True)
    class SecondRank(World):
        def share(self, value, what="a value"):
            assert value is None  # rank 1 offers nothing and gets rank 0's
            return written.tensors(), written.record

    def refused(*args, **kwargs):
        raise AssertionError("only the writing rank reads or trains the regressor")

    monkeypatch.setattr(compare, "cached_factor_regressor", refused)
    got = compare.factor_regressor_of(dataset, config, SecondRank(rank=1, size=2))
    images = torch.rand(6, 1, SIDE, SIDE) * 2 - 1
    assert got.record == written.record and torch.equal(got.read(images), written.read(images))


@pytest.mark.slow
def test_networks_without_an_encoder_score_the_latents_of_the_descent(tmp_path):
    """The ground-truth images become latents as the other test latents do (--inversion): without an encoder, by
    gradient descent from the prior, recorded."""
    dataset = _write_npz(tmp_path / "bands.npz", band_dataset(train=200, test=60), factors=True)
    config = _tiny_compare(
        ("axes", "random"),
        dataset,
        seeds=1,
        latents=8,
        edit_latents=8,
        ground_truth_images=30,
        inversion_steps=5,
        figures=False,
    )
    record = run_compare(
        tmp_path / "run", replace(config, networks=replace(band_networks(), encoder=None)), progress=False
    )
    assert record["ground_truth"]["latents"] == "optimize" and record["ground_truth"]["images"] == 30
    assert record["inversion"]["inversion"] == "optimize"
    assert all(0 <= record["methods"][name]["ground_truth"]["mig"]["mean"] <= 1 for name in ("axes", "random"))
