"""`train {classifier,gan,vae,encoder,all,autoencoder}`: train the paper's networks in order (or the
fragmentation study's autoencoder) and record the run.

The classifier comes first because the generator's sample metrics and the encoder's loss need it; the
encoder comes last because its decoder is the trained generator. `all` is the paper's three networks, the
generator made by the config's ``generator_recipe`` (the GAN of the paper, or a VAE's decoder);
the autoencoder is trained on its own (its record adds the classifier's accuracy on its reconstructions
when a trained classifier is in the same directory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compute import Compute
from ..config import GENERATOR_RECIPES, TrainConfig
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..distributed import SINGLE, World
from ..errors import DataError, LatentspectraError
from ..evaluation import classifier_accuracy, encoder_metrics, sample_metrics
from ..io import versions, write_json
from ..models.files import load_model
from ..models.inference import InferenceEncoder, InferenceNetwork
from ..models.layers import Configured
from ..training.autoencoder import AutoencoderJob
from ..training.classifier import ClassifierJob
from ..training.encoder import EncoderJob
from ..training.gan import GANJob
from ..training.loop import TrainingJob, run_training
from ..training.vae import VAEJob
from .networks import check_dataset_fits

TRAINABLE = ("classifier", *GENERATOR_RECIPES, "encoder", "autoencoder")
# The training record's quick encode-decode estimate; `latentspectra evaluate` uses the full 20 draws.
TRAINING_ENCODING_TRIALS = 5


def with_epochs(config: TrainConfig, epochs: int | None) -> TrainConfig:
    """``config`` with every network's epoch count replaced by ``epochs`` (unchanged for None)."""
    if epochs is None:
        return config
    if epochs < 1:
        raise LatentspectraError(f"--epochs must be at least 1, got {epochs}")
    return replace(
        config,
        classifier=replace(config.classifier, epochs=epochs),
        gan=replace(config.gan, epochs=epochs),
        vae=replace(config.vae, epochs=epochs),
        encoder=replace(config.encoder, epochs=epochs),
        autoencoder=replace(config.autoencoder, epochs=epochs),
    )


def with_latent_dim(config: TrainConfig, latent_dim: int | None) -> TrainConfig:
    """``config`` with the latent size of the generator (either recipe's) and of the autoencoder replaced by
    ``latent_dim`` (unchanged for None); the encoder takes the generator's.

    Raises:
        LatentspectraError: ``latent_dim`` < 1.
    """
    if latent_dim is None:
        return config
    if latent_dim < 1:
        raise LatentspectraError(f"--latent-dim must be at least 1, got {latent_dim}")
    return replace(
        config,
        gan=replace(config.gan, latent_dim=latent_dim),
        vae=replace(config.vae, latent_dim=latent_dim),
        autoencoder=replace(config.autoencoder, latent_dim=latent_dim),
    )


def with_encoder_weights(config: TrainConfig, weights: tuple[float, float, float] | None) -> TrainConfig:
    """``config`` with the encoder's loss weights (reconstruction, KL, classifier cross-entropy = the
    paper's lambda, step 3) replaced by ``weights`` (unchanged for None).

    Raises:
        LatentspectraError: a weight negative or not finite, or all three zero.
    """
    if weights is None:
        return config
    if not all(math.isfinite(weight) and weight >= 0 for weight in weights) or not any(weights):
        raise LatentspectraError(
            f"--encoder-weights must be three finite weights >= 0, not all zero "
            f"(reconstruction, KL, classifier), got {' '.join(map(str, weights))}"
        )
    reconstruction, kl, classifier = (float(weight) for weight in weights)
    return replace(
        config,
        encoder=replace(
            config.encoder, reconstruction_weight=reconstruction, kl_weight=kl, classifier_weight=classifier
        ),
    )


def with_interpolation_weight(config: TrainConfig, weight: float | None) -> TrainConfig:
    """``config`` with the autoencoder's ACAI weight lambda (training/autoencoder.py) replaced by ``weight``
    (unchanged for None; 0 is the plain autoencoder).

    Raises:
        LatentspectraError: ``weight`` negative or not finite.
    """
    if weight is None:
        return config
    if not (math.isfinite(weight) and weight >= 0):
        raise LatentspectraError(f"--interpolation-weight must be a finite weight >= 0, got {weight}")
    return replace(config, autoencoder=replace(config.autoencoder, interpolation_weight=float(weight)))


TRAINED_BY = {"generator": "gan", "classifier": "classifier"}  # the `train` command of each network another needs


def _require(out_dir: Path, name: str, needed_by: str) -> Configured:
    if not (out_dir / f"{name}.json").exists():
        raise LatentspectraError(
            f"{out_dir}: no trained {name} there, which {needed_by} needs; "
            f"train it first (latentspectra train {TRAINED_BY[name]} --out {out_dir})"
        )
    return load_model(out_dir, name, name)[0]


def _training_job(
    network: str, out_dir: Path, dataset: ImageDataset, config: TrainConfig, compute: Compute
) -> TrainingJob:
    """The job that trains ``network`` on ``dataset``; the generator and the autoencoder are scored with the classifier
    of ``out_dir`` where there is one, the encoder needs the generator and classifier there.

    Raises:
        ValueError: a network that cannot be built for the dataset's images.
        LatentspectraError: the encoder without a trained generator and classifier, or networks of another
            image shape.
    """
    seed = config.seed
    if network == "classifier":
        return ClassifierJob(dataset, config.classifier, seed, compute)
    if network in GENERATOR_RECIPES:
        evaluate = _sample_metrics(out_dir, dataset, seed, compute)
        if network == "vae":
            return VAEJob(dataset, config.vae, seed, evaluate_samples=evaluate, compute=compute)
        return GANJob(dataset, config.gan, seed, evaluate_samples=evaluate, compute=compute)
    if network == "autoencoder":
        return AutoencoderJob(
            dataset,
            config.autoencoder,
            seed,
            evaluate=_reconstruction_accuracy(out_dir, dataset, compute),
            compute=compute,
        )
    generator = _require(out_dir, "generator", "the encoder")
    classifier = _require(out_dir, "classifier", "the encoder")
    check_dataset_fits(generator.config["image_shape"], dataset, str(out_dir))
    return EncoderJob(
        dataset,
        config.encoder,
        seed,
        generator,
        classifier,
        evaluate=lambda e: encoder_metrics(
            InferenceEncoder(e, compute),
            InferenceNetwork(generator, compute),
            InferenceNetwork(classifier, compute),
            dataset,
            seed,
            trials=TRAINING_ENCODING_TRIALS,
            device=compute.device,
        ),
        compute=compute,
    )


def train_networks(
    which: str, out_dir: str | Path, config: TrainConfig, progress: bool = True, world: World = SINGLE
) -> dict[str, Any]:
    """Train ``which`` ("classifier", "gan", "vae", "encoder", "all" or "autoencoder") into ``out_dir``; returns
    the run record that is also written to ``out_dir/train-<which>.json``. As one rank of a sharded ``world``
    (DistributedDataParallel, training/sharding.py) rank 0 alone writes; after each network every rank waits
    until it is written, so that the encoder reads the trained G and C (``out_dir`` must be the same directory
    for all ranks to train the encoder: one host, or a shared file system).

    Raises:
        LatentspectraError: an unknown ``which``, or the encoder without a trained generator and classifier;
        DistributedError: the autoencoder under a sharded ``world``, or the other ranks lost.
    """
    if which not in (*TRAINABLE, "all"):
        raise LatentspectraError(f"unknown network {which!r}; choose from {[*TRAINABLE, 'all']}")
    compute = Compute.select(config.device, config.precision)
    out_dir = Path(out_dir)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dataset = load_dataset(config.dataset)
    seed = config.seed
    record: dict[str, Any] = {
        "network": which,
        "dataset": config.dataset,
        "seed": seed,
        "config": asdict(config),
        "compute": compute.record(),
        "versions": versions(),
        "world_size": world.size,
        "seconds": {},
        "metrics": {},
    }
    began = time.perf_counter()
    for network in ("classifier", config.generator_recipe, "encoder") if which == "all" else (which,):
        start = time.perf_counter()
        try:
            job = _training_job(network, out_dir, dataset, config, compute)
        except LatentspectraError:
            raise
        except ValueError as error:  # a network that cannot be built for these images
            raise DataError(f"--dataset {config.dataset}: cannot train the {network} on its images ({error})") from None
        sub_config = asdict(getattr(config, network))
        epochs = sub_config["epochs"]
        result = run_training(job, out_dir, epochs, seed, {"dataset": config.dataset, **sub_config}, progress, world)
        world.barrier(f"the end of the {network}'s training (rank 0 writing it)")
        record["seconds"][network] = time.perf_counter() - start
        record["metrics"].update(result.metrics)
    record["seconds"]["total"] = time.perf_counter() - began
    if world.is_writer:
        write_json(out_dir / f"train-{which}.json", record)
    return record


def _sample_metrics(
    out_dir: Path, dataset: ImageDataset, seed: int, compute: Compute
) -> Callable[[nn.Module], dict[str, Any]] | None:
    """A callback: a trained generator's sample metrics (`evaluation.sample_metrics`), scored by the classifier in
    ``out_dir``; None when no classifier is there."""
    if not (out_dir / "classifier.json").exists():
        return None
    scorer = InferenceNetwork(load_model(out_dir, "classifier", "classifier")[0], compute)

    def evaluate(generator: nn.Module) -> dict[str, Any]:
        return sample_metrics(InferenceNetwork(generator, compute), scorer, dataset, seed, device=compute.device)

    return evaluate


def _reconstruction_accuracy(
    out_dir: Path, dataset: ImageDataset, compute: Compute
) -> Callable[[nn.Module], dict[str, float]] | None:
    """A callback: the accuracy of the classifier in ``out_dir`` on an autoencoder's reconstructions of
    the test set, on ``compute``'s device; None when no classifier is there."""
    if not (out_dir / "classifier.json").exists():
        return None
    classifier = load_model(out_dir, "classifier", "classifier")[0].to(compute.device)
    images = images_to_tensor(dataset.test.images).to(compute.device)
    labels = torch.from_numpy(dataset.test.labels).to(compute.device)

    def evaluate(autoencoder: nn.Module) -> dict[str, float]:
        return {"reconstruction_accuracy": classifier_accuracy(lambda x: classifier(autoencoder(x)), images, labels)}

    return evaluate
