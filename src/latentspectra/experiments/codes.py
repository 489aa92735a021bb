"""A model's codes of a training set and the decoder that turns codes into images (`CodedModel`): what the
fragmentation study reads, from an autoencoder (its codes E(x)) or from the LSD encoder and the generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compute import Compute, Network
from ..config import SEEDS, derived_seed
from ..distributed import SINGLE, World, gathered_batched
from ..models import Autoencoder
from ..models.encoder import reparameterise
from ..models.files import load_model
from ..models.inference import InferenceNetwork, fold_batch_norms, frozen


@dataclass
class CodedModel:
    """A model's codes of the training set and the decoder that turns codes into images."""

    name: str
    codes: torch.Tensor  # (P, N) float32
    decode: Network
    description: str
    inversion: dict[str, Any] | None = (
        None  # how images became the codes of a generator's latent space (`ImageLatents`)
    )


def autoencoder_model(
    models_dir: Path,
    train_images: torch.Tensor,
    batch_size: int,
    name: str = "autoencoder",
    compute: Compute | None = None,
    world: World = SINGLE,
) -> CodedModel:
    """The codes E(x) of ``train_images`` (on ``compute``'s device; default the CPU in float32) of the
    autoencoder saved as ``name``, on the CPU, and its decoder (an inference copy in ``compute``'s precision);
    the description says whether it was trained plain or with ACAI's interpolation critic. As one rank of
    ``world``: its batches of the images, gathered (`gathered_batched`), the same codes.

    Raises:
        CheckpointError: no readable autoencoder in ``models_dir``.
    """
    compute = compute or Compute()
    autoencoder, record = load_model(models_dir, name, "autoencoder")
    assert isinstance(autoencoder, Autoencoder)  # load_model checked the kind
    encoder = fold_batch_norms(autoencoder.encoder).to(compute.device)
    codes = gathered_batched(encoder, train_images, world, batch_size)
    weight = record.get("train_config", {}).get("interpolation_weight", 0.0)
    kind = f"autoencoder with ACAI's interpolation critic (lambda {weight:g})" if weight else "plain autoencoder"
    return CodedModel(
        "autoencoder",
        codes,
        InferenceNetwork(autoencoder.decoder, compute),
        f"{name}: {kind}, codes E(x) of the training set, its own decoder",
    )


def encoder_model(
    encoder: nn.Module,
    generator: nn.Module,
    train_images: torch.Tensor,
    seed: int,
    batch_size: int,
    compute: Compute,
    world: World = SINGLE,
) -> CodedModel:
    """The LSD encoder's codes, one z = mu + sigma * eps ~ q(z | x) per training image (kept on the CPU), decoded
    by the generator. (mu, log sigma^2) are computed in batches of ``batch_size``, as one rank of ``world`` its
    batches, gathered (`gathered_batched`); every rank then draws eps on ``compute``'s device batch after batch,
    as one process does: the same codes whatever the number of ranks."""
    encoder = fold_batch_norms(frozen(encoder)).to(compute.device)
    rng = compute.generator(derived_seed(seed, SEEDS.encodings))
    moments = gathered_batched(lambda x: torch.cat(encoder(x), 1), train_images, world, batch_size)
    draws = []
    for chunk in moments.to(compute.device).split(batch_size):
        mu, logvar = chunk.chunk(2, 1)
        draws.append(reparameterise(mu, logvar, rng).cpu())
    codes = torch.cat(draws)
    return CodedModel(
        "encoder", codes, generator, "LSD encoder: one draw z ~ q(z | x) per training image, decoded by the generator G"
    )
