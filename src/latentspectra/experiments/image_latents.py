"""The one way every study turns real images into latents: the encoder's means, GAN inversion by optimisation
(`latent.invert` from draws of the prior), or both (the descent started from the encoder's means), chosen once
by `resolve_inversion` (``auto``: optimize where the networks have no encoder; where they have one, what the
command says: hybrid for `invert` and `explore`, the encoder's means for the commands that turn thousands of
images into latents, `config.InversionChoice`) and recorded with the latents (`ImageLatents.record`). A study
passes its config (`study_latents`); a sharded run deals the images over its ranks and gets the latents of one
process.

Where a study fits on a whole training set (compare's and explore's SFVQ and class means) it takes the encoder's
means, or prior draws where there is no encoder (`training_codes`): inverting 60,000 images takes hours on a CPU.

The descent runs float32 copies of the generator and classifier with their batch norms folded
(`inversion_networks`), under bfloat16 autocast where the run's precision says so: their backward passes are
about 1.3x faster than those of the inference copies, whose CPU layers are made for forward passes (measured on
the shipped MNIST networks, one AVX512 core: 1,410 against 1,056 image-steps per second). The feature term reads
the classifier's penultimate layer where the classifier has one (the package's own classifier; a user's network
with ``features`` and ``head``), and its logits otherwise (`classifier_features` says which); networks without a
classifier are inverted on pixels and the prior alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import torch
from torch import nn

from ..compute import Network
from ..config import INVERSIONS, SEEDS, InversionChoice, InversionSettings, derived_seed
from ..distributed import SINGLE, World, dealt_chunks, gathered_batched, gathered_chunks
from ..errors import LatentspectraError
from ..latent.inversion import Inversion, invert
from ..models.foreign import has_penultimate_features
from ..models.inference import exact_copy
from ..progress import progress_bar
from .common import encoder_means
from .networks import Networks

PENULTIMATE, LOGITS = "penultimate layer", "logits"


def classifier_features(classifier: nn.Module) -> tuple[Network, str]:
    """The features of ``classifier`` (a package network or a user's, not an inference copy) that the descent and
    the reconstruction measures compare, and which they are: its penultimate layer where the network has
    ``features`` (a user's network: ``features`` and ``head``), else its logits (log-probabilities for a classifier
    declared to return probabilities)."""
    if has_penultimate_features(classifier):
        return cast(Network, classifier.features), PENULTIMATE  # a method (`has_penultimate_features` checked)
    return classifier, LOGITS


class InversionNetworks(NamedTuple):
    """The networks of a descent, float32 with batch norms folded, on the run's device: G, the classifier (None
    where the networks have none), its features and which they are (`classifier_features`)."""

    generator: nn.Module
    classifier: nn.Module | None
    features: Network | None
    feature_layer: str | None


def inversion_networks(networks: Networks) -> InversionNetworks:
    """The generator and classifier of ``networks`` as the descent runs them (module docstring)."""
    described, device = networks.description, networks.compute.device
    assert described.generator is not None  # the caller's `require` checked it
    generator = exact_copy(described.generator, device)
    if described.classifier is None:
        return InversionNetworks(generator, None, None, None)
    classifier = exact_copy(described.classifier, device)
    return InversionNetworks(generator, classifier, *classifier_features(classifier))


def resolve_inversion(inversion: str, networks: Networks, auto: str = "hybrid") -> str:
    """What ``inversion`` (one of `config.INVERSIONS`) means for ``networks``: auto is ``auto`` (the command's
    choice, `config.InversionChoice`) where they have an encoder and optimize where they have none.

    Raises:
        LatentspectraError: an unknown name.
        NetworkError: encoder or hybrid for networks without an encoder; optimize or hybrid without a generator.
    """
    if inversion not in INVERSIONS:
        raise LatentspectraError(f"--inversion {inversion}: expected one of {', '.join(INVERSIONS)}")
    if inversion == "auto":
        inversion = auto if networks.encoder is not None else "optimize"
    needed = {"encoder": ("encoder",), "optimize": ("generator",), "hybrid": ("generator", "encoder")}[inversion]
    networks.require(f"--inversion {inversion}", *needed)
    return inversion


@dataclass(frozen=True)
class ImageLatents:
    """Latents of real images and how they were made.

    Attributes:
        latents: (N, M) float32 on the CPU.
        inversion: what ran: "encoder", "optimize" or "hybrid".
        requested: what was asked for (auto or one of those).
        optimisation: the descent's per-image results (`latent.Inversion`); None for "encoder".
        features: which classifier features the descent compared (`classifier_features`); None for "encoder" or
            without a classifier.
    """

    latents: torch.Tensor
    inversion: str
    requested: str
    optimisation: Inversion | None = None
    features: str | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready: what was asked and chosen and, for a descent, its settings, features and summary."""
        record: dict[str, Any] = {"inversion": self.inversion, "requested": self.requested}
        if self.optimisation is not None:
            record.update(
                settings=asdict(self.optimisation.settings),
                features=self.features,
                optimisation=self.optimisation.summary(),
            )
        return record


def latents_of_images(
    images: torch.Tensor,
    networks: Networks,
    inversion: str = "auto",
    settings: InversionSettings = InversionSettings(),
    *,
    seed: int = 0,
    progress: bool = False,
    auto: str = "hybrid",
    world: World = SINGLE,
) -> ImageLatents:
    """Latents of ``images`` (N, C, H, W) in [-1, 1] as ``inversion`` says (`resolve_inversion`, with ``auto``):
    the encoder's means in the networks' batches, or `latent.invert` with ``settings`` on the networks' device in
    their precision (z and the loss in float32), its draws from ``seed``, started from the encoder's means for
    hybrid. As one rank of ``world``: batch b of the images is rank b mod W's (`distributed.dealt_chunks`), each
    image's draws keyed by its row (`latent.invert`'s ``indices``), and every rank gets every row back: the same
    latents whatever the number of ranks.

    Raises:
        LatentspectraError: an unknown ``inversion``, or networks without what it needs (`resolve_inversion`).
        InversionError: images that are not finite tensors of the networks' image shape.
        DistributedError: another rank failed or did not answer within the timeout.
    """
    chosen = resolve_inversion(inversion, networks, auto)
    encoder = networks.encoder
    if chosen == "encoder":
        assert encoder is not None  # `resolve_inversion` required it
        latents = gathered_batched(encoder.encode_mean, images.float(), world, networks.batch_size).float()
        return ImageLatents(latents, chosen, inversion)
    descent = inversion_networks(networks)
    start = "encoder" if chosen == "hybrid" else "prior"
    mine = dealt_chunks(world, images, torch.arange(len(images)), batch_size=networks.batch_size)
    tables = []
    with progress_bar(f"inverting ({chosen})", progress and world.is_writer, unit="image-start") as bar:
        if mine:
            found = invert(
                descent.generator,
                torch.cat([chunk for chunk, _ in mine]).to(networks.compute.device),
                networks.latent_dim,
                features=descent.features,
                encoder=None if encoder is None else encoder.encode_mean,
                start=start,
                settings=settings,
                batch_size=networks.batch_size,
                seed=seed,
                indices=torch.cat([rows for _, rows in mine]).tolist(),
                precision=networks.compute.precision,
                progress=bar,
            )
            tables = list(found.table().split([len(rows) for _, rows in mine]))
    gathered = gathered_chunks(tables, len(images), world, networks.batch_size)
    result = Inversion.from_table(gathered, start, settings, descent.features is not None)
    return ImageLatents(result.latents, chosen, inversion, result, descent.feature_layer)


def study_latents(
    images: torch.Tensor,
    networks: Networks,
    config: InversionChoice,
    seed: int,
    *,
    progress: bool = False,
    world: World = SINGLE,
) -> ImageLatents:
    """`latents_of_images` as a study's ``config`` asks (``inversion``, its steps and what auto means for the
    command), the draws from the run's ``seed`` (offset `config.SEEDS` inversion)."""
    return latents_of_images(
        images,
        networks,
        config.inversion,
        config.inversion_settings(),
        seed=derived_seed(seed, SEEDS.inversion),
        progress=progress,
        auto=config.inversion_auto,
        world=world,
    )


class TrainingCodes(NamedTuple):
    """The latents that stand for a training set (`training_codes`) and where they come from: "encoder means" or
    "prior draws"."""

    latents: torch.Tensor
    source: str


def training_codes(networks: Networks, images: np.ndarray, seed: int, world: World = SINGLE) -> TrainingCodes:
    """The latents that stand for a training set where a study fits on it (compare's and explore's SFVQ and class
    means): the encoder's means of the uint8 ``images`` (N, C, H, W) where the networks have an encoder
    (`common.encoder_means`, dealt over ``world``); without one, as many draws z ~ N(0, I) from ``seed`` (offset
    `config.SEEDS` codes) on the CPU, the generator's own latents, which the studies label by C(G(z)) as they label
    encoded ones (inverting a whole training set would take hours; docs/inversion.md)."""
    if networks.encoder is not None:
        return TrainingCodes(encoder_means(networks, images, world), "encoder means")
    rng = torch.Generator().manual_seed(derived_seed(seed, SEEDS.codes))
    return TrainingCodes(torch.randn(len(images), networks.latent_dim, generator=rng), "prior draws")
