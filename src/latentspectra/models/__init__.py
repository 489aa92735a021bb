"""The networks of the paper (generator, discriminator, classifier, Gaussian encoder) and a plain
convolutional autoencoder (the fragmentation study).

Every network keeps the keyword arguments that rebuild it in ``.config``; `build_model` turns a
kind name and such a config back into a network (used when loading checkpoints).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .autoencoder import Autoencoder
from .classifier import Classifier
from .encoder import GaussianEncoder
from .gan import Discriminator, Generator

MODEL_KINDS: dict[str, type[nn.Module]] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "classifier": Classifier,
    "encoder": GaussianEncoder,
    "autoencoder": Autoencoder,
}


def build_model(kind: str, config: dict[str, Any]) -> nn.Module:
    """Build an untrained network of ``kind`` from its ``config`` (the model's ``.config``).

    Raises:
        ValueError: unknown kind, naming the kinds allowed.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds allowed: {sorted(MODEL_KINDS)}")
    config = dict(config)
    if "image_shape" in config:
        config["image_shape"] = tuple(config["image_shape"])
    return MODEL_KINDS[kind](**config)


__all__ = ["Autoencoder", "Classifier", "Discriminator", "GaussianEncoder", "Generator", "MODEL_KINDS", "build_model"]
