"""The trained generator, classifier and encoder of a models directory: as fast inference copies
(models/inference.py) on the run's device, for the experiments that push many latents through them, or as
exact float32 networks for those that differentiate through them (REDs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..compute import Compute
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
