"""The networks of the paper (generator, discriminator, classifier, Gaussian encoder) and a plain
convolutional autoencoder (the fragmentation study).

Every network keeps the keyword arguments that rebuild it in ``.config``; `build_model` turns a
kind name and such a config back into a network (used when loading checkpoints).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import torch

from ..compute import check_fits_memory
from .autoencoder import Autoencoder
from .classifier import Classifier
from .encoder import GaussianEncoder
from .gan import Discriminator, Generator
from .layers import Configured

MODEL_KINDS: dict[str, type[Configured]] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "classifier": Classifier,
    "encoder": GaussianEncoder,
    "autoencoder": Autoencoder,
}


@overload
def build_model(kind: Literal["generator"], config: dict[str, Any]) -> Generator: ...
@overload
def build_model(kind: Literal["discriminator"], config: dict[str, Any]) -> Discriminator: ...
@overload
def build_model(kind: Literal["classifier"], config: dict[str, Any]) -> Classifier: ...
@overload
def build_model(kind: Literal["encoder"], config: dict[str, Any]) -> GaussianEncoder: ...
@overload
def build_model(kind: Literal["autoencoder"], config: dict[str, Any]) -> Autoencoder: ...
@overload
def build_model(kind: object, config: dict[str, Any]) -> Configured: ...


def build_model(kind: object, config: dict[str, Any]) -> Configured:
    """Build an untrained network of ``kind`` from its ``config`` (the model's ``.config``), after building it
    on the meta device (no memory) to check that its parameters fit in this machine's memory.

    Raises:
        ValueError: an unknown kind (naming the kinds allowed) or a config the network refuses (a size that is
            not a whole number >= 1, unknown keys, an image shape it cannot take).
        ComputeError (a ValueError): parameters larger than the memory available.
    """
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds allowed: {sorted(MODEL_KINDS)}")
    if not isinstance(config, dict):
        raise ValueError(f"a {kind}'s config must be an object, got {type(config).__name__}")
    config = dict(config)
    if isinstance(config.get("image_shape"), list):
        config["image_shape"] = tuple(config["image_shape"])
    try:
        with torch.device("meta"):
            skeleton = MODEL_KINDS[kind](**config)
    except (TypeError, RuntimeError, OverflowError) as error:
        raise ValueError(f"cannot build a {kind} from {config} ({str(error).splitlines()[0]})") from None
    parameter_bytes = sum(tensor.numel() * tensor.element_size() for tensor in skeleton.state_dict().values())
    check_fits_memory(parameter_bytes, f"a {kind} of config {config}")
    return MODEL_KINDS[kind](**config)


__all__ = ["MODEL_KINDS", "Autoencoder", "Classifier", "Discriminator", "GaussianEncoder", "Generator", "build_model"]
