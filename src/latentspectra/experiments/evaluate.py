"""The issue's model metrics on a dataset: `latentspectra evaluate` and the records of `train`.

Seeds per purpose (`config.SEEDS`): the latents for sample metrics come from ``seed + SEEDS.samples``,
the stochastic encodings from ``seed + SEEDS.encodings``, so each metric is reproducible on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..compute import Compute
from ..config import SEEDS
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..evaluation import (classifier_accuracy, classifier_fid, encode_decode_accuracy, sample_quality,
                          standard_normal_latents)
from ..io import versions
from ..models.files import load_model
from ..models.inference import InferenceEncoder, InferenceNetwork

SAMPLE_COUNT = 10_000  # the 10,000 generated and 10,000 test images
ENCODING_TRIALS = 20  # the 20 stochastic encodings of the test set


def sample_metrics(generator: torch.nn.Module, classifier: torch.nn.Module, dataset: ImageDataset,
                   seed: int, count: int = SAMPLE_COUNT, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Confidence, label entropy and classifier-feature Frechet distance of ``count`` samples
    (at most as many as the test split has images, which they are compared with); the latents are drawn
    on ``device``, the networks'."""
    count = min(count, len(dataset.test))
    latents = standard_normal_latents(count, generator.config["latent_dim"], seed + SEEDS.samples, device)
    metrics = sample_quality(generator, classifier, latents)
    real = images_to_tensor(dataset.test.images[:count]).to(device)
    metrics["classifier_fid"] = classifier_fid(generator, classifier.features, latents, real)
    return metrics


def encoder_metrics(encoder: torch.nn.Module, generator: torch.nn.Module, classifier: torch.nn.Module,
                    dataset: ImageDataset, seed: int, trials: int = ENCODING_TRIALS,
                    device: torch.device | str = "cpu") -> dict[str, Any]:
    """Encode -> decode -> classify accuracy on the test set over ``trials`` stochastic encodings, drawn on
    ``device`` (the networks')."""
    result = encode_decode_accuracy(encoder.sample, generator, classifier,
                                    images_to_tensor(dataset.test.images).to(device),
                                    torch.from_numpy(dataset.test.labels), trials, seed + SEEDS.encodings, device)
    return {"encode_decode_accuracy": result["mean"], "encode_decode_accuracy_std": result["std"],
            "encode_decode_trials": result["trials"]}


def evaluate_models(models_dir: str | Path, dataset_name: str = "mnist", seed: int = 0,
                    compute: Compute | None = None) -> dict[str, Any]:
    """Every metric of the foundation issue for the networks in ``models_dir``, run as inference copies on
    ``compute``'s device (default: the CPU in float32): G and C on latents in its precision, C on the test
    images and the encoder in float32."""
    compute = compute or Compute()
    device = compute.device
    dataset = load_dataset(dataset_name)
    generator = InferenceNetwork(load_model(models_dir, "generator")[0], compute)
    trained_classifier = load_model(models_dir, "classifier")[0]
    classifier = InferenceNetwork(trained_classifier, compute)
    exact_classifier = InferenceNetwork(trained_classifier, compute, full_precision=True)
    encoder = InferenceEncoder(load_model(models_dir, "encoder")[0], compute)
    test_images = images_to_tensor(dataset.test.images).to(device)
    test_labels = torch.from_numpy(dataset.test.labels).to(device)
    metrics: dict[str, Any] = {
        "models": str(models_dir),
        "dataset": dataset_name,
        "seed": seed,
        "classifier_accuracy": classifier_accuracy(exact_classifier, test_images, test_labels),
    }
    metrics.update(sample_metrics(generator, classifier, dataset, seed, device=device))
    metrics.update(encoder_metrics(encoder, generator, classifier, dataset, seed, device=device))
    metrics["compute"] = compute.record()
    metrics["versions"] = versions()
    return metrics
