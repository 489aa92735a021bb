"""The networks of a latent space (models/spec.py: the package's own, a user's files or a factory) as the
studies run them (`Networks`, the one runtime holder): the generator, classifier and encoder as fast inference
copies (models/inference.py) on the run's device, for the experiments that push many latents through them, or as
exact float32 networks for those that differentiate through them (REDs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..compute import Compute, check_fits_memory
from ..config import StudyConfig
from ..data import ImageDataset
from ..errors import DataError
from ..models.files import shipped_models_dir
from ..models.inference import InferenceEncoder, InferenceNetwork
from ..models.spec import LatentNetworks, resolve_networks


@dataclass
class Networks:
    """The one runtime holder of a latent space's networks, on ``compute.device``, loaded by `load_networks`:
    fast inference copies (G and C on latents in the run's precision; C on real images and the encoder in
    float32) or, with ``exact``, the float32 networks themselves, folded and frozen, for the studies that
    differentiate through them (REDs). A piece the description lacks is None (`require` names it)."""

    generator: InferenceNetwork | None  # latents -> images in [-1, 1]
    classifier: InferenceNetwork | None  # generated images -> logits
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
    exact: bool = False,
) -> Networks:
    """The networks ``networks`` describes (a models directory, a manifest directory, a ``module:function``
    factory or a `LatentNetworks`; None: the shipped networks of ``dataset``), with ``overrides`` (piece ->
    file), as `models.inference` copies on ``compute``'s device (default: the CPU in float32), called in batches
    of ``batch_size`` (default: the device's); with ``exact``, exact ones (float32, differentiable, no fast
    layers: `models.inference.InferenceNetwork`).

    Raises:
        CheckpointError, NetworkError: networks that cannot be read or do not fit their description;
        ComputeError: a batch too large for the device's memory.
    """
    compute = compute or Compute()
    described = resolve_networks(shipped_models_dir(dataset) if networks is None else networks, overrides=overrides)
    loaded = Networks(
        _copy(InferenceNetwork, described.generator, compute, exact),
        _copy(InferenceNetwork, described.classifier, compute, exact),
        _copy(InferenceNetwork, described.classifier, replace(compute, precision="float32"), exact),
        _copy(InferenceEncoder, described.encoder, compute, exact),
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


def networks_spec(config: StudyConfig) -> NetworksSpec:
    """``config.networks`` as `load_networks` takes it (config.py, below models, types it as object; a value of
    another kind is refused by `resolve_networks` in one line)."""
    return cast(NetworksSpec, config.networks)


def load_study_networks(config: StudyConfig, compute: Compute | None = None, *, exact: bool = False) -> Networks:
    """The networks a study's ``config`` names (`config.NetworksChoice`: ``networks`` with its network files, the
    shipped ones of ``config.dataset`` by default), loaded by `load_networks` at ``config.batch_size``."""
    return load_networks(
        networks_spec(config),
        compute,
        config.batch_size,
        dataset=config.dataset,
        overrides=config.network_files,
        exact=exact,
    )


def _copy(kind: type, network: nn.Module | None, compute: Compute, exact: bool) -> Any:
    return None if network is None else kind(network, compute, exact=exact)
