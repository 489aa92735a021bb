"""The trained networks of a models directory: the generator, classifier and encoder as fast inference copies
(models/inference.py) on the run's device, for the experiments that push many latents through them, or as
exact float32 networks for those that differentiate through them (REDs); and a model's codes of a training
set with the decoder that turns them into images (the fragmentation study)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..compute import Compute
from ..config import SEEDS
from ..evaluation import Network, batched
from ..models import GaussianEncoder
from ..models.files import load_model
from ..models.inference import InferenceEncoder, InferenceNetwork, fold_batch_norms


@dataclass
class Networks:
    """G and C on latents in the run's precision; C on real images and the encoder in float32; all on
    ``compute.device``."""

    generator: nn.Module  # latents -> images, the run's precision
    classifier: nn.Module  # generated images -> logits, the run's precision
    exact_classifier: nn.Module  # real images -> logits, float32
    encoder: InferenceEncoder  # images -> (mu, logvar), float32
    latent_dim: int
    num_labels: int
    compute: Compute
    batch_size: int  # latents or images per network call
    source: str  # where they came from, for the records: the models directory

    def compute_record(self) -> dict[str, Any]:
        """Where and how they ran, for a study's record: `Compute.record` and the batch size."""
        return {**self.compute.record(), "batch_size": self.batch_size}

    def decode_classify(self, z: torch.Tensor) -> torch.Tensor:
        """argmax C(G(z)) for a batch of latents."""
        return self.classifier(self.generator(z.float())).argmax(1)


def load_networks(models_dir: str | Path, compute: Compute | None = None, batch_size: int | None = None) -> Networks:
    """The generator, classifier and encoder saved in ``models_dir``, as inference copies on ``compute``'s
    device (default: the CPU in float32), called in batches of ``batch_size`` (default: the device's).

    Raises:
        CheckpointError: a missing or unreadable model.
    """
    compute = compute or Compute()
    generator = load_model(models_dir, "generator")[0]
    classifier = load_model(models_dir, "classifier")[0]
    encoder = load_model(models_dir, "encoder")[0]
    return Networks(InferenceNetwork(generator, compute), InferenceNetwork(classifier, compute),
                    InferenceNetwork(classifier, compute, full_precision=True), InferenceEncoder(encoder, compute),
                    int(generator.config["latent_dim"]), int(classifier.config["num_classes"]), compute,
                    batch_size or compute.inference_batch_size, str(models_dir))


class ExactNetworks(NamedTuple):
    """Float32 eval-mode networks with batch norm folded: G (latents -> images), C (images -> logits)
    and the encoder (images -> (mu, logvar))."""

    generator: nn.Module
    classifier: nn.Module
    encoder: GaussianEncoder


def load_exact_networks(models_dir: str | Path, device: torch.device | str = "cpu") -> ExactNetworks:
    """The float32 generator, classifier and encoder of ``models_dir``, folded, frozen, on ``device``.

    Raises:
        CheckpointError: a missing or unreadable model.
    """
    return ExactNetworks(*(fold_batch_norms(load_model(models_dir, name)[0]).requires_grad_(False).to(device)
                           for name in ("generator", "classifier", "encoder")))


@dataclass
class LatentModel:
    """A model's codes of the training set and the decoder that turns codes into images."""

    name: str
    codes: torch.Tensor  # (P, N) float32
    decode: Network
    description: str


def autoencoder_model(models_dir: Path, train_images: torch.Tensor, batch_size: int, name: str = "autoencoder",
                      compute: Compute | None = None) -> LatentModel:
    """The codes E(x) of ``train_images`` (on ``compute``'s device; default the CPU in float32) of the
    autoencoder saved as ``name``, on the CPU, and its decoder (an inference copy in ``compute``'s precision);
    the description says whether it was trained plain or with ACAI's interpolation critic.

    Raises:
        CheckpointError: no readable autoencoder in ``models_dir``.
    """
    compute = compute or Compute()
    autoencoder, record = load_model(models_dir, name)
    encoder = fold_batch_norms(autoencoder.encoder).to(compute.device)
    codes = batched(encoder, train_images, batch_size).cpu()
    weight = record.get("train_config", {}).get("interpolation_weight", 0.0)
    kind = f"autoencoder with ACAI's interpolation critic (lambda {weight:g})" if weight else "plain autoencoder"
    return LatentModel("autoencoder", codes, InferenceNetwork(autoencoder.decoder, compute),
                       f"{name}: {kind}, codes E(x) of the training set, its own decoder")


def encoder_model(models_dir: Path, generator: nn.Module, train_images: torch.Tensor, seed: int,
                  batch_size: int, compute: Compute) -> LatentModel:
    """The LSD encoder's codes, one z ~ q(z | x) per training image (drawn on ``compute``'s device, kept on
    the CPU), decoded by the generator.

    Raises:
        CheckpointError: no readable encoder in ``models_dir``.
    """
    encoder = fold_batch_norms(load_model(models_dir, "encoder")[0]).to(compute.device)
    rng = compute.generator(seed + SEEDS.encodings)
    codes = batched(lambda x: encoder.sample(x, rng), train_images, batch_size).cpu()
    return LatentModel("encoder", codes, generator,
                       "LSD encoder: one draw z ~ q(z | x) per training image, decoded by the generator G")
