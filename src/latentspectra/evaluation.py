"""Metrics of the trained networks (issue targets): accuracy, sample confidence and label entropy,
classifier-feature Frechet distance, and encode -> decode -> classify accuracy; `sample_metrics` and
`encoder_metrics` measure them on a dataset with seeds per purpose (``seed + SEEDS.samples`` for the
latents, ``seed + SEEDS.encodings`` for the stochastic encodings), as `evaluate` and the training records do.

Every function takes plain tensors and callables, so it works with any generator, encoder and
classifier; images are (N, C, H, W) in the generator's pixel range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import torch

from .config import INFERENCE_BATCH_SIZE, SEEDS
from .data import ImageDataset, images_to_tensor
from .threads import single_blas_thread

Network = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
def batched(function: Network, inputs: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> torch.Tensor:
    """``function`` applied to ``inputs`` in batches, without gradients, concatenated."""
    return torch.cat([function(chunk) for chunk in inputs.split(batch_size)])


def classifier_accuracy(classifier: Network, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose argmax logit equals ``labels``."""
    predictions = batched(classifier, images).argmax(1)
    return (predictions == labels).float().mean().item()


def standard_normal_latents(count: int, latent_dim: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``count`` latent vectors z ~ N(0, I) drawn from their own seeded stream on ``device``."""
    rng = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(count, latent_dim, generator=rng, device=rng.device)


def label_entropy(labels: torch.Tensor, num_classes: int) -> float:
    """Entropy (nats) of the histogram of ``labels``; ln(num_classes) when every class is equally frequent."""
    frequencies = torch.bincount(labels, minlength=num_classes).double() / len(labels)
    frequencies = frequencies[frequencies > 0]
    return float(-(frequencies * frequencies.log()).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def sample_quality(generator: Network, classifier: Network, latents: torch.Tensor,
                   confidence: float = 0.9) -> dict[str, float | list[int]]:
    """Classify G(z) for each latent: the fraction classified with probability > ``confidence``, the
    entropy of the predicted-label histogram, and that histogram."""
    probabilities = batched(lambda z: classifier(generator(z)).softmax(1), latents)
    top, labels = probabilities.max(1)
    num_classes = probabilities.shape[1]
    entropy = label_entropy(labels, num_classes)
    return {
        "sample_confidence": (top > confidence).float().mean().item(),
        "sample_label_entropy": entropy,
        "sample_label_entropy_ratio": entropy / math.log(num_classes),
        "sample_label_counts": torch.bincount(labels, minlength=num_classes).tolist(),
    }


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), computed in float64."""
    a = features_a.double().cpu().numpy()
    b = features_b.double().cpu().numpy()
    mean_a, mean_b = a.mean(0), b.mean(0)
    # Tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix:
    # stable where sqrtm of the non-symmetric product warns on near-singular covariances.
    with single_blas_thread():
        cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        eigenvalues, eigenvectors = scipy.linalg.eigh(cov_a)
        root_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
        middle = scipy.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def classifier_fid(generator: Network, features: Network, latents: torch.Tensor, real_images: torch.Tensor) -> float:
    """Frechet distance between classifier features of G(latents) and of ``real_images``."""
    fake = batched(lambda z: features(generator(z)), latents)
    real = batched(features, real_images)
    return frechet_distance(fake, real)


def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image against its reference, 10 log10(range^2 / MSE);
    ``data_range`` is 2 for images in [-1, 1], which gives the same value as both images in [0, 1]."""
    if images.shape != reference.shape:
        raise ValueError(f"psnr: images {tuple(images.shape)} and reference {tuple(reference.shape)} differ in shape")
    mse = (images.double() - reference.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)


def encode_decode_accuracy(encoder_sample: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                           generator: Network, classifier: Network, images: torch.Tensor,
                           labels: torch.Tensor, trials: int, seed: int,
                           device: torch.device | str = "cpu") -> dict[str, float | list[float]]:
    """Accuracy of classify(G(z)) with z a stochastic encoding of each image, over ``trials`` draws.

    ``encoder_sample(images, rng)`` returns one encoding per image (mu + sigma * eps), drawing its noise
    from ``rng``, a generator on ``device`` (the encoder's; ``labels`` are compared there too).
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    labels = labels.to(device)
    per_trial = []
    for _ in range(trials):
        predictions = batched(lambda x: classifier(generator(encoder_sample(x, rng))).argmax(1), images)
        per_trial.append((predictions == labels).float().mean().item())
    return summarise(per_trial)


def summarise(values: list[float]) -> dict[str, float | list[float]]:
    """{"mean", "std", "trials"} of per-trial values (sample std; 0 for one trial)."""
    tensor = torch.tensor(values, dtype=torch.float64)
    std = tensor.std().item() if len(values) > 1 else 0.0
    return {"mean": tensor.mean().item(), "std": std, "trials": values}


SAMPLE_COUNT = 10_000  # the 10,000 generated and 10,000 test images
ENCODING_TRIALS = 20  # the 20 stochastic encodings of the test set


def sample_metrics(generator: torch.nn.Module, classifier: torch.nn.Module, dataset: ImageDataset,
                   seed: int, count: int = SAMPLE_COUNT, device: torch.device | str = "cpu",
                   latent_dim: int | None = None) -> dict[str, Any]:
    """Confidence, label entropy and classifier-feature Frechet distance of ``count`` samples
    (at most as many as the test split has images, which they are compared with); the latents (of width
    ``latent_dim``, default the generator's config's) are drawn on ``device``, the networks'."""
    count = min(count, len(dataset.test))
    latent_dim = latent_dim or generator.config["latent_dim"]
    latents = standard_normal_latents(count, latent_dim, seed + SEEDS.samples, device)
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
