"""The trained generator, classifier and encoder of a models directory, loaded as fast inference copies
(models/inference.py) for the experiments that push many latents through them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..models import GaussianEncoder
from ..models.inference import InferenceNetwork, fold_batch_norms
from ..training.checkpoint import load_model


@dataclass
class Networks:
    """G and C on latents under bfloat16 autocast; C on real images and the encoder in float32."""

    generator: nn.Module  # latents -> images, bfloat16
    classifier: nn.Module  # generated images -> logits, bfloat16
    exact_classifier: nn.Module  # real images -> logits, float32
    encoder: GaussianEncoder  # images -> (mu, logvar), float32, batch norm folded
    latent_dim: int
    num_labels: int

    def decode_classify(self, z: torch.Tensor) -> torch.Tensor:
        """argmax C(G(z)) for a batch of latents."""
        return self.classifier(self.generator(z.float())).argmax(1)


def load_networks(models_dir: str | Path) -> Networks:
    """The generator, classifier and encoder saved in ``models_dir``, as inference copies.

    Raises:
        CheckpointError: a missing or unreadable model.
    """
    generator = load_model(models_dir, "generator")[0]
    classifier = load_model(models_dir, "classifier")[0]
    encoder = load_model(models_dir, "encoder")[0]
    return Networks(InferenceNetwork(generator), InferenceNetwork(classifier),
                    InferenceNetwork(classifier, bfloat16=False), fold_batch_norms(encoder.eval()),
                    int(generator.config["latent_dim"]), int(classifier.config["num_classes"]))
