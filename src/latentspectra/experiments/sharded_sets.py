"""The latent sets of a run: Eq. 3's averages (latent/sets.py) shared among the ranks of a sharded run, resumed
after the sets a killed run finished, and told to a progress bar (docs/scale.md).

Block b of a set is computed by rank b mod W: in each round every rank classifies one block, the ranks exchange
one small table (per block, its label counts), and from it every rank makes the same cut in block order, the cut
`latent.sets.collect_label_means` makes in one process, and knows which rows of its own block count; it keeps
float64 sums of those, and one all-reduce at the end merges them. The vectors averaged are therefore the same
whatever W, and the etas agree to float64 rounding of the sums' order (about 1e-16 relative; docs/scale.md).
W = 1 is the same code with collectives that return their argument, and gives the plain loop's etas exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..compute import Network
from ..distributed import SINGLE, World
from ..latent.sets import (
    RARE_HINT,
    LabelMeans,
    LatentBlocks,
    LatentSetError,
    SetCollector,
    accepted_rows,
    check_block,
    check_counts,
    classify_batch,
    draw_cap,
    label_means,
    label_sums,
    shortfall_message,
)
from ..progress import Progress


def _block_row(z: torch.Tensor | None, labels: torch.Tensor | None, num_labels: int) -> torch.Tensor:
    """What a rank tells the others of its block: the count of each label, the block's size (-1: the stream
    ended) and its M; (labels + 2,) int64 on the CPU."""
    if z is None or labels is None:
        return torch.tensor([0] * num_labels + [-1, 0], dtype=torch.int64, device="cpu")
    counts = torch.bincount(labels, minlength=num_labels).cpu()
    return torch.cat([counts, torch.tensor([len(z), z.shape[1]], device="cpu")])


@dataclass
class _Cut:
    """The replicated state of the cut in block order: vectors accepted per label, vectors drawn, M."""

    counts: torch.Tensor
    draws: int = 0
    dim: int | None = None


def _walk_round(
    table: torch.Tensor, cut: _Cut, per_label: int, cap: int, rank: int, description: str
) -> torch.Tensor | None:
    """Advance ``cut`` over one round's blocks in block order (rows of ``table``, `_block_row`s in rank
    order), as the sequential stream would: a block is drawn only while some label is short and fewer than
    ``cap`` vectors were drawn; each label takes from it up to what it still misses. Returns the counts
    before block ``rank`` (which rows of that block are accepted, see `accepted_rows`), or None when that block
    comes after the set is complete.

    Raises:
        LatentSetError: the cap was reached or the stream ended with a label short.
        ValueError: blocks of different M.
    """
    num_labels = len(cut.counts)
    own_before = None
    for row_rank, row in enumerate(table):
        if int(cut.counts.sum()) == num_labels * per_label:
            break
        size, dim = int(row[num_labels]), int(row[num_labels + 1])
        if cut.draws >= cap or size < 0:
            hint = RARE_HINT if cut.draws >= cap else "the stream of latent batches ended"
            raise LatentSetError(shortfall_message(cut.counts, per_label, cut.draws, description, hint))
        if cut.dim is not None and dim != cut.dim:
            raise ValueError(
                f"{description}: latent batches must have shape (B, M) with one M, got M = {dim} after M = {cut.dim}"
            )
        cut.dim = dim
        if row_rank == rank:
            own_before = cut.counts.clone()
        cut.counts += torch.minimum(row[:num_labels], per_label - cut.counts)
        cut.draws += size
    return own_before


def sharded_label_means(
    generator: Network,
    classifier: Network,
    blocks: LatentBlocks,
    num_labels: int,
    per_label: int,
    *,
    max_draws: int | None = None,
    description: str = "latent set",
    world: World = SINGLE,
    progress: Progress | None = None,
) -> LabelMeans:
    """`latent.sets.collect_label_means` with block b computed by rank b mod W of ``world`` (module docstring):
    the same vectors averaged whatever W, the same etas to float64 rounding. ``progress`` is told of every
    accepted vector.

    Raises:
        LatentSetError, ValueError: as `collect_label_means`.
        DistributedError: another rank failed.
    """
    check_counts(num_labels, per_label)
    cap = draw_cap(per_label, num_labels, max_draws)
    cut = _Cut(torch.zeros(num_labels, dtype=torch.int64, device="cpu"))
    sums: torch.Tensor | None = None  # this rank's, on the latents' device: nothing else leaves it in the loop
    start = time.perf_counter()
    with torch.inference_mode():
        for round_index in range(cap + 1):  # every round draws at least one vector, so the cap ends the loop
            z = blocks(world.deal(round_index))
            if z is not None:
                check_block(z, None, description)
            labels = None if z is None else classify_batch(generator, classifier, z, num_labels).to(z.device)
            accepted_before = int(cut.counts.sum())
            table = world.gather(_block_row(z, labels, num_labels), "the label counts")
            own_before = _walk_round(table, cut, per_label, cap, world.rank, description)
            if own_before is not None and z is not None and labels is not None:
                block_sums = label_sums(accepted_rows(labels, own_before.to(z.device), per_label), z)
                sums = block_sums if sums is None else sums + block_sums
            if progress is not None:
                progress.update(int(cut.counts.sum()) - accepted_before)
            if int(cut.counts.sum()) == num_labels * per_label:
                break
        else:  # only empty blocks came
            raise LatentSetError(shortfall_message(cut.counts, per_label, cut.draws, description, RARE_HINT))
    assert cut.dim is not None  # at least one block was taken: per_label >= 1
    local = sums if sums is not None else torch.zeros(num_labels, cut.dim + 1, dtype=torch.float64, device="cpu")
    total = world.sum(local, "the latent sums").cpu()
    return label_means(total, cut.counts.clone(), cut.draws, time.perf_counter() - start)


def run_collector(
    generator: Network,
    classifier: Network,
    num_labels: int,
    per_set: int,
    *,
    max_draws: int | None = None,
    world: World = SINGLE,
    progress: Progress | None = None,
    finished: Sequence[LabelMeans] = (),
    on_set: Callable[[int, LabelMeans], None] | None = None,
) -> SetCollector:
    """The ``collect`` hook of `latent.build_latent_sets` for a run: the first sets from ``finished`` (a resumed
    run; every set has its own random streams, so the later ones do not depend on them), the others by
    `sharded_label_means` over ``world``, each then handed to ``on_set`` (set index, its means); ``progress`` is
    told of every accepted vector, the finished sets' at once."""

    def collect(index: int, blocks: LatentBlocks, description: str) -> LabelMeans:
        if index <= len(finished):
            if progress is not None:
                progress.update(int(finished[index - 1].counts.sum()))
            return finished[index - 1]

        result = sharded_label_means(
            generator,
            classifier,
            blocks,
            num_labels,
            per_set,
            max_draws=max_draws,
            description=description,
            world=world,
            progress=progress,
        )
        if on_set is not None:
            on_set(index, result)
        return result

    return collect
