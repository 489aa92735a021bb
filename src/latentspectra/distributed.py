"""Sharding the sample-heavy work over processes and hosts with torch.distributed (docs/scale.md).

``torchrun`` starts one process (rank) per GPU or CPU share and sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT in each; `open_world` reads them, joins the process group (gloo between CPUs,
NCCL between CUDA GPUs: `compute.collective_backend`) and hands back a `World`. Without torchrun (no
WORLD_SIZE, or 1) it is `SINGLE`, world size 1, and no process group is made: the single-process path is the
same code with collectives that return their argument.

What a `World` offers the layers below it (which never import the CLI):

- ``sum`` and ``gather``: the collectives the mergeable statistics need: a float64 sum-reduce of per-rank
  sums, and an all-gather of small per-rank tables (the per-block label counts of the latent sets);
- ``share``: rank 0's object on every rank (a training state that rank 0 alone read, to resume from);
- ``deal``: which fixed-size blocks of a random stream this rank computes (block b goes to rank b mod W);
- ``check_agreement``: every rank must run the same command (a hash of its arguments, compared);
- ``is_writer``: rank 0 alone writes outputs.

And the sharded batching every study uses (`batched`, `dealt_chunks`, `gathered_batched`, `gathered_chunks`,
`merged_sum`): rows
cut into chunks, chunk b computed by rank b mod W, the outputs gathered in row order or their sums merged, so
that a result does not depend on the number of ranks.

A collective that fails (a rank killed, a host unreachable, the timeout passed) is one `DistributedError`
naming the cause; the command line prefixes each error line of a sharded run with its rank (`rank_label`).
Timeouts: ``LATENTSPECTRA_DIST_TIMEOUT`` seconds (default `DEFAULT_TIMEOUT_SECONDS`) for the rendezvous and
for every collective.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .compute import Network, bind_local_device, collective_backend, is_cuda, resolve_device
from .config import INFERENCE_BATCH_SIZE
from .errors import DistributedError
from .launch import environment_int, launched_size

_T = TypeVar("_T")

TIMEOUT_VARIABLE = "LATENTSPECTRA_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 300.0  # a rank waits this long for the others at the rendezvous and at each collective


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run: ``rank`` of ``size``, ``local_rank`` on its host, and
    ``device``, where collectives run (the GPU under NCCL, the CPU under gloo). ``World()`` is one process
    alone (`SINGLE`), whose collectives return their argument."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes outputs and prints records."""
        return self.rank == 0

    def deal(self, round_index: int) -> int:
        """The block this rank computes in round ``round_index``: blocks are dealt round-robin, block
        b = round x W + rank, so every block is computed by exactly one rank, whatever W."""
        return round_index * self.size + self.rank

    def sum(self, tensor: torch.Tensor, what: str = "a sum") -> torch.Tensor:
        """The float64 sum of ``tensor`` over all ranks (one all-reduce), on ``tensor``'s device.

        Raises:
            DistributedError: another rank failed or did not answer within the timeout.
        """
        total = tensor.to(self.device, torch.float64, copy=True)
        if self.size > 1:
            self._collective(what, dist.all_reduce, total, op=dist.ReduceOp.SUM)
        return total.to(tensor.device)

    def gather(self, tensor: torch.Tensor, what: str = "a table") -> torch.Tensor:
        """(W, *shape): every rank's ``tensor`` (same shape and dtype on all ranks), in rank order, on
        ``tensor``'s device.

        Raises:
            DistributedError: another rank failed or did not answer within the timeout.
        """
        if self.size == 1:
            return tensor[None].clone()
        local = tensor.to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.size)]
        self._collective(what, dist.all_gather, parts, local)
        return torch.stack(parts).to(tensor.device)

    def share(self, value: _T, what: str = "a value") -> _T:
        """Rank 0's ``value`` on every rank (one broadcast of the pickled object; the other ranks' ``value`` is
        ignored): what rank 0 alone read, such as a saved training state.

        Raises:
            DistributedError: another rank failed or did not answer within the timeout.
        """
        if self.size == 1:
            return value
        box: list[Any] = [value if self.is_writer else None]  # rank 0's value comes back
        self._collective(
            what, dist.broadcast_object_list, box, src=0, device=self.device if is_cuda(self.device) else None
        )
        return box[0]

    def barrier(self, what: str = "the start") -> None:
        """Wait until every rank is here (so that a stage's timing starts when all ranks are ready).

        Raises:
            DistributedError: another rank failed or did not answer within the timeout.
        """
        if self.size > 1:
            self._collective(what, dist.barrier)

    def check_agreement(self, arguments: object) -> None:
        """Refuse a run whose ranks were given different arguments: a hash of ``repr(arguments)``
        compared across ranks.

        Raises:
            DistributedError: on every rank, naming the first rank whose arguments differ from rank 0's.
        """
        digest = hashlib.sha256(repr(arguments).encode()).digest()[:8]
        hashes = self.gather(
            torch.tensor(int.from_bytes(digest, "big", signed=True), device="cpu"), "the arguments' hash"
        )
        differing = [rank for rank in range(self.size) if hashes[rank] != hashes[0]]
        if differing:
            raise DistributedError(
                f"rank {differing[0]} was started with other arguments than rank 0; every rank "
                "of a sharded run must run the same command"
            )

    def _collective(self, what: str, operation: Callable[..., object], *args: object, **kwargs: object) -> None:
        try:
            operation(*args, **kwargs)
        except RuntimeError as failure:  # torch.distributed's errors are RuntimeErrors
            raise DistributedError(
                f"lost the other ranks while exchanging {what} (another rank failed or was "
                f"killed, or the timeout passed): {_first_line(failure)}"
            ) from None


SINGLE = World()


def _first_line(failure: Exception) -> str:
    text = str(failure).strip()
    return text.splitlines()[0] if text else type(failure).__name__


def timeout_seconds() -> float:
    """The rendezvous and collective timeout: ``$LATENTSPECTRA_DIST_TIMEOUT`` or `DEFAULT_TIMEOUT_SECONDS`."""
    value = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DistributedError(f"${TIMEOUT_VARIABLE}={value!r}: expected a number of seconds > 0")
    return seconds


@contextmanager
def _native_stderr_held() -> Iterator[None]:
    """Hold what is written to file descriptor 2 during the block and write it out after, unless the block
    fails: c10d logs every failed connection attempt of a rendezvous with a C++ stack trace, which the one
    `DistributedError` line replaces."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                held.seek(0)
                os.write(2, held.read())


@contextmanager
def open_world(device: str | torch.device = "auto", arguments: object = None) -> Iterator[World]:
    """The `World` torchrun's environment describes, its process group open for the block (destroyed after
    it); `SINGLE` where WORLD_SIZE is unset or 1. Under CUDA each rank is bound to GPU LOCAL_RANK first, so
    that ``--device auto`` or ``cuda`` names its own GPU. With ``arguments``, `World.check_agreement`.

    Raises:
        DistributedError: a bad environment, a rendezvous that fails within the timeout, or ranks started
            with different arguments.
        ComputeError: a device this machine lacks.
    """
    size = launched_size()
    if size <= 1:
        yield SINGLE
        return
    rank, local_rank = environment_int("RANK", 0), environment_int("LOCAL_RANK", 0)
    bind_local_device(local_rank)
    backend = collective_backend(resolve_device(device))
    timeout = timedelta(seconds=timeout_seconds())
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        with _native_stderr_held():
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=size, timeout=timeout)
    except (RuntimeError, ValueError) as failure:
        raise DistributedError(
            f"cannot join the other ranks at {where} within "
            f"{timeout.total_seconds():g} s ({backend}): {_first_line(failure)}"
        ) from None
    world = World(rank, size, local_rank, resolve_device(device) if backend == "nccl" else torch.device("cpu"))
    try:
        if arguments is not None:
            world.check_agreement(arguments)
        yield world
    finally:
        dist.destroy_process_group()


# --- Sharded batching: rows dealt over the ranks in chunks, gathered in row order -----------------------------


@torch.inference_mode()
def batched(function: Network, inputs: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> torch.Tensor:
    """``function`` applied to ``inputs`` in batches, without gradients, concatenated."""
    return torch.cat([function(chunk) for chunk in inputs.split(batch_size)])


def dealt_chunks(
    world: World, *tensors: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE
) -> list[tuple[torch.Tensor, ...]]:
    """This rank's chunks of the rows of ``tensors`` (all of one length), each a tuple of their rows: chunk b
    of ``batch_size`` rows is rank b mod W's (one process: every chunk, in order)."""
    return list(zip(*(tensor.split(batch_size) for tensor in tensors)))[world.rank :: world.size]


def gathered_batched(
    function: Network, inputs: torch.Tensor, world: World = SINGLE, batch_size: int = INFERENCE_BATCH_SIZE
) -> torch.Tensor:
    """`batched` as one rank of ``world``: chunk b of ``batch_size`` rows is computed by rank b mod W
    (`dealt_chunks`) and the outputs are gathered on every rank in row order (one all-gather of equal-size
    padded pieces), on the CPU: every row is computed in the same chunk whatever W, so the result is the same
    tensor. One process: `batched`, moved to the CPU.

    Raises:
        DistributedError: another rank failed or did not answer within the timeout.
    """
    if world.size == 1:
        return batched(function, inputs, batch_size).cpu()
    with torch.inference_mode():
        mine = [function(chunk).cpu() for (chunk,) in dealt_chunks(world, inputs, batch_size=batch_size)]
    return gathered_chunks(mine, len(inputs), world, batch_size)


def gathered_chunks(mine: list[torch.Tensor], rows: int, world: World, batch_size: int) -> torch.Tensor:
    """The outputs of every chunk of ``rows`` rows in row order, on the CPU, from this rank's ``mine`` (one output
    per chunk it was dealt, `dealt_chunks`, in order): one all-gather of equal-size padded pieces. One process:
    its outputs concatenated.

    Raises:
        DistributedError: another rank failed or did not answer within the timeout.
    """
    if world.size == 1:
        return torch.cat([output.cpu() for output in mine])
    chunks = -(-rows // batch_size)
    rounds = -(-chunks // world.size)
    example = world.share(None if not mine else (tuple(mine[0].shape[1:]), mine[0].dtype), "the outputs' shape")
    assert example is not None  # rank 0 holds the first chunk
    shape, dtype = example
    padded = torch.zeros(rounds, batch_size, *shape, dtype=dtype)
    for index, output in enumerate(mine):
        padded[index, : len(output)] = output
    pieces = world.gather(padded, "the outputs")  # (W, rounds, batch, ...): chunk b is rank b % W's round b // W
    return pieces.transpose(0, 1).flatten(0, 2)[:rows]


def merged_sum(parts: list[torch.Tensor], world: World, what: str) -> torch.Tensor:
    """The float64 sum, on the CPU, of this rank's ``parts`` (one per chunk, all of one shape) and of every other
    rank's: one all-reduce. A rank without chunks adds zeros of rank 0's shape (rank 0 holds the first chunk)."""
    local = torch.stack([part.cpu().double() for part in parts]).sum(0) if parts else None
    if world.size > 1:
        shape = world.share(None if local is None else tuple(local.shape), f"the shape of {what}")
        if local is None:
            assert shape is not None  # rank 0 holds the first chunk
            local = torch.zeros(shape, dtype=torch.float64)
    assert local is not None  # one process holds every chunk, and there is at least one
    return world.sum(local, what)
