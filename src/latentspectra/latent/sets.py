"""Latent sets and their averages eta (paper, Methods steps 4-5, Eq. 3).

For each label alpha and set i, V latent vectors z whose decoded image G(z) the classifier assigns to
alpha are averaged: eta_{alpha,i} = (1/V) sum z (Eq. 3). The vectors come in blocks, either stochastic
encodings E(x) of training images ("encode") or z ~ N(0, I) ("sample"), and only running sums are kept,
so memory is O(block x M + labels x sets x M) whatever V is.

Blocks and ranks (docs/scale.md). Block b of set i is drawn from its own random stream, keyed by (seed, i, b)
(`block_generator`), so any process can draw any block. A set takes, per label, the first V accepted vectors
in block order, within a block in row order. Under a `World` of W ranks, block b is computed by rank
b mod W: in each round every rank classifies one block, the ranks exchange one small table (per block, its
label counts), and from it every rank makes the same cut in block order and knows which rows of its own
block count; it keeps float64 sums of those, and one all-reduce at the end merges them. The vectors averaged
are therefore the same whatever W, and the etas agree to float64 rounding of the sums' order (about 1e-16
relative; docs/scale.md). W = 1 is the same code with collectives that return their argument.

Any latent dimension M and number of labels l with M >= l: there are n = floor(M / l) sets per label,
hence n l etas. When l does not divide M, the r = M - n l directions that no eta spans are completed by
`QuasiEigenBasis.from_etas` with an orthonormal basis of the orthogonal complement of the etas' span; they
carry no label (label `UNLABELLED` = -1, set `UNLABELLED_SET` = 0, in `latent.basis`) and come last in the
basis (`LatentSets.unlabelled_directions` is r). M < l, not even one set per label, is a ValueError.

Works with any callables: ``generator(z) -> images``, ``classifier(images) -> logits (N, labels)`` and
``encoder_sample(images, rng) -> z``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..compute import Network
from ..config import INFERENCE_BATCH_SIZE
from ..distributed import SINGLE, World
from ..errors import LatentspectraError
from ..progress import Progress

EncoderSample = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# block index -> latents (B, M); None past the end of a finite stream
LatentBlocks = Callable[[int], "torch.Tensor | None"]
SOURCES = ("encode", "sample")
DRAWS_PER_VECTOR = 50  # default sample cap: 50 draws per requested vector


class LatentSetError(LatentspectraError, RuntimeError):
    """A latent set could not be filled: some label was too rare before the sample cap."""


def block_generator(seed: int, stream: int, block: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The random stream of block ``block`` of stream ``stream`` (a set's index), on ``device``: seeded from
    (seed, stream, block) through numpy's SeedSequence, so a block's draws depend on nothing drawn before it
    and any rank can draw any block."""
    high, low = np.random.SeedSequence([seed, stream, block]).generate_state(2, np.uint32)
    return torch.Generator(device=device).manual_seed(int(high) << 32 | int(low))


def sample_blocks(
    latent_dim: int, block_size: int, seed: int, stream: int = 0, device: torch.device | str = "cpu"
) -> LatentBlocks:
    """Block b: z ~ N(0, I_M), shape (block_size, latent_dim), drawn on ``device`` from
    `block_generator` (seed, stream, b)."""

    def block(index: int) -> torch.Tensor:
        rng = block_generator(seed, stream, index, device)
        return torch.randn(block_size, latent_dim, generator=rng, device=rng.device)

    return block


def encode_blocks(
    encoder_sample: EncoderSample, images: torch.Tensor, block_size: int, seed: int, stream: int = 0
) -> LatentBlocks:
    """Block b: stochastic encodings of chunk b mod c of ``images`` (c chunks of ``block_size``, in order, so
    blocks run through the images epoch after epoch), with noise from `block_generator` (seed, stream, b) on
    the images' device: a later epoch gives fresh encodings."""
    if len(images) == 0:
        raise ValueError("encode_blocks: no images to encode")
    chunks = images.split(block_size)

    def block(index: int) -> torch.Tensor:
        return encoder_sample(chunks[index % len(chunks)], block_generator(seed, stream, index, images.device))

    return block


@dataclass(frozen=True)
class LabelMeans:
    """The outcome of `collect_label_means`: one average per label.

    Attributes:
        means: (labels, M) float64, the average of exactly ``per_label`` accepted vectors per label.
        counts: (labels,) int64, vectors averaged per label (all equal to ``per_label``).
        draws: latent vectors drawn, accepted or not.
        seconds: wall-clock time.
    """

    means: torch.Tensor
    counts: torch.Tensor
    draws: int
    seconds: float


def _accepted(labels: torch.Tensor, counts: torch.Tensor, per_label: int) -> torch.Tensor:
    """(B, labels) 0/1 matrix: entry (b, l) is 1 when z_b has label l and is among the first vectors of
    label l that bring its count up to ``per_label`` (earlier entries of the batch first)."""
    one_hot = torch.nn.functional.one_hot(labels, len(counts))
    return one_hot * (counts + one_hot.cumsum(0) <= per_label)


RARE_HINT = "too few latents decode to these labels (raise max_draws or lower the vectors per set)"


def _shortfall_message(counts: torch.Tensor, per_label: int, draws: int, description: str, hint: str) -> str:
    short = [
        f"label {label} has {count} of {per_label}" for label, count in enumerate(counts.tolist()) if count < per_label
    ]
    return f"{description}: after {draws} draws " + ", ".join(short) + f"; {hint}"


def _classify_batch(generator: Network, classifier: Network, z: torch.Tensor, num_labels: int) -> torch.Tensor:
    logits = classifier(generator(z))
    if logits.ndim != 2 or logits.shape != (len(z), num_labels):
        raise ValueError(
            f"classifier must return logits of shape ({len(z)}, {num_labels}) for {len(z)} latents, "
            f"got {tuple(logits.shape)}"
        )
    return logits.argmax(1)


def _as_blocks(latents: LatentBlocks | Iterator[torch.Tensor], world: World) -> LatentBlocks:
    """``latents`` as a block function; an iterator serves one process, which asks for blocks 0, 1, 2, ...
    in order."""
    if callable(latents):
        return latents
    if world.size > 1:
        raise ValueError(
            "collect_label_means: a sharded run needs its latents as blocks (index -> batch), so that "
            "each rank can draw its own; got an iterator"
        )
    return lambda index: next(latents, None)


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
    before block ``rank`` (which rows of that block are accepted, see `_accepted`), or None when that block
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
            raise LatentSetError(_shortfall_message(cut.counts, per_label, cut.draws, description, hint))
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


def collect_label_means(
    generator: Network,
    classifier: Network,
    latents: LatentBlocks | Iterator[torch.Tensor],
    num_labels: int,
    per_label: int,
    *,
    max_draws: int | None = None,
    progress: Progress | None = None,
    description: str = "latent set",
    world: World = SINGLE,
) -> LabelMeans:
    """Average ``per_label`` latent vectors per label, the label being classifier(generator(z)).argmax (Eq. 3).

    ``latents`` gives the batches: a block function (index -> (B, M), e.g. `sample_blocks`) or, in one
    process, an iterator of batches. Per label the first ``per_label`` vectors in block order are averaged,
    later ones discarded, so each mean is over exactly ``per_label`` vectors. One generator and one
    classifier call per block, under torch.inference_mode; each block's sums are one matmul in the latents'
    dtype, accumulated across blocks in float64. Under a ``world`` of W ranks block b is computed by rank
    b mod W (see the module's docstring): the means are the same vectors' whatever W, summed in another order.

    Args:
        max_draws: stop once this many vectors have been drawn in block order (checked before each block);
            defaults to 50 x per_label x num_labels.
        progress: told of every accepted vector (`progress.update`).
        description: names the set in errors.
        world: the ranks sharing the work (default: this process alone).

    Raises:
        LatentSetError: the cap was reached (or a finite ``latents`` ran out) first; names each short
            label and how many vectors it has.
        ValueError: bad arguments or latents / logits of the wrong shape.
        DistributedError: another rank failed.
    """
    if num_labels < 1 or per_label < 1:
        raise ValueError(f"collect_label_means: num_labels and per_label must be >= 1, got {num_labels}, {per_label}")
    cap = DRAWS_PER_VECTOR * per_label * num_labels if max_draws is None else max_draws
    blocks = _as_blocks(latents, world)
    cut = _Cut(torch.zeros(num_labels, dtype=torch.int64, device="cpu"))
    sums: torch.Tensor | None = None  # this rank's, on the latents' device: nothing else leaves it in the loop
    start = time.perf_counter()
    with torch.inference_mode():
        for round_index in range(cap + 1):  # every round draws at least one vector, so the cap ends the loop
            z = blocks(world.deal(round_index))
            if z is not None and z.ndim != 2:
                raise ValueError(
                    f"{description}: latent batches must have shape (B, M) with one M, got {tuple(z.shape)}"
                )
            labels = None if z is None else _classify_batch(generator, classifier, z, num_labels).to(z.device)
            accepted_before = int(cut.counts.sum())
            own_before = _walk_round(
                world.gather(_block_row(z, labels, num_labels), "the label counts"),
                cut,
                per_label,
                cap,
                world.rank,
                description,
            )
            if own_before is not None and z is not None and labels is not None:
                accepted = _accepted(labels, own_before.to(z.device), per_label)
                block_sums = (accepted.to(z.dtype).T @ z).to(torch.float64)  # one matmul: the block's sums per label
                sums = block_sums if sums is None else sums + block_sums
            if progress is not None:
                progress.update(int(cut.counts.sum()) - accepted_before)
            if int(cut.counts.sum()) == num_labels * per_label:
                break
        else:  # only empty blocks came
            raise LatentSetError(_shortfall_message(cut.counts, per_label, cut.draws, description, RARE_HINT))
    assert cut.dim is not None  # at least one block was taken: per_label >= 1
    local = sums if sums is not None else torch.zeros(num_labels, cut.dim, dtype=torch.float64, device="cpu")
    total = world.sum(local, "the latent sums").cpu()
    # computed outside inference mode, so the means are ordinary tensors, on the CPU, where the basis is built
    return LabelMeans(total / cut.counts[:, None], cut.counts.clone(), cut.draws, time.perf_counter() - start)


@dataclass(frozen=True)
class LatentSets:
    """All l x n latent averages, in the Gram-Schmidt order of Eq. 5 (every label of set 1, then set 2, ...),
    n = floor(M / l).

    Attributes:
        etas: (l n, M) float64, l n <= M; row (i - 1) l + alpha is eta_{alpha, i}.
        labels: (l n,) int64, alpha of each row.
        sets: (l n,) int64, the set index i of each row, 1-based as in the paper.
        sources: "encode" or "sample" for each set.
        per_set: V, the vectors averaged in every eta.
        draws: latent vectors drawn for each set, accepted or not, in block order up to the block that
            completed it (a sharded run computes up to W - 1 more blocks, unused).
        seconds: wall-clock time for all sets.
    """

    etas: torch.Tensor
    labels: torch.Tensor
    sets: torch.Tensor
    sources: tuple[str, ...]
    per_set: int
    draws: tuple[int, ...]
    seconds: float

    @property
    def unlabelled_directions(self) -> int:
        """r = M - n l, the directions no eta spans, which `QuasiEigenBasis.from_etas` completes without a label
        (0 when l divides M)."""
        return self.etas.shape[1] - len(self.etas)

    @property
    def samples_drawn(self) -> int:
        return sum(self.draws)

    @property
    def samples_per_second(self) -> float:
        """Latent vectors drawn and classified per second (encoder, generator and classifier included)."""
        return self.samples_drawn / self.seconds if self.seconds > 0 else float("inf")

    def stats(self) -> dict[str, Any]:
        """JSON-ready summary: counts, sources, timing and throughput."""
        return {
            "per_set": self.per_set,
            "sets": len(self.sources),
            "labels": int(self.labels.max()) + 1,
            "unlabelled_directions": self.unlabelled_directions,
            "sources": list(self.sources),
            "draws_per_set": list(self.draws),
            "samples_drawn": self.samples_drawn,
            "accepted": self.per_set * len(self.labels),
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }


def default_sources(num_sets: int, first_set: str = "encode") -> tuple[str, ...]:
    """The paper's choice: set 1 from ``first_set`` (encoding the training set), sets 2..n sampled."""
    return (first_set,) + ("sample",) * (num_sets - 1)


def _check_sources(
    sources: Sequence[str], num_sets: int, encoder_sample: EncoderSample | None, images: torch.Tensor | None
) -> tuple[str, ...]:
    sources = tuple(sources)
    if len(sources) != num_sets:
        raise ValueError(f"need one source per set: {num_sets} sets, got {len(sources)} sources {sources}")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown latent sources {unknown}; allowed: {list(SOURCES)}")
    if "encode" in sources and (encoder_sample is None or images is None):
        raise ValueError('source "encode" needs encoder_sample and images')
    return sources


def build_latent_sets(
    generator: Network,
    classifier: Network,
    *,
    latent_dim: int,
    num_labels: int,
    per_set: int = 5000,
    encoder_sample: EncoderSample | None = None,
    images: torch.Tensor | None = None,
    sources: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = INFERENCE_BATCH_SIZE,
    max_draws: int | None = None,
    progress: Progress | None = None,
    device: torch.device | str = "cpu",
    world: World = SINGLE,
    finished: Sequence[LabelMeans] = (),
    on_set: Callable[[int, LabelMeans], None] | None = None,
) -> LatentSets:
    """Build the n = floor(M / l) latent sets per label and their averages (Methods steps 4-5, Eq. 3).

    Any M >= l: when l does not divide M, the n l etas span n l of the M directions and
    `QuasiEigenBasis.from_etas` completes the other r = M - n l without a label
    (`LatentSets.unlabelled_directions`).

    Args:
        latent_dim: M.
        num_labels: l, the number of classifier outputs.
        per_set: V, vectors averaged per label and set.
        encoder_sample, images: the encoder ``encoder_sample(images, rng) -> z`` and the (training)
            images it encodes, needed by "encode" sets; images are visited in order, epoch after epoch
            with fresh encodings, until every label has V vectors.
        sources: "encode" or "sample" for each of the n sets; default: set 1 "encode", the rest "sample"
            (the paper's choice), or all "sample" when no encoder is given.
        seed: keys the random stream of every block (`block_generator` (seed, set, block)), sampling and
            encoding noise alike: same seed and batch size, same etas.
        batch_size: the block size B: latents per network call and per block of the random streams.
        max_draws: per-set cap on drawn vectors (default 50 x V x l), see `collect_label_means`.
        progress: given the total (n l V accepted vectors) and told of every accepted vector.
        device: where latents are drawn and encoded images are kept (the networks' device); the random
            streams are generators on that device, so the etas depend on it. The etas come back on the CPU.
        world: the ranks sharing the work (`distributed.open_world`; default this process alone): the
            same etas whatever their number, to float64 rounding (see `collect_label_means`).
        finished: the first sets, already built with these arguments (a resumed run): taken as they are.
        on_set: called with (set index, its `LabelMeans`) after each set built here.

    Raises:
        ValueError: l < 1 or M < l (not even one set per label), bad sources, or missing encoder / images.
        LatentSetError: a label too rare to fill a set before the cap.
    """
    if num_labels < 1 or latent_dim < num_labels:
        raise ValueError(
            f"build_latent_sets: need M >= l >= 1 (n = floor(M / l) latent sets per label), got latent "
            f"dimension M = {latent_dim} and l = {num_labels} labels"
        )
    num_sets = latent_dim // num_labels
    if sources is None:
        sources = default_sources(num_sets, "encode" if encoder_sample is not None else "sample")
    sources = _check_sources(sources, num_sets, encoder_sample, images)
    if images is not None:
        images = images.to(device)
    means, draws = [], []
    if progress is not None:
        progress.reset(total=num_sets * num_labels * per_set)
    world.barrier("the start of the latent sets")  # the seconds count from when every rank is ready
    start = time.perf_counter()
    for index, source in enumerate(sources, start=1):
        if index <= len(finished):  # every set has its own random streams: the later ones do not depend on it
            means.append(finished[index - 1].means)
            draws.append(finished[index - 1].draws)
            if progress is not None:
                progress.update(num_labels * per_set)
            continue
        if source == "encode":
            assert encoder_sample is not None and images is not None  # _check_sources refuses "encode" without them
            blocks = encode_blocks(encoder_sample, images, batch_size, seed, index)
        else:
            blocks = sample_blocks(latent_dim, batch_size, seed, index, device)
        result = collect_label_means(
            generator,
            classifier,
            blocks,
            num_labels,
            per_set,
            max_draws=max_draws,
            progress=progress,
            description=f"set {index}/{num_sets} ({source})",
            world=world,
        )
        if result.means.shape[1] != latent_dim:
            raise ValueError(
                f"set {index} ({source}): latents have dimension {result.means.shape[1]}, expected M = {latent_dim}"
            )
        means.append(result.means)
        draws.append(result.draws)
        if on_set is not None:
            on_set(index, result)
    set_index = torch.arange(1, num_sets + 1, device="cpu").repeat_interleave(num_labels)
    labels = torch.arange(num_labels, device="cpu").repeat(num_sets)
    return LatentSets(torch.cat(means), labels, set_index, sources, per_set, tuple(draws), time.perf_counter() - start)
