"""The autoencoder (model, training job, `train autoencoder`) and the fragmentation study end to end on the
shipped MNIST networks, with a small slice of MNIST and small counts."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from conftest import assert_traces_hardware, run_cli
from latentspectra.config import MAX_SEED, SEEDS, AutoencoderConfig, FragmentationConfig, derived_seed
from latentspectra.distributed import batched
from latentspectra.evaluation import classifier_fid, sample_quality
from latentspectra.experiments.codes import autoencoder_model
from latentspectra.experiments.fragmentation import decoded_quality, latent_paths, make_samplers
from latentspectra.models import Autoencoder, Classifier
from latentspectra.models.files import load_model, shipped_models_dir
from latentspectra.training.autoencoder import AutoencoderJob, critic_loss, mix_codes
from latentspectra.training.loop import epoch_generator

TINY_AUTOENCODER = AutoencoderConfig(epochs=1, batch_size=16, latent_dim=8, width=4)


def test_autoencoder_step_changes_weights_and_the_job_evaluates_reconstructions(tiny_dataset):
    job = AutoencoderJob(tiny_dataset, TINY_AUTOENCODER, seed=0)
    before = [p.detach().clone() for p in job.model.parameters()]
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    losses = job.train_step(0, rng)
    assert math.isfinite(losses["mse"])
    assert any(not torch.equal(a, b) for a, b in zip(before, job.model.parameters()))
    job.model.eval()
    metrics = job.evaluate()
    assert metrics["reconstruction_mse"] > 0 and math.isfinite(metrics["reconstruction_psnr"])


def test_interpolation_critic_trains_beside_the_autoencoder_and_is_checkpointed(tiny_dataset):
    config = dataclasses.replace(TINY_AUTOENCODER, interpolation_weight=1.0)
    job = AutoencoderJob(tiny_dataset, config, seed=0)
    assert set(job.modules) == set(job.optimizers) == {"autoencoder", "critic"}
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in job.modules.items()}
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    losses = job.train_step(0, rng)
    assert set(losses) == {"mse", "critic_penalty", "critic"} and all(map(math.isfinite, losses.values()))
    for name, module in job.modules.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
    assert set(job.finished_models()) == {"autoencoder"}


def test_mix_codes_mixes_each_code_with_the_mirrored_one():
    codes = torch.randn(6, 3)
    mixed, alpha = mix_codes(codes, torch.Generator().manual_seed(0))
    assert alpha.shape == (6,) and bool(((alpha >= 0) & (alpha <= 0.5)).all())
    for i in range(6):
        torch.testing.assert_close(mixed[i], alpha[i] * codes[i] + (1 - alpha[i]) * codes[5 - i])


def test_critic_loss_is_zero_only_for_a_critic_that_reads_alpha_and_calls_blends_real():
    alpha = torch.tensor([0.1, 0.3, 0.5])
    interpolants = alpha.view(3, 1, 1, 1).expand(3, 1, 4, 4)  # images whose every pixel is their alpha
    images, reconstructions = torch.full((3, 1, 4, 4), 0.2), torch.full((3, 1, 4, 4), -0.05)

    def reads_alpha(x):
        return x.mean(dim=(1, 2, 3))

    # blend 0.2: 0.2 * 0.2 + 0.8 * (-0.05) = 0, so the perfect critic says 0 to the blends
    assert critic_loss(reads_alpha, interpolants, alpha, images, reconstructions, 0.2).item() == pytest.approx(0)
    wrong = critic_loss(reads_alpha, interpolants, alpha, images, reconstructions, 0.5).item()
    assert wrong == pytest.approx(0.075**2)


def test_shipped_models_hold_a_plain_and_a_critic_trained_autoencoder():
    for name, weight in (("autoencoder", None), ("autoencoder-acai", 1.0)):
        model, record = load_model(shipped_models_dir("mnist"), name)
        assert isinstance(model, Autoencoder) and model.latent_dim == 100
        assert record["train_config"].get("interpolation_weight") == weight, name


def test_autoencoder_decode_checks_the_code_shape():
    with pytest.raises(ValueError, match=r"codes of shape \(B, 8\)"):
        Autoencoder(latent_dim=8, width=4).decode(torch.zeros(2, 9))


@pytest.mark.parametrize(
    "extra, weight, kind",
    [([], 0.0, ": plain autoencoder,"), (["--interpolation-weight", "0.5"], 0.5, "critic (lambda 0.5),")],
)
def test_train_autoencoder_cli_writes_a_loadable_model(capsys, tmp_path, tiny_npz, extra, weight, kind):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys,
        "train",
        "autoencoder",
        "--dataset",
        f"npz:{tiny_npz}",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--latent-dim",
        "12",
        "--quiet",
        *extra,
    )
    assert code == 0
    assert set(json.loads(stdout)["metrics"]) == {"reconstruction_mse", "reconstruction_psnr"}
    model, record = load_model(out, "autoencoder")
    assert model.latent_dim == 12 and record["seed"] == 0 and record["train_config"]["latent_dim"] == 12
    assert record["train_config"]["interpolation_weight"] == weight
    assert kind in autoencoder_model(out, torch.zeros(2, 1, 28, 28), batch_size=2).description
    assert not (out / "generator.json").exists()  # `train autoencoder` trains only the autoencoder


def test_decoded_quality_is_sample_quality_and_classifier_fid_in_one_pass():
    torch.manual_seed(0)
    classifier = Classifier(width=4).eval()
    decoder = Autoencoder(latent_dim=6, width=4).eval().decode
    latents, real = torch.randn(64, 6), torch.rand(80, 1, 28, 28) * 2 - 1
    config = FragmentationConfig(batch_size=16)
    got = decoded_quality(decoder, classifier, latents, batched(classifier.features, real), config)
    expected = sample_quality(decoder, classifier, latents)
    assert got["sample_label_counts"] == expected["sample_label_counts"]
    assert got["sample_confidence"] == pytest.approx(expected["sample_confidence"])
    assert got["frechet_distance"] == pytest.approx(
        classifier_fid(decoder, classifier.features, latents, real), rel=1e-6
    )


def test_paths_run_from_the_origin_to_the_centre_and_through_it():
    codes = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 7.0) + 3
    paths = latent_paths(codes, [5, 4, 3, 2], FragmentationConfig(path_steps=5, path_span=2.0))
    assert list(paths) == [
        "origin -> centre",
        "plane (5, 4), diagonal +",
        "plane (5, 4), diagonal -",
        "plane (3, 2), diagonal +",
        "plane (3, 2), diagonal -",
    ]
    centre, stds = codes.mean(0), codes.std(0)
    torch.testing.assert_close(paths["origin -> centre"][0], torch.zeros(6))
    torch.testing.assert_close(paths["origin -> centre"][-1], centre)
    minus = paths["plane (5, 4), diagonal -"]
    torch.testing.assert_close(minus[2], centre)
    step = minus[-1] - centre
    torch.testing.assert_close(step[[5, 4]], torch.stack([2 * stds[5], -2 * stds[4]]))
    torch.testing.assert_close(step[:4], torch.zeros(4), atol=1e-5, rtol=0)


def test_every_sampler_fits_and_draws_at_the_largest_seed():
    """--seed 4294967295 is taken: the per-purpose offsets wrap into every library's range (scikit-learn's
    random_state stops at 2**32 - 1), and below the limit a derived seed is the plain sum (same numbers)."""
    assert derived_seed(7, SEEDS.samplers + 2) == 7 + SEEDS.samplers + 2
    assert derived_seed(MAX_SEED, SEEDS.samplers) == SEEDS.samplers - 1
    codes = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    samplers = make_samplers(FragmentationConfig(seed=MAX_SEED, mixture_components=2))
    for name, sampler in samplers.items():
        drawn = sampler.fit(codes).sample(5)
        assert drawn.shape == (5, 3) and bool(torch.isfinite(drawn).all()), name


# --- The whole study through the command line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def study(readme_runs):
    """The README's `fragmentation --out runs/frag`, run with --samples 200 --mixture-components 4
    --mixture-codes 200 on a 300-image slice of MNIST (tests/readme.py)."""
    out = readme_runs.out("latentspectra fragmentation --out runs/frag")
    return out, json.loads((out / "fragmentation.json").read_text())


def test_study_writes_its_record_and_figures(study, readme_runs):
    out, result = study
    summary = readme_runs.run("latentspectra fragmentation --out runs/frag").stdout
    assert f"GAN G(z): Frechet distance {result['gan']['frechet_distance']:.2f}" in summary  # the plain-text output
    assert_traces_hardware(result)
    assert result["seed"] == 0 and result["config"]["samples"] == 200 and "torch" in result["versions"]
    assert result["models"]["autoencoder"]["codes"].startswith("autoencoder: plain autoencoder,")
    for model in ("autoencoder", "encoder"):
        for name in ("components", "correlation", "radii", "projections", "samplers", "paths"):
            assert (out / "figures" / model / f"{name}.png").stat().st_size > 1000, (model, name)
    assert (out / "figures" / "comparison.png").stat().st_size > 1000
    assert result["seconds"]["total"] == pytest.approx(sum(v for k, v in result["seconds"].items() if k != "total"))


def test_study_measurements_are_consistent(study):
    _, result = study
    gan = result["gan"]["frechet_distance"]
    for name, record in result["models"].items():
        assert record["points"] == 300 and record["latent_dim"] == 100
        assert record["centre_norm"] == pytest.approx(np.linalg.norm(record["component_means"]))
        assert len(record["dominant_components"]) == 6
        moments = [entry["second_moment"] for entry in record["dominant_components"]]
        assert moments == sorted(moments, reverse=True)
        assert len(record["correlation"]["strongest_pairs"]) == 10
        for shell in record["box_shells"]:
            assert shell["radius_formula"] == pytest.approx(shell["bound"] * math.sqrt(100 / 3))
            assert shell["radius_sampled_mean"] == pytest.approx(shell["radius_formula"], rel=0.02)
        at_origin = [entry["codes_in_slice_at_origin"] for entry in record["slices"]]
        assert at_origin == sorted(at_origin)  # wider slices hold more codes
        samplers = record["samplers"]
        assert set(samplers) == {
            "box b=1",
            "box b=1.5",
            "box b=2",
            "box b=5",
            "N(0, I)",
            "independent Gaussians",
            "full-covariance Gaussian",
            "Gaussian mixture",
            "codes (reconstructions)",
        }
        for metrics in samplers.values():
            for key in ("sample_confidence", "inside_bulk"):  # shares of the 200 decoded samples
                assert metrics[key] * 200 == pytest.approx(round(metrics[key] * 200)), key
            assert metrics["frechet_distance"] > 0 and sum(metrics["sample_label_counts"]) == 200
        # the full-covariance Gaussian's samples come from the codes' own Gaussian: nearly all in the bulk
        assert samplers["full-covariance Gaussian"]["inside_bulk"] > 0.9
        target = result["target"][name]
        assert (samplers["Gaussian mixture"]["components"], samplers["Gaussian mixture"]["fitted_on"]) == (4, 200)
        assert target["ratio_Gaussian mixture"] == pytest.approx(samplers["Gaussian mixture"]["frechet_distance"] / gan)
        assert target["met"] == (target["best_ratio"] <= 2)
        assert len(record["paths"]) == 5 and all(len(path["label"]) == 11 for path in record["paths"].values())


@pytest.mark.parametrize(
    "args, expected",
    [
        (["fragmentation", "--model", "gan"], "--model"),
        (["fragmentation", "--out", "{file}"], "not a directory"),
        (["fragmentation", "--out", "{empty}", "--models", "/no/such/models"], "/no/such/models"),
        (
            ["fragmentation", "--out", "{empty}", "--models", "{models}", "--inversion", "encoder"],
            "--inversion encoder",
        ),
        (["fragmentation", "--out", "{empty}", "--models", "{models}", "--model", "autoencoder"], "autoencoder.json"),
        (["fragmentation", "--out", "{empty}", "--autoencoder", "no-such-autoencoder"], "no-such-autoencoder.json"),
        (["fragmentation", "--samples", "1"], "--samples"),
        (["fragmentation", "--mixture-components", "0"], "--mixture-components"),
        (
            ["fragmentation", "--out", "{empty}", "--mixture-components", "50", "--mixture-codes", "20"],
            "--mixture-codes",
        ),
    ],
)
@pytest.mark.slow
def test_fragmentation_errors_are_one_line_with_exit_code_2(capsys, tmp_path, args, expected):
    (tmp_path / "file").write_text("x")
    models = tmp_path / "models"
    models.mkdir()
    for name in ("classifier", "generator"):  # everything but the autoencoder
        for suffix in (".json", ".safetensors"):
            (models / f"{name}{suffix}").symlink_to(shipped_models_dir("mnist") / f"{name}{suffix}")
    args = [a.format(empty=tmp_path / "empty", file=tmp_path / "file", models=models) for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err
