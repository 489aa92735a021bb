"""A dataset held as float tensors in [-1, 1] (the whole of MNIST fits in 200 MB, no DataLoader needed), the
shuffled batches every training job draws from it, and the optimizer step on a loss made of named terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import torch
from torch import nn

from ..compute import Compute
from ..data import ImageDataset, images_to_tensor
from ..distributed import SINGLE, DistributedError, World
from .sharding import Shard, plain_batch_norm, replicate


@dataclass(frozen=True)
class DatasetTensors:
    train_images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, device: torch.device | str = "cpu") -> DatasetTensors:
        """The dataset's tensors, moved once to ``device`` (the training's)."""
        return cls(
            train_images=images_to_tensor(dataset.train.images).to(device),
            train_labels=torch.from_numpy(dataset.train.labels).to(device),
            test_images=images_to_tensor(dataset.test.images).to(device),
            test_labels=torch.from_numpy(dataset.test.labels).to(device),
        )


class ShuffledBatches:
    """The indices 0..count-1 in a new random order every epoch, cut into batches of ``batch_size``; the
    last, partial batch of an epoch is dropped (but an epoch has at least one batch)."""

    def __init__(self, count: int, batch_size: int):
        self.count = count
        self.batch_size = batch_size
        self._order = torch.arange(count)

    def __len__(self) -> int:
        return max(1, self.count // self.batch_size)

    def shuffle(self, rng: torch.Generator) -> None:
        """Draw the epoch's order from ``rng``, on its device."""
        self._order = torch.randperm(self.count, generator=rng, device=rng.device)

    def __getitem__(self, batch_index: int) -> torch.Tensor:
        """The indices of batch ``batch_index`` of the current epoch."""
        return self._order[batch_index * self.batch_size : (batch_index + 1) * self.batch_size]


def descend(optimizer: torch.optim.Optimizer, shard: Shard, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """One optimizer step on ``terms["loss"]``, every term weighted for this rank's ``shard`` (`Shard.scale`);
    returns the weighted terms as floats, the step's losses."""
    scaled = {key: shard.scale(term) for key, term in terms.items()}
    optimizer.zero_grad(set_to_none=True)
    scaled["loss"].backward()
    optimizer.step()
    return {key: value.item() for key, value in scaled.items()}


class Batched(Protocol):
    """A job's config: at least the size of its batches."""

    @property
    def batch_size(self) -> int: ...


ConfigT = TypeVar("ConfigT", bound=Batched)


class ShuffledEpochs(Generic[ConfigT]):
    """What every training job here shares: an epoch is one pass over ``self.batches`` in a new order, and,
    as one rank of a sharded run (`shard_over`), each rank trains on its shard of every batch, the modules
    named in ``trained`` replicated with DistributedDataParallel (training/sharding.py)."""

    config: ConfigT
    compute: Compute
    batches: ShuffledBatches
    modules: dict[str, nn.Module]
    trained: tuple[str, ...] = ()  # the modules that take optimizer steps: replicated over the ranks
    world: World = SINGLE

    def start_job(self, dataset: ImageDataset, config: ConfigT, seed: int, compute: Compute | None) -> DatasetTensors:
        """The start of every job's constructor: torch's global generator seeded with ``seed`` (the networks'
        initial weights are drawn from it next), ``config`` and ``compute`` (default: `Compute()`) kept, and the
        training rows in batches of ``config.batch_size``; returns the dataset's tensors on the compute device."""
        torch.manual_seed(seed)
        self.config = config
        self.compute = compute or Compute()
        data = DatasetTensors.from_dataset(dataset, self.compute.device)
        self.batches = ShuffledBatches(len(data.train_labels), config.batch_size)
        return data

    def batches_per_epoch(self) -> int:
        return len(self.batches)

    def start_epoch(self, rng: torch.Generator) -> None:
        """Draw the epoch's order from ``rng``."""
        self.batches.shuffle(rng)

    def shard_over(self, world: World) -> None:
        """Train as one rank of ``world`` from now on: this rank's shard of every batch, gradients averaged and
        batch norm over the global batch (`sharding.replicate`).

        Raises:
            DistributedError: a job without modules to replicate, which does not train sharded.
        """
        if not self.trained:
            raise DistributedError(
                f"train {getattr(self, 'name', 'this network')} does not run sharded; start it without torchrun"
            )
        self.world = world
        self._replicas = {name: replicate(self.modules[name], world) for name in self.trained}

    def unshard(self) -> None:
        """One process again, the trained modules' batch norms plain again (to be evaluated and saved)."""
        for name in self.trained:
            plain_batch_norm(self.modules[name])
        self.world, self._replicas = SINGLE, {}

    def replica(self, name: str) -> nn.Module:
        """The module ``name`` to run a training step's forward pass with: its replica as one rank of a
        sharded run, the module itself otherwise."""
        return getattr(self, "_replicas", {}).get(name, self.modules[name])

    def batch(self, batch_index: int) -> tuple[torch.Tensor, Shard]:
        """This rank's dataset indices of batch ``batch_index`` of the current epoch, and its shard of the batch."""
        indices = self.batches[batch_index]
        shard = Shard.of(len(indices), self.world)
        return shard.take(indices), shard
