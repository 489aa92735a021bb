"""`latentspectra evaluate`: the networks' metrics on a dataset (`evaluation.sample_metrics` and
`evaluation.encoder_metrics`, which the training records use too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..compute import Compute
from ..data import images_to_tensor, load_dataset
from ..evaluation import classifier_accuracy, encoder_metrics, sample_metrics
from ..io import versions
from ..models.files import load_model
from ..models.inference import InferenceEncoder, InferenceNetwork

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
