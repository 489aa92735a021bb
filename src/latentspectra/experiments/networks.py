"""The networks of a latent space (models/spec.py: the package's own, a user's files or a factory) as the
studies run them: the generator, classifier and encoder as fast inference copies (models/inference.py) on the
run's device, for the experiments that push many latents through them, or as exact float32 networks for those
that differentiate through them (REDs); and a model's codes of a training set with the decoder that turns them
into images (the fragmentation study)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..compute import Compute, Network, check_fits_memory
from ..config import SEEDS, derived_seed
from ..data import ImageDataset
from ..distributed import SINGLE, World, gathered_batched
from ..errors import DataError
from ..models import Autoencoder, GaussianEncoder
from ..models.encoder import reparameterise
from ..models.files import load_model, shipped_models_dir
from ..models.inference import InferenceEncoder, InferenceNetwork, fold_batch_norms, frozen
from ..models.spec import LatentNetworks, resolve_networks


@dataclass
class Networks:
    """G and C on latents in the run's precision; C on real images and the encoder in float32; all on
    ``compute.device``. A piece the description lacks is None (`require` names it for a command)."""

    generator: InferenceNetwork | None  # latents -> images in [-1, 1], the run's precision
    classifier: InferenceNetwork | None  # generated images -> logits, the run's precision
    exact_classifier: InferenceNetwork | None  # real images -> logits, float32
    encoder: InferenceEncoder | None  # images -> (mu, logvar), float32
    latent_dim: int
    num_labels: int
    compute: Compute
    batch_size: int  # latents or images per network call
    source: str  # where they came from, for the records
    description: LatentNetworks  # labels, image shape, pixel range, the models directory

    def compute_record(self) -> dict[str, Any]:
        """Where and how they ran, for a study's record: `Compute.record` and the batch size."""
        return {**self.compute.record(), "batch_size": self.batch_size}

    def require(self, command: str, *pieces: str) -> None:
        """`LatentNetworks.require`: one line naming ``command`` and the first missing piece."""
        self.description.require(command, *pieces)

    def decode_classify(self, z: torch.Tensor) -> torch.Tensor:
        """argmax C(G(z)) for a batch of latents."""
        assert self.generator is not None and self.classifier is not None  # the caller's `require` checked them
        return self.classifier(self.generator(z.float())).argmax(1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the generator makes and the classifier and encoder take."""
        return self.description.image_shape

    @property
    def labels(self) -> tuple[str, ...]:
        return self.description.labels


def check_dataset_fits(
    image_shape: Sequence[int], dataset: ImageDataset, source: str, num_labels: int | None = None
) -> None:
    """The dataset's images have the shape the networks of ``source`` take and, with ``num_labels`` (the
    classifier's outputs, for a command that compares them with the dataset's labels), its classes are the
    classifier's labels, one for one: checked before any work.

    Raises:
        DataError: naming the dataset, its image shape and the networks' (e.g. RGB or 2 x 2 images for networks
            of 28 x 28 grey ones), or its number of classes and the classifier's.
    """
    if tuple(dataset.shape) != tuple(image_shape):
        raise DataError(
            f"dataset {dataset.name}: images are {tuple(dataset.shape)} (C, H, W), but the networks in "
            f"{source} take {tuple(image_shape)}; use a dataset of that shape or networks trained on it"
        )
    if num_labels is not None and len(dataset.classes) != num_labels:
        raise DataError(
            f"dataset {dataset.name}: {len(dataset.classes)} classes, but the classifier of {source} has "
            f"{num_labels} labels; use a dataset with one class per label or networks trained on it"
        )


def activation_bytes_per_sample(networks: Sequence[nn.Module], inputs: torch.Tensor) -> int:
    """Bytes of every intermediate output of ``networks`` applied in turn to ``inputs`` (a batch of one), as
    measured by forward hooks: an upper bound on the memory one more sample in a batch needs (inside a
    TorchScript module, which takes no hooks, only what it returns is counted)."""
    total = 0

    def count(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal total
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()

    hooks = [
        module.register_forward_hook(count)
        for network in networks
        for module in network.modules()
        if not isinstance(module, torch.jit.ScriptModule)
    ]  # TorchScript takes no hooks: its outputs count
    try:
        with torch.inference_mode():
            for network in networks:
                inputs = network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def check_batch_fits(networks: Networks, argument: str = "--batch-size") -> None:
    """A batch of ``networks.batch_size`` latents through G and C fits in the device's memory (per-sample bytes
    measured by `activation_bytes_per_sample`).

    Raises:
        ComputeError: naming ``argument``, the batch size and the memory it needs and has.
    """
    assert networks.generator is not None and networks.classifier is not None  # `load_networks` checks with both
    z = torch.zeros(1, networks.latent_dim, device=networks.compute.device)
    per_sample = activation_bytes_per_sample([networks.generator, networks.classifier], z)
    check_fits_memory(networks.batch_size * per_sample, f"{argument} {networks.batch_size}", networks.compute.device)


NetworksSpec = str | Path | LatentNetworks | None  # what `resolve_networks` takes: a directory, a factory, ...


def load_networks(
    networks: NetworksSpec,
    compute: Compute | None = None,
    batch_size: int | None = None,
    *,
    dataset: str = "mnist",
    overrides: Mapping[str, str | Path | None] | None = None,
) -> Networks:
    """The networks ``networks`` describes (a models directory, a manifest directory, a ``module:function``
    factory or a `LatentNetworks`; None: the shipped networks of ``dataset``), with ``overrides`` (piece ->
    file), as inference copies on ``compute``'s device (default: the CPU in float32), called in batches of
    ``batch_size`` (default: the device's).

    Raises:
        CheckpointError, NetworkError: networks that cannot be read or do not fit their description;
        ComputeError: a batch too large for the device's memory.
    """
    compute = compute or Compute()
    described = resolve_networks(shipped_models_dir(dataset) if networks is None else networks, overrides=overrides)
    classifier = described.classifier
    loaded = Networks(
        _copy(InferenceNetwork, described.generator, compute),
        _copy(InferenceNetwork, classifier, compute),
        None if classifier is None else InferenceNetwork(classifier, compute, full_precision=True),
        _copy(InferenceEncoder, described.encoder, compute),
        described.latent_dim,
        described.num_labels,
        compute,
        batch_size or compute.inference_batch_size,
        described.source,
        described,
    )
    if loaded.generator is not None and loaded.classifier is not None:
        check_batch_fits(loaded)
    return loaded


def _copy(kind: type, network: nn.Module | None, compute: Compute) -> Any:
    return None if network is None else kind(network, compute)


class ExactNetworks(NamedTuple):
    """Float32 eval-mode networks with batch norm folded: G (latents -> images), C (images -> logits)
    and the encoder (images -> (mu, logvar)), and the (C, H, W) of their images."""

    generator: nn.Module
    classifier: nn.Module
    encoder: GaussianEncoder
    image_shape: tuple[int, int, int]


def load_exact_networks(
    networks: NetworksSpec,
    device: torch.device | str = "cpu",
    *,
    dataset: str = "mnist",
    overrides: Mapping[str, str | Path | None] | None = None,
) -> tuple[ExactNetworks, LatentNetworks]:
    """The float32 generator, classifier and encoder of ``networks`` (as `load_networks` takes them), folded,
    frozen, on ``device``, with their description.

    Raises:
        CheckpointError, NetworkError: networks that cannot be read, lack a piece or do not fit.
    """
    described = resolve_networks(shipped_models_dir(dataset) if networks is None else networks, overrides=overrides)
    described.require("reds", "generator", "classifier", "encoder")
    generator, classifier, encoder = (
        fold_batch_norms(frozen(getattr(described, name))).requires_grad_(False).to(device)
        for name in ("generator", "classifier", "encoder")
    )
    exact = ExactNetworks(generator, classifier, encoder, described.image_shape)
    return exact, described


@dataclass
class LatentModel:
    """A model's codes of the training set and the decoder that turns codes into images."""

    name: str
    codes: torch.Tensor  # (P, N) float32
    decode: Network
    description: str


def autoencoder_model(
    models_dir: Path,
    train_images: torch.Tensor,
    batch_size: int,
    name: str = "autoencoder",
    compute: Compute | None = None,
    world: World = SINGLE,
) -> LatentModel:
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
    return LatentModel(
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
) -> LatentModel:
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
    return LatentModel(
        "encoder", codes, generator, "LSD encoder: one draw z ~ q(z | x) per training image, decoded by the generator G"
    )
