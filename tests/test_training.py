"""Training steps, checkpoints and resume on tiny data."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from conftest import TINY_CLASSIFIER, TINY_ENCODER, TINY_GAN, rewrite_pair
from latentspectra.compute import Compute
from latentspectra.config import AutoencoderConfig, TrainConfig, VAEConfig
from latentspectra.errors import CheckpointError, LatentspectraError
from latentspectra.experiments.train import with_encoder_weights
from latentspectra.models import Classifier, Generator
from latentspectra.models.files import load_model, save_model
from latentspectra.training.autoencoder import AutoencoderJob
from latentspectra.training.classifier import ClassifierJob
from latentspectra.training.encoder import EncoderJob, encoder_loss, gaussian_kl, gaussian_negative_log_likelihood
from latentspectra.training.gan import GANJob
from latentspectra.training.loop import epoch_generator, run_training
from latentspectra.training.tensors import ShuffledBatches
from latentspectra.training.vae import VAEJob, vae_loss

# the autoencoder with ACAI's critic: two networks and two optimizers to checkpoint
TINY_CRITIC_AUTOENCODER = AutoencoderConfig(epochs=1, batch_size=16, latent_dim=8, width=4, interpolation_weight=1.0)
TINY_VAE = VAEConfig(
    epochs=2, batch_size=16, latent_dim=8, generator_width=4, hidden=16, encoder_width=4, encoder_hidden=16
)


def _parameters(modules: dict) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach().clone()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }


def _make_jobs(dataset):
    classifier_job = ClassifierJob(dataset, TINY_CLASSIFIER, seed=0)
    gan_job = GANJob(dataset, TINY_GAN, seed=0)
    encoder_job = EncoderJob(
        dataset, TINY_ENCODER, 0, copy.deepcopy(gan_job.generator), copy.deepcopy(classifier_job.model)
    )
    return {
        "classifier": classifier_job,
        "gan": gan_job,
        "vae": VAEJob(dataset, TINY_VAE, seed=0),
        "encoder": encoder_job,
        "autoencoder": AutoencoderJob(dataset, TINY_CRITIC_AUTOENCODER, seed=0),
    }


@pytest.mark.parametrize("name", ["classifier", "gan", "vae", "encoder"])
def test_one_step_changes_weights_with_finite_loss(tiny_dataset, name):
    job = _make_jobs(tiny_dataset)[name]
    before = _parameters(job.modules)
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    losses = job.train_step(0, rng)
    assert losses and all(torch.isfinite(torch.tensor(value)) for value in losses.values())
    after = _parameters(job.modules)
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed, f"{name}: no weight changed after one step"


def test_encoder_step_leaves_generator_and_classifier_frozen(tiny_dataset):
    job = _make_jobs(tiny_dataset)["encoder"]
    frozen = {"g": job.generator, "c": job.classifier}
    before = _parameters(frozen)
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    job.train_step(0, rng)
    assert all(torch.equal(before[key], value) for key, value in _parameters(frozen).items())


def test_encoder_warm_up_fits_the_generators_latents_and_leaves_it_frozen(tiny_dataset):
    job = _make_jobs(tiny_dataset)["encoder"]
    job.config = dataclasses.replace(job.config, warm_up_steps=40, epochs=10)  # 4 batches per epoch
    z = torch.randn(256, job.encoder.latent_dim, generator=torch.Generator().manual_seed(1))

    def held_out_nll() -> float:
        with torch.no_grad():
            return gaussian_negative_log_likelihood(z, *job.encoder.eval()(job.generator(z))).mean().item()

    before, frozen = held_out_nll(), _parameters({"g": job.generator})
    job.prepare(epoch_generator(0, -1), progress=False)
    assert held_out_nll() < before
    assert all(torch.equal(frozen[key], value) for key, value in _parameters({"g": job.generator}).items())


def test_gaussian_negative_log_likelihood_is_smallest_at_the_mean():
    z = torch.randn(4, 6)
    at_mean = gaussian_negative_log_likelihood(z, z, torch.zeros(4, 6))
    assert torch.allclose(at_mean, torch.zeros(4))
    assert (gaussian_negative_log_likelihood(z, z + 0.5, torch.zeros(4, 6)) > at_mean).all()


def test_gaussian_kl_is_zero_for_standard_normal_and_positive_otherwise():
    zeros = torch.zeros(3, 5)
    assert torch.allclose(gaussian_kl(zeros, zeros), torch.zeros(3))
    assert (gaussian_kl(torch.ones(3, 5), torch.full((3, 5), -1.0)) > 0).all()


def test_encoder_loss_weighs_its_three_terms_by_the_config(tiny_dataset):
    job = _make_jobs(tiny_dataset)["encoder"]
    images, labels = job.data.train_images[:8], job.data.train_labels[:8]
    mu, logvar = job.encoder(images)
    z = torch.randn(mu.shape, generator=torch.Generator().manual_seed(2))
    weights = {"reconstruction_weight": 0.25, "kl_weight": 3.0, "classifier_weight": 7.0}
    config = dataclasses.replace(job.config, **weights)
    terms = encoder_loss(images, labels, mu, logvar, z, job.generator, job.classifier, config)
    expected = 0.25 * terms["reconstruction"] + 3.0 * terms["kl"] + 7.0 * terms["cross_entropy"]
    assert torch.allclose(terms["loss"], expected)
    assert torch.allclose(terms["kl"], gaussian_kl(mu, logvar).mean())


def test_vae_loss_is_the_negative_elbo_of_a_bernoulli_decoder_with_the_kl_weighted():
    """By hand: -sum_pixels [t log p + (1 - t) log(1 - p)] with p, t mapped from [-1, 1] to [0, 1], plus beta x KL."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 4, 4, generator=generator) * 2 - 1
    decoded = torch.rand(3, 1, 4, 4, generator=generator) * 1.8 - 0.9
    mu, logvar = torch.randn(3, 5, generator=generator), torch.randn(3, 5, generator=generator)
    p, t = (decoded + 1) / 2, (images + 1) / 2
    reconstruction = -(t * p.log() + (1 - t) * (1 - p).log()).sum((1, 2, 3)).mean()
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)).mean()
    terms = vae_loss(images, decoded, mu, logvar, kl_weight=4.0)
    assert terms["reconstruction"].item() == pytest.approx(reconstruction.item(), rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx((reconstruction + 4.0 * kl).item(), rel=1e-5)


def test_vae_saves_its_decoder_as_the_generator(tiny_dataset):
    job = _make_jobs(tiny_dataset)["vae"]
    assert list(job.finished_models()) == ["generator"]
    assert isinstance(job.finished_models()["generator"], Generator)


def test_encoder_mean_is_the_first_output_of_the_forward_pass(tiny_dataset):
    encoder = _make_jobs(tiny_dataset)["encoder"].encoder.eval()
    images = torch.rand(5, *tiny_dataset.shape) * 2 - 1
    with torch.no_grad():
        assert torch.equal(encoder.encode_mean(images), encoder(images)[0])


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = Generator(latent_dim=6, width=4).eval()
    save_model(tmp_path, "generator", model, {"seed": 3})
    loaded, record = load_model(tmp_path, "generator")
    z = torch.randn(5, 6)
    assert record["seed"] == 3 and record["kind"] == "generator"
    assert torch.equal(model(z), loaded(z))


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="classifier.json"):
        load_model(tmp_path, "classifier")
    save_model(tmp_path, "classifier", Classifier(width=4), {})
    (tmp_path / "classifier.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="classifier.safetensors"):
        load_model(tmp_path, "classifier")
    save_model(tmp_path, "classifier", Classifier(width=8), {})
    save_model(tmp_path / "other", "classifier", Classifier(width=4), {})
    (tmp_path / "other" / "classifier.safetensors").replace(tmp_path / "classifier.safetensors")
    with pytest.raises(CheckpointError, match="were not written together"):
        load_model(tmp_path, "classifier")
    rewrite_pair(tmp_path / "classifier.safetensors", lambda record: {**record, "config": {"width": 8}})
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path, "classifier")


@pytest.mark.parametrize("name", ["classifier", "gan", "vae", "encoder", "autoencoder"])
def test_resume_after_interruption_matches_uninterrupted_run(tiny_dataset, tmp_path, name):
    straight = _make_jobs(tiny_dataset)[name]
    run_training(straight, tmp_path / "straight", epochs=2, seed=5, config={}, progress=False)

    first = _make_jobs(tiny_dataset)[name]
    run_training(first, tmp_path / "resumed", epochs=1, seed=5, config={}, progress=False)
    resumed = _make_jobs(tiny_dataset)[name]  # a fresh process: new, untrained networks
    result = run_training(resumed, tmp_path / "resumed", epochs=2, seed=5, config={}, progress=False)

    assert result.resumed_from_epoch == 1
    assert [entry["epoch"] for entry in result.history] == [1, 2]
    expected, actual = _parameters(straight.modules), _parameters(resumed.modules)
    for key in expected:
        assert torch.allclose(expected[key], actual[key], atol=1e-6), key


@pytest.mark.parametrize(
    ("seed", "config", "changed"),
    [
        (6, {"lr": 0.001, "epochs": 1}, "seed 5 -> 6"),
        (5, {"lr": 0.002, "epochs": 1}, "lr 0.001 -> 0.002"),
    ],
)
def test_resume_refuses_a_state_saved_with_other_settings(tiny_dataset, tmp_path, seed, config, changed):
    run_training(
        _make_jobs(tiny_dataset)["classifier"],
        tmp_path,
        epochs=1,
        seed=5,
        config={"lr": 0.001, "epochs": 1},
        progress=False,
    )
    with pytest.raises(CheckpointError, match="classifier-state.safetensors") as error:
        run_training(
            _make_jobs(tiny_dataset)["classifier"], tmp_path, epochs=2, seed=seed, config=config, progress=False
        )
    assert changed in str(error.value)
    # more epochs with the same settings is a resume, not a change
    result = run_training(
        _make_jobs(tiny_dataset)["classifier"],
        tmp_path,
        epochs=2,
        seed=5,
        config={"lr": 0.001, "epochs": 2},
        progress=False,
    )
    assert result.resumed_from_epoch == 1


def test_resume_refuses_a_state_trained_in_another_precision(tiny_dataset, tmp_path):
    """A run interrupted in bfloat16 does not go on silently in float32 (nor is recorded as float32)."""
    bfloat16 = Compute(precision="bfloat16")
    run_training(
        ClassifierJob(tiny_dataset, TINY_CLASSIFIER, 0, bfloat16), tmp_path, epochs=1, seed=5, config={}, progress=False
    )
    with pytest.raises(CheckpointError, match="precision 'bfloat16' -> 'float32'"):
        run_training(
            ClassifierJob(tiny_dataset, TINY_CLASSIFIER, 0, Compute()),
            tmp_path,
            epochs=2,
            seed=5,
            config={},
            progress=False,
        )
    result = run_training(
        ClassifierJob(tiny_dataset, TINY_CLASSIFIER, 0, bfloat16), tmp_path, epochs=2, seed=5, config={}, progress=False
    )
    assert result.resumed_from_epoch == 1


def test_run_training_writes_weights_and_record(tiny_dataset, tmp_path):
    job = _make_jobs(tiny_dataset)["classifier"]
    run_training(job, tmp_path, epochs=1, seed=0, config={"epochs": 1}, progress=False)
    model, record = load_model(tmp_path, "classifier")
    assert record["seed"] == 0 and record["train_config"] == {"epochs": 1}
    assert set(record["versions"]) >= {"torch", "python", "latentspectra"}
    test_images = len(tiny_dataset.test)  # a share of them, as classified by the saved model
    with torch.no_grad():
        correct = (model(job.data.test_images).argmax(1) == job.data.test_labels).sum().item()
    assert record["metrics"]["classifier_accuracy"] == pytest.approx(correct / test_images)
    assert not any(path.name.endswith(".part") for path in tmp_path.rglob("*"))


def test_shuffled_batches_cover_full_batches_of_one_permutation_per_epoch():
    batches = ShuffledBatches(10, 3)
    assert len(batches) == 3  # the partial batch of the one left over is dropped
    batches.shuffle(torch.Generator().manual_seed(0))
    first = torch.cat([batches[k] for k in range(len(batches))])
    assert [len(batches[k]) for k in range(3)] == [3, 3, 3]
    assert len(set(first.tolist())) == 9 and set(first.tolist()) <= set(range(10))
    batches.shuffle(torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([batches[k] for k in range(3)]), first)  # same rng, same epoch
    batches.shuffle(torch.Generator().manual_seed(1))
    assert not torch.equal(torch.cat([batches[k] for k in range(3)]), first)


def test_shuffled_batches_have_at_least_one_batch():
    batches = ShuffledBatches(2, 5)
    assert len(batches) == 1 and sorted(batches[0].tolist()) == [0, 1]


def test_with_encoder_weights_sets_the_three_loss_weights_only():
    config = TrainConfig()
    assert with_encoder_weights(config, None) is config
    changed = with_encoder_weights(config, (1.0, 0.5, 30.0))
    assert (changed.encoder.reconstruction_weight, changed.encoder.kl_weight, changed.encoder.classifier_weight) == (
        1.0,
        0.5,
        30.0,
    )
    assert dataclasses.replace(changed, encoder=config.encoder) == config
    with pytest.raises(LatentspectraError, match="--encoder-weights"):
        with_encoder_weights(config, (1.0, float("inf"), 100.0))


def test_train_all_with_the_vae_recipe_trains_the_generator_as_a_decoder_then_the_encoder(tiny_npz, tmp_path):
    from latentspectra.experiments.train import train_networks

    config = TrainConfig(
        dataset=f"npz:{tiny_npz}",
        device="cpu",
        precision="float32",
        generator_recipe="vae",
        classifier=TINY_CLASSIFIER,
        vae=TINY_VAE,
        encoder=TINY_ENCODER,
    )
    record = train_networks("all", tmp_path, config, progress=False)
    assert list(record["seconds"]) == ["classifier", "vae", "encoder", "total"]
    assert {"classifier_fid", "sample_confidence", "encode_decode_accuracy"} <= set(record["metrics"])
    generator, generator_record = load_model(tmp_path, "generator", "generator")
    assert generator.latent_dim == TINY_VAE.latent_dim and generator_record["name"] == "vae"
    assert load_model(tmp_path, "encoder", "encoder")[0].latent_dim == TINY_VAE.latent_dim
    assert not (tmp_path / "discriminator.json").exists()


def test_epochs_and_latent_size_reach_both_generator_recipes():
    from latentspectra.experiments.train import with_epochs, with_latent_dim

    config = with_latent_dim(with_epochs(TrainConfig(), 3), 12)
    assert config.gan.epochs == config.vae.epochs == config.classifier.epochs == config.encoder.epochs == 3
    assert config.gan.latent_dim == config.vae.latent_dim == config.autoencoder.latent_dim == 12
    assert with_latent_dim(TrainConfig(), None) == TrainConfig()
