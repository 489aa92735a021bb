"""Metrics of the trained networks (issue targets): accuracy, sample confidence and label entropy,
classifier-feature Frechet distance, and encode -> decode -> classify accuracy; `sample_metrics` and
`encoder_metrics` measure them on a dataset with seeds per purpose (``seed + SEEDS.samples`` for the
latents, ``seed + SEEDS.encodings`` for the stochastic encodings), as `evaluate` and the training records do.

Every function takes plain tensors and callables, so it works with any generator, encoder and
classifier; images are (N, C, H, W) in the generator's pixel range.

Sharded (``world=``, `latentspectra evaluate` under torchrun; docs/scale.md): the rows are cut into chunks of
`INFERENCE_BATCH_SIZE`, chunk b computed by rank b mod W (`distributed.dealt_chunks`), so that every row is
computed in the same chunk whatever the number of ranks; each metric is a sum over the rows (counts, feature sums
and second moments, in float64), merged with one all-reduce (`distributed.merged_sum`). Counts, and so
accuracies, confidences and label histograms, are the same for any number of ranks; Frechet distances agree to
float64 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg
import torch

from .compute import Network
from .config import SEEDS, derived_seed
from .data import ImageDataset, images_to_tensor
from .distributed import SINGLE, World, dealt_chunks, merged_sum
from .models.encoder import reparameterise
from .threads import single_blas_thread

if TYPE_CHECKING:
    from .models.classifier import Classifier
    from .models.foreign import ForeignNetwork
    from .models.inference import InferenceNetwork
    from .models.layers import Configured


@torch.inference_mode()
def classifier_accuracy(
    classifier: Network, images: torch.Tensor, labels: torch.Tensor, world: World = SINGLE
) -> float:
    """Fraction of ``images`` whose argmax logit equals ``labels`` (as one rank of ``world``: its chunks, merged)."""
    hits = [
        (classifier(chunk).argmax(1) == chunk_labels).sum()
        for chunk, chunk_labels in dealt_chunks(world, images, labels)
    ]
    correct = merged_sum(hits, world, "the test images' hits")
    return correct.item() / len(images)


def standard_normal_latents(count: int, latent_dim: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``count`` latent vectors z ~ N(0, I) drawn from their own seeded stream on ``device``."""
    rng = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(count, latent_dim, generator=rng, device=rng.device)


def label_entropy(counts: torch.Tensor) -> float:
    """Entropy (nats) of the label histogram ``counts``; ln(number of labels) when every label is equally
    frequent."""
    frequencies = counts.double() / counts.sum()
    frequencies = frequencies[frequencies > 0]
    return float(-(frequencies * frequencies.log()).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


@torch.inference_mode()
def sample_quality(
    generator: Network, classifier: Network, latents: torch.Tensor, confidence: float = 0.9, world: World = SINGLE
) -> dict[str, float | list[int]]:
    """Classify G(z) for each latent: the fraction classified with probability > ``confidence``, the
    entropy of the predicted-label histogram, and that histogram (as one rank of ``world``: its chunks,
    merged)."""

    def tally(z: torch.Tensor) -> torch.Tensor:
        probabilities = classifier(generator(z)).softmax(1)
        top, labels = probabilities.max(1)
        return torch.cat([(top > confidence).sum()[None], torch.bincount(labels, minlength=probabilities.shape[1])])

    totals = merged_sum([tally(z) for (z,) in dealt_chunks(world, latents)], world, "the samples' labels")
    counts = totals[1:].long()
    entropy = label_entropy(counts)
    return {
        "sample_confidence": totals[0].item() / len(latents),
        "sample_label_entropy": entropy,
        "sample_label_entropy_ratio": entropy / math.log(len(counts)),
        "sample_label_counts": counts.tolist(),
    }


@dataclass(frozen=True)
class FeatureMoments:
    """A Gaussian fitted to feature rows: their count, mean and (unbiased) covariance, in float64."""

    count: int
    mean: torch.Tensor
    covariance: torch.Tensor

    @classmethod
    @torch.inference_mode()
    def of(cls, function: Network, inputs: torch.Tensor, world: World = SINGLE) -> FeatureMoments:
        """The moments of ``function``'s features of ``inputs``, from float64 sums and sums of products over
        the rows (as one rank of ``world``: its chunks, merged)."""

        def sums(chunk: torch.Tensor) -> torch.Tensor:
            features = function(chunk).cpu().double()
            return torch.cat(
                [torch.tensor([len(features)], dtype=torch.float64), features.sum(0), (features.T @ features).flatten()]
            )

        totals = merged_sum([sums(chunk) for (chunk,) in dealt_chunks(world, inputs)], world, "feature moments")
        width = round((math.sqrt(4 * len(totals) - 3) - 1) / 2)  # len = 1 + d + d^2
        count, mean = totals[0], totals[1 : 1 + width] / totals[0]
        products = totals[1 + width :].view(width, width)
        return cls(int(count), mean, (products - count * torch.outer(mean, mean)) / (count - 1))


def frechet_distance_of_moments(a: FeatureMoments, b: FeatureMoments) -> float:
    """Frechet distance between two Gaussians: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), in float64."""
    mean_a, mean_b = a.mean.numpy(), b.mean.numpy()
    cov_a, cov_b = a.covariance.numpy(), b.covariance.numpy()
    # Tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix:
    # stable where sqrtm of the non-symmetric product warns on near-singular covariances.
    with single_blas_thread():
        eigenvalues, eigenvectors = scipy.linalg.eigh(cov_a)
        root_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
        middle = scipy.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def _identity(features: torch.Tensor) -> torch.Tensor:
    return features


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples), in float64."""
    return frechet_distance_of_moments(
        FeatureMoments.of(_identity, features_a), FeatureMoments.of(_identity, features_b)
    )


def classifier_fid(
    generator: Network, features: Network, latents: torch.Tensor, real_images: torch.Tensor, world: World = SINGLE
) -> float:
    """Frechet distance between classifier features of G(latents) and of ``real_images`` (as one rank of
    ``world``: its chunks' feature moments, merged)."""
    return frechet_distance_of_moments(
        FeatureMoments.of(lambda z: features(generator(z)), latents, world),
        FeatureMoments.of(features, real_images, world),
    )


def psnr(images: torch.Tensor, reference: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image against its reference, 10 log10(range^2 / MSE);
    ``data_range`` is 2 for images in [-1, 1], which gives the same value as both images in [0, 1]."""
    if images.shape != reference.shape:
        raise ValueError(f"psnr: images {tuple(images.shape)} and reference {tuple(reference.shape)} differ in shape")
    mse = (images.double() - reference.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


@torch.inference_mode()
def encode_decode_accuracy(
    encoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    generator: Network,
    classifier: Network,
    images: torch.Tensor,
    labels: torch.Tensor,
    trials: int,
    seed: int,
    device: torch.device | str = "cpu",
    world: World = SINGLE,
) -> dict[str, float | list[float]]:
    """Accuracy of classify(G(z)) with z = mu + sigma * eps a stochastic encoding of each image, over ``trials``
    draws.

    ``encoder(images)`` returns (mu, logvar). Trial t's noise eps is one (N, M) draw, for all N images, from a
    generator on ``device`` (the encoder's; ``labels`` are compared there too) seeded with ``seed``, the trials
    one after the other; as one rank of ``world`` each rank draws it whole and keeps its chunks' rows.
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    chunks = dealt_chunks(world, images, labels.to(device))
    codes = [encoder(chunk) for chunk, _ in chunks]
    hits = torch.zeros(len(chunks), trials, dtype=torch.long)  # per chunk and trial
    for trial in range(trials if chunks else 0):  # a rank without chunks draws nothing and adds zeros
        noise = torch.randn(len(images), codes[0][0].shape[1], generator=rng, device=rng.device)
        for index, ((mu, logvar), (_, chunk_labels), (chunk_noise,)) in enumerate(
            zip(codes, chunks, dealt_chunks(world, noise))
        ):
            decoded = classifier(generator(reparameterise(mu, logvar, noise=chunk_noise)))
            hits[index, trial] = (decoded.argmax(1) == chunk_labels).sum()
    correct = merged_sum(list(hits), world, "the encodings' hits")
    return summarise((correct / len(images)).tolist())


def summarise(values: list[float]) -> dict[str, float | list[float]]:
    """{"mean", "std", "trials"} of per-trial values (sample std; 0 for one trial)."""
    tensor = torch.tensor(values, dtype=torch.float64)
    std = tensor.std().item() if len(values) > 1 else 0.0
    return {"mean": tensor.mean().item(), "std": std, "trials": values}


SAMPLE_COUNT = 10_000  # the 10,000 generated and 10,000 test images
ENCODING_TRIALS = 20  # the 20 stochastic encodings of the test set


def sample_metrics(
    generator: InferenceNetwork | Configured,
    classifier: InferenceNetwork | Classifier | ForeignNetwork,
    dataset: ImageDataset,
    seed: int,
    count: int = SAMPLE_COUNT,
    device: torch.device | str = "cpu",
    latent_dim: int | None = None,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Confidence, label entropy and classifier-feature Frechet distance of ``count`` samples
    (at most as many as the test split has images, which they are compared with); the latents (of width
    ``latent_dim``, default the generator's config's) are drawn on ``device``, the networks'."""
    count = min(count, len(dataset.test))
    latent_dim = latent_dim or generator.config["latent_dim"]
    latents = standard_normal_latents(count, latent_dim, derived_seed(seed, SEEDS.samples), device)
    metrics = sample_quality(generator, classifier, latents, world=world)
    real = images_to_tensor(dataset.test.images[:count]).to(device)
    metrics["classifier_fid"] = classifier_fid(generator, classifier.features, latents, real, world)
    return metrics


def encoder_metrics(
    encoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    generator: Network,
    classifier: Network,
    dataset: ImageDataset,
    seed: int,
    trials: int = ENCODING_TRIALS,
    device: torch.device | str = "cpu",
    world: World = SINGLE,
) -> dict[str, Any]:
    """Encode -> decode -> classify accuracy on the test set over ``trials`` stochastic encodings, drawn on
    ``device`` (the networks'); ``encoder(images)`` returns (mu, logvar)."""
    result = encode_decode_accuracy(
        encoder,
        generator,
        classifier,
        images_to_tensor(dataset.test.images).to(device),
        torch.from_numpy(dataset.test.labels),
        trials,
        derived_seed(seed, SEEDS.encodings),
        device,
        world,
    )
    return {
        "encode_decode_accuracy": result["mean"],
        "encode_decode_accuracy_std": result["std"],
        "encode_decode_trials": result["trials"],
    }
