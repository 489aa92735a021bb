"""Training as ranks of one run (``torchrun ... -m latentspectra train``; docs/scale.md): every rank computes its
shard of each global batch, DistributedDataParallel averages the gradients, and batch norm takes its statistics
over the global batch, so that the weights are those of one process running the same global batch.

- `Shard`: this rank's contiguous rows of a global batch, and the random draws of the whole batch cut to them
  (every rank draws the global batch's noise from the same stream and keeps its rows, so the noise a row gets
  does not depend on the number of ranks).
- `GlobalBatchNorm`: a batch-norm layer whose mean and variance are over the rows of every rank: per-channel
  float64 sums, sums of squares and counts merged with one differentiable all-reduce (`SumOverRanks`: its
  backward sums the gradients of the statistics over the ranks), running statistics updated as `nn.BatchNorm`
  updates them (momentum, unbiased variance). It holds the very parameters and buffers of the layer it
  replaces, under the same names, so checkpoints keep their keys; `plain_batch_norm` puts the plain layers
  back before the networks are evaluated and saved. torch's own `SyncBatchNorm` does the same on GPUs only.
- `replicate`: a module's DistributedDataParallel replica, its batch norms made global.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from ..compute import is_cuda
from ..distributed import SINGLE, DistributedError, World


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of a global batch of ``total`` rows, this rank's of ``size`` ranks: rank r takes rows
    floor(r T / W) to floor((r + 1) T / W), so the shards in rank order are the batch."""

    start: int
    stop: int
    total: int
    size: int = 1

    @classmethod
    def of(cls, total: int, world: World = SINGLE) -> Shard:
        """This rank's shard of a global batch of ``total`` rows.

        Raises:
            DistributedError: fewer rows than ranks (a rank would have none).
        """
        if total < world.size:
            raise DistributedError(
                f"a batch of {total} rows cannot be split over {world.size} ranks; use fewer ranks or a larger dataset"
            )
        return cls(world.rank * total // world.size, (world.rank + 1) * total // world.size, total, world.size)

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """This shard's rows of ``rows`` (a tensor of the global batch's ``total`` rows)."""
        return rows[self.start : self.stop]

    def normal(self, rng: torch.Generator, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """This shard's rows of a (total, *shape) standard-normal draw from ``rng``, on its device."""
        return self.take(torch.randn(self.total, *shape, generator=rng, device=rng.device, dtype=dtype))

    def uniform(self, rng: torch.Generator, *shape: int) -> torch.Tensor:
        """This shard's rows of a (total, *shape) draw from U[0, 1) from ``rng``, on its device."""
        return self.take(torch.rand(self.total, *shape, generator=rng, device=rng.device))

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """A mean over this shard's rows, weighted so that DistributedDataParallel's average over the ranks is
        the mean over the global batch: x (rows x W / total), 1 when the ranks' shards are equal."""
        weight = (self.stop - self.start) * self.size / self.total
        return loss if weight == 1 else loss * weight


def _summed_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    total = tensor.clone(memory_format=torch.contiguous_format)
    dist.all_reduce(total)
    return total


class SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks (one all-reduce), differentiable: the gradient of each rank's input is
    the sum over the ranks of the output's gradients, since every rank's loss depends on every rank's input.
    (torch.distributed.nn.functional.all_reduce does the same and is deprecated in torch 2.13.)"""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor) -> torch.Tensor:
        return _summed_over_ranks(tensor)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, gradient: torch.Tensor) -> torch.Tensor:
        return _summed_over_ranks(gradient)


class GlobalBatchNorm(_BatchNorm):
    """``norm`` (a `nn.BatchNorm1d`/`2d`/`3d`) with batch statistics over the global batch of every rank: the
    same parameters and buffers (shared, not copied), the same running-statistics update, the same output to
    rounding. In eval mode (running statistics) it is ``norm``'s own computation."""

    def __init__(self, norm: _BatchNorm):
        super().__init__(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
        self._parameters, self._buffers = norm._parameters, norm._buffers
        self.plain_class = type(norm)
        self.train(norm.training)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        self.plain_class._check_input_dim(self, input)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training and self.running_mean is not None:
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        reduced = [0, *range(2, input.dim())]
        values = input.double()
        count = torch.tensor([input.numel() / channels], dtype=torch.float64, device=input.device)
        totals = SumOverRanks.apply(torch.cat([values.sum(reduced), values.square().sum(reduced), count]))
        sums, squares, rows = totals[:channels], totals[channels : 2 * channels], totals[2 * channels]
        mean = sums / rows
        variance = squares / rows - mean.square()
        if self.training and self.running_mean is not None:
            self._update_running_statistics(mean.detach(), variance.detach() * rows / (rows - 1))
        shape = (1, channels, *[1] * (input.dim() - 2))
        scale = torch.rsqrt(variance + self.eps).to(input.dtype).view(shape)
        output = (input - mean.to(input.dtype).view(shape)) * scale
        if self.weight is not None:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output.to(input.dtype)

    @torch.no_grad()
    def _update_running_statistics(self, mean: torch.Tensor, unbiased_variance: torch.Tensor) -> None:
        """As `nn.BatchNorm`: count the batch, then running <- (1 - f) running + f batch, f the momentum (or
        1 / batches seen for momentum None, a cumulative average)."""
        # called only where the layer keeps running statistics (`running_mean` not None)
        assert self.num_batches_tracked is not None and self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_variance.to(self.running_var.dtype), alpha=factor)

    def plain(self) -> _BatchNorm:
        """The plain batch-norm layer holding these parameters and buffers."""
        norm = self.plain_class(self.num_features, self.eps, self.momentum, self.affine, self.track_running_stats)
        norm._parameters, norm._buffers = self._parameters, self._buffers
        return norm.train(self.training)


def _replace_batch_norms(module: nn.Module, replace: Callable[[_BatchNorm], nn.Module | None]) -> nn.Module:
    """``module`` with every batch-norm layer below it replaced by ``replace(layer)`` (None: kept), in place."""
    for name, child in module.named_children():
        replaced = replace(child) if isinstance(child, _BatchNorm) else None
        if replaced is not None:
            setattr(module, name, replaced)
        else:
            _replace_batch_norms(child, replace)
    return module


def global_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with its batch-norm layers made `GlobalBatchNorm`, in place."""
    return _replace_batch_norms(
        module, lambda norm: None if isinstance(norm, GlobalBatchNorm) else GlobalBatchNorm(norm)
    )


def plain_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with its `GlobalBatchNorm` layers made plain batch-norm layers again, in place."""
    return _replace_batch_norms(module, lambda norm: norm.plain() if isinstance(norm, GlobalBatchNorm) else None)


# No broadcast of rank 0's buffers before every forward pass (torch 2.13 names it forward_sync_buffers, older
# versions broadcast_buffers, deprecated since).
_NO_BUFFER_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


def replicate(module: nn.Module, world: World) -> nn.Module:
    """``module`` (its batch norms made global, in place) in a DistributedDataParallel replica on ``world``'s
    device; its buffers need no broadcast, the global batch norms keep them equal on every rank."""
    global_batch_norm(module)
    devices = [world.device] if is_cuda(world.device) else None
    try:
        return DistributedDataParallel(module, device_ids=devices, **_NO_BUFFER_SYNC)
    except dist.DistError as failure:
        raise DistributedError(f"lost the other ranks while replicating the networks: {failure}") from None
