"""`--inversion` on every command that turns real images into latents (reproduce, compare, fragmentation --model
encoder, explore), on the tiny networks of tests/sharded_networks.py (M = 12, 4 labels, 4 x 4 images): without an
encoder (a factory and an exported manifest) each command inverts and records it; `--inversion encoder` without
one is one line with exit 2 before anything is written; with an encoder the default is the encoder's means, the
numbers of `--inversion encoder`. And the descent's parts: an image's latent does not depend on which other images
are inverted with it, and the per-image results survive the table a sharded run gathers."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import sharded_networks
from conftest import one_error_line, run_cli
from latentspectra.config import ExploreConfig, InversionSettings
from latentspectra.explore import open_session
from latentspectra.latent.inversion import Inversion, InversionError, invert
from latentspectra.threads import single_thread

FACTORY, WITH_ENCODER = "sharded_networks:no_encoder", "sharded_networks:build"
QUICK = ("--inversion-steps", "5", "--device", "cpu", "--precision", "float32", "--quiet")
# the tiny studies: a basis of V = 5, compare's cheap methods, fragmentation's encoder model on 60 codes
ARGUMENTS = {
    "reproduce": ("--per-set", "5", "--trials", "2"),
    "compare": (
        *("--methods", "lsd,sfvq,interfacegan", "--seeds", "1", "--directions", "3", "--latents", "30"),
        *("--edit-latents", "40", "--reconstructor-steps", "1", "--reconstructor-validation", "64"),
        *("--measure-samples", "100"),
        *("--param", "interfacegan.n_samples=400", "--param", "lsd.per_set=2"),
    ),
    "fragmentation": (
        *("--model", "encoder", "--codes", "60", "--samples", "100", "--mixture-components", "2"),
        *("--mixture-codes", "60"),
    ),
}
RECORDS = {"reproduce": "metrics.json", "compare": "compare.json", "fragmentation": "fragmentation.json"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks are many small operations: on a shared 2-core CPU two threads wait on each other."""
    with single_thread():
        yield


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> str:
    """A dataset of the tiny networks' images: 200 training and 60 test images."""
    path = tmp_path_factory.mktemp("rows") / "rows.npz"
    sharded_networks.write_dataset(path, train=200, test=60)
    return f"npz:{path}"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> str:
    """A manifest directory naming the tiny generator and classifier, exported with torch.export (no encoder)."""
    root = tmp_path_factory.mktemp("manifest")
    generator, classifier, _ = sharded_networks.networks()
    batch = torch.export.Dim("batch", min=1)
    for name, module, example in (
        ("generator", generator, torch.zeros(2, sharded_networks.LATENT)),
        ("classifier", classifier, torch.zeros(2, 1, sharded_networks.SIDE, sharded_networks.SIDE)),
    ):
        program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(root / f"{name}.pt2"))
    (root / "networks.json").write_text(json.dumps({"generator": "generator.pt2", "classifier": "classifier.pt2"}))
    return str(root)


def _run(capsys, command: str, out: Path, networks: str, dataset: str, *extra: str) -> tuple[int, dict, str]:
    """``command`` with its tiny arguments into ``out``: (exit code, its record or {}, stderr)."""
    code, _, err = run_cli(
        capsys,
        command,
        *ARGUMENTS[command],
        "--networks",
        networks,
        "--dataset",
        dataset,
        "--out",
        str(out),
        *QUICK,
        *extra,
    )
    record = out / RECORDS[command]
    return code, json.loads(record.read_text()) if record.is_file() else {}, err


def _descent_record(record: dict) -> None:
    """An inversion's record: optimize asked by auto, its settings and a finite summary of every image."""
    assert record["inversion"] == "optimize" and record["requested"] == "auto"
    assert record["settings"]["steps"] == 5 and record["features"] in ("logits", "penultimate layer")
    summary = record["optimisation"]
    assert summary["start"] == "prior" and summary["finite"] == 1.0 and math.isfinite(summary["pixel_mse"])


# --- the descent's parts ------------------------------------------------------------------------------------


def _tiny_images(count: int) -> tuple[torch.nn.Module, torch.Tensor]:
    generator, _, _ = sharded_networks.networks()
    with torch.no_grad():
        made = generator(torch.randn(count, sharded_networks.LATENT, generator=torch.Generator().manual_seed(3)))
    return generator, (made + 0.05 * torch.randn(made.shape, generator=torch.Generator().manual_seed(4))).clamp(-1, 1)


def test_an_images_latent_does_not_depend_on_the_other_images_inverted_with_it():
    """Rows 3-6 inverted alone with their indices find the latents of the whole set's rows 3-6 (the draws of each
    image are keyed by its index); without the indices they are drawn as rows 0-3 and differ."""
    generator, images = _tiny_images(10)
    settings = InversionSettings(steps=30, restarts=3)
    whole = invert(generator, images, sharded_networks.LATENT, settings=settings, seed=2, batch_size=4)
    part = invert(generator, images[3:7], sharded_networks.LATENT, settings=settings, seed=2, indices=range(3, 7))
    assert torch.allclose(part.latents, whole.latents[3:7], atol=1e-5)
    assert torch.equal(part.steps, whole.steps[3:7]) and torch.equal(part.best_start, whole.best_start[3:7])
    unkeyed = invert(generator, images[3:7], sharded_networks.LATENT, settings=settings, seed=2)
    assert not torch.allclose(unkeyed.latents, whole.latents[3:7], atol=1e-3)


def test_the_table_a_sharded_run_gathers_holds_every_per_image_result_exactly():
    generator, images = _tiny_images(6)
    for features in (None, torch.nn.Flatten()):
        found = invert(generator, images, sharded_networks.LATENT, features=features, seed=0)
        back = Inversion.from_table(found.table(), found.start, found.settings, features is not None)
        for name in ("latents", "loss", "pixel_mse", "reached", "finite", "steps", "stopped_early", "best_start"):
            value, again = getattr(found, name), getattr(back, name)
            assert again.dtype == value.dtype and torch.equal(again, value), name
        assert (back.feature_distance is None) == (features is None)
        if features is not None:
            assert torch.equal(back.feature_distance, found.feature_distance)


@pytest.mark.parametrize("indices", [[0, 1], [0, 1, 2, -1], ["a", "b", "c", "d"]])
def test_indices_that_are_not_one_whole_number_per_image_are_one_line(indices):
    generator, images = _tiny_images(4)
    with pytest.raises(InversionError, match="invert: indices must be 4 whole numbers >= 0, one per image"):
        invert(generator, images, sharded_networks.LATENT, indices=indices)


# --- the commands without an encoder ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("networks", ["factory", "manifest"])
def test_reproduce_inverts_the_test_images_without_an_encoder(tmp_path, capsys, rows, manifest, networks):
    """Every set sampled (no encoder), the test images inverted once: the classification is one trial, and the
    denoising and rotation ran on inverted latents. Asked for no figures: the numbers are the point here (the
    README's reproduce and test_own_networks draw reproduce's figures)."""
    spec = FACTORY if networks == "factory" else manifest
    code, metrics, err = _run(capsys, "reproduce", tmp_path / "out", spec, rows, "--no-figures")
    assert code == 0, err
    _descent_record(metrics["inversion"])
    assert metrics["inversion"]["optimisation"]["images"] == 60
    assert set(metrics["basis"]["sources"]) == {"sample"}
    assert len(metrics["lsd_top1_accuracy"]["trials"]) == 1 and len(metrics["encode_decode_accuracy"]["trials"]) == 1
    assert metrics["encode_decode_accuracy"]["mean"] > 0.5  # G(inverted latent) mostly keeps the image's label
    assert all(math.isfinite(value) for values in metrics["denoising"]["psnr"].values() for value in values)
    assert metrics["rotation"]["images"] == 60


@pytest.mark.slow
def test_compare_edits_inverted_test_images_without_an_encoder(tmp_path, capsys, rows):
    """The edited and rescored latents are the test images inverted; the training codes (SFVQ, class means) are
    prior draws, labelled by C(G(z))."""
    code, record, err = _run(capsys, "compare", tmp_path / "out", FACTORY, rows, "--no-figures")
    assert code == 0, err
    _descent_record(record["inversion"])
    assert record["inversion"]["optimisation"]["images"] == 40 and record["train_codes"] == "prior draws"
    assert record["train_latents"] == 200 and record["test_latents"] == 30
    assert "class_means" in record["label_edits"]["approaches"] and "skipped" not in record["methods"]["sfvq"]


@pytest.mark.slow
def test_fragmentation_studies_the_inverted_codes_without_an_encoder(tmp_path, capsys, rows):
    code, record, err = _run(capsys, "fragmentation", tmp_path / "out", FACTORY, rows, "--no-figures")
    assert code == 0, err
    model = record["models"]["encoder"]
    _descent_record(model["inversion"])
    assert model["points"] == 60 and model["inversion"]["optimisation"]["images"] == 60
    assert model["codes"].startswith("GAN inversion (optimize)")


def test_explore_inverts_test_images_and_uploads_without_an_encoder(tmp_path, rows):
    """The page starts (its basis sampled), a test image's latent is its inversion, and the methods that fit on
    codes get prior draws (SFVQ) and inverted test latents (REDs)."""
    config = ExploreConfig(dataset=rows, per_set=5, inversion_steps=5, directions=3, device="cpu", precision="float32")
    session = open_session(replace(config, networks=FACTORY), cache_root=tmp_path / "cache")
    try:
        assert session.info()["inversion"] == {"inversion": "optimize", "requested": "auto"}
        found = session.encode(session.test_image(2))
        _descent_record(found.inversion)
        assert found.latent.shape == (sharded_networks.LATENT,)
        assert torch.equal(session.encode(session.test_image(2)).latent, found.latent)  # deterministic
        for name in ("sfvq", "reds"):
            session.methods.request_fit(name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            session.methods.status(name).state == "fitting" for name in ("sfvq", "reds")
        ):
            time.sleep(0.1)
        assert [session.methods.status(name).state for name in ("sfvq", "reds")] == ["ready", "ready"]
    finally:
        session.methods.close()


@pytest.mark.parametrize("command", ["reproduce", "compare", "fragmentation", "explore"])
@pytest.mark.parametrize("asked", ["encoder", "hybrid"])
def test_an_encoder_asked_of_networks_without_one_is_one_line_with_exit_2(tmp_path, capsys, rows, command, asked):
    out = tmp_path / "out"
    if command == "explore":
        arguments = ["explore", "--check", "--port", "0", "--cache", str(tmp_path / "cache")]
    else:
        arguments = [command, *ARGUMENTS[command], "--out", str(out)]
    code, _, err = run_cli(capsys, *arguments, "--networks", FACTORY, "--dataset", rows, "--inversion", asked, *QUICK)
    assert code == 2 and f"--inversion {asked} needs an encoder, and the networks of" in one_error_line(err)
    assert not out.exists() and not (tmp_path / "cache").exists()


# --- the commands with an encoder --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", ["reproduce", "compare", "fragmentation"])
def test_with_an_encoder_the_default_is_the_encoders_means(tmp_path, capsys, rows, command):
    """auto is the encoder for the commands that turn many images into latents: the record of `--inversion
    encoder` number for number; the hybrid asked for records its descent from the encoder's means. fragmentation's
    default run draws its figures, and its numbers are still the same; the other runs are asked for none (the
    README's reproduce and compare, which draw theirs, are computed again without: test_reproduce, test_compare)."""
    drawn = command == "fragmentation"
    runs = {
        asked: _run(
            capsys,
            command,
            tmp_path / asked,
            WITH_ENCODER,
            rows,
            *(("--inversion", asked) if asked else ()),
            *(() if drawn and not asked else ("--no-figures",)),
        )
        for asked in ("", "encoder", "hybrid")
    }
    assert all(code == 0 for code, _, _ in runs.values()), runs
    assert bool(list((tmp_path / "figures").rglob("*.png"))) == drawn
    assert not [path for asked in ("encoder", "hybrid") for path in (tmp_path / asked).rglob("*.png")]
    records = {asked: _comparable(record, command) for asked, (_, record, _) in runs.items()}
    default, explicit, hybrid = records[""], records["encoder"], records["hybrid"]
    assert default.pop("inversion") == {"inversion": "encoder", "requested": "auto"}
    assert explicit.pop("inversion") == {"inversion": "encoder", "requested": "encoder"}
    assert default == explicit
    inverted = hybrid.pop("inversion")
    assert inverted["inversion"] == "hybrid" and inverted["optimisation"]["start"] == "encoder"
    assert hybrid != default


def _comparable(record: dict, command: str) -> dict:
    """A record less its timings, paths, config and versions, its inversion record at the top."""
    record = _untimed({key: value for key, value in record.items() if key not in ("figures", "config", "versions")})
    if command == "fragmentation":
        record["inversion"] = record["models"]["encoder"].pop("inversion")
    return record


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: _untimed(item)
            for key, item in value.items()
            if "seconds" not in key and key not in ("samples_per_second", "basis_samples_per_second", "compute")
        }
    return [_untimed(item) for item in value] if isinstance(value, list) else value


def test_explore_inverts_with_an_encoder_by_default(tmp_path, rows):
    """One image per request: auto is the hybrid, started from the encoder's mean and moved from it."""
    config = ExploreConfig(dataset=rows, per_set=5, inversion_steps=5, directions=3, device="cpu", precision="float32")
    session = open_session(replace(config, networks=WITH_ENCODER), cache_root=tmp_path / "cache")
    try:
        found = session.encode(session.test_image(0))
        assert found.inversion["inversion"] == "hybrid" and found.inversion["requested"] == "auto"
        encoded = open_session(
            replace(config, inversion="encoder", networks=WITH_ENCODER), cache_root=tmp_path / "cache"
        )
        try:
            mean = encoded.encode(encoded.test_image(0))
        finally:
            encoded.methods.close()
        assert mean.inversion == {"inversion": "encoder", "requested": "encoder"}
        assert found.inversion["optimisation"]["start"] == "encoder"
        assert not np.allclose(found.latent.numpy(), mean.latent.numpy())
    finally:
        session.methods.close()
