"""Latent sets and their averages eta (paper, Methods steps 4-5, Eq. 3).

For each label alpha and set i, V latent vectors z whose decoded image G(z) the classifier assigns to
alpha are averaged: eta_{alpha,i} = (1/V) sum z (Eq. 3). The vectors come in blocks, either stochastic
encodings E(x) of training images ("encode") or z ~ N(0, I) ("sample"), and only running sums are kept,
so memory is O(block x M + labels x sets x M) whatever V is.

Blocks. Block b of set i is drawn from its own random stream, keyed by (seed, i, b) (`block_generator`), so
any process can draw any block. A set takes, per label, the first V accepted vectors in block order, within a
block in row order (`collect_label_means`, a plain loop). `build_latent_sets` has one hook, ``collect``, for how
a set's blocks become its means: the experiments layer (experiments/sharded_sets.py) shares the blocks among
the ranks of a sharded run, resumes after finished sets and reports progress there, with the same vectors
averaged; nothing here knows of ranks, files or progress bars.

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
from ..errors import LatentspectraError

EncoderSample = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# block index -> latents (B, M); None past the end of a finite stream
LatentBlocks = Callable[[int], "torch.Tensor | None"]
# how a set's blocks become its means: (set index, 1-based; its blocks; its name in errors) -> its `LabelMeans`
SetCollector = Callable[[int, LatentBlocks, str], "LabelMeans"]
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
        square_sums: (labels,) float64, the sum of |z|^2 over the vectors averaged per label (their spread,
            `relative_standard_error`).
    """

    means: torch.Tensor
    counts: torch.Tensor
    draws: int
    seconds: float
    square_sums: torch.Tensor

    def relative_standard_errors(self) -> torch.Tensor:
        """Per label, the standard error of its eta relative to the eta's length: sqrt(tr S / V) / |eta|, S the
        sample covariance of the V vectors averaged (so the expected length of eta's error, over |eta|)."""
        count = self.counts.to(torch.float64)
        spread = (self.square_sums - count * self.means.square().sum(1)).clamp(min=0) / (count - 1).clamp(min=1)
        return (spread / count).sqrt() / self.means.norm(dim=1)

    def relative_standard_error(self) -> float:
        """The largest of `relative_standard_errors`: how far the least settled eta of the set may still move."""
        return float(self.relative_standard_errors().max())


def accepted_rows(labels: torch.Tensor, counts: torch.Tensor, per_label: int) -> torch.Tensor:
    """(B, labels) 0/1 matrix: entry (b, l) is 1 when z_b has label l and is among the first vectors of
    label l that bring its count up to ``per_label`` (earlier entries of the batch first)."""
    one_hot = torch.nn.functional.one_hot(labels, len(counts))
    return one_hot * (counts + one_hot.cumsum(0) <= per_label)


RARE_HINT = "too few latents decode to these labels (raise max_draws or lower the vectors per set)"


def shortfall_message(counts: torch.Tensor, per_label: int, draws: int, description: str, hint: str) -> str:
    short = [
        f"label {label} has {count} of {per_label}" for label, count in enumerate(counts.tolist()) if count < per_label
    ]
    return f"{description}: after {draws} draws " + ", ".join(short) + f"; {hint}"


def classify_batch(generator: Network, classifier: Network, z: torch.Tensor, num_labels: int) -> torch.Tensor:
    logits = classifier(generator(z))
    if logits.ndim != 2 or logits.shape != (len(z), num_labels):
        raise ValueError(
            f"classifier must return logits of shape ({len(z)}, {num_labels}) for {len(z)} latents, "
            f"got {tuple(logits.shape)}"
        )
    return logits.argmax(1)


def as_blocks(latents: LatentBlocks | Iterator[torch.Tensor]) -> LatentBlocks:
    """``latents`` as a block function; an iterator is asked for blocks 0, 1, 2, ... in order."""
    if callable(latents):
        return latents
    return lambda index: next(latents, None)


def check_block(z: torch.Tensor, dim: int | None, description: str) -> int:
    """M of the latent batch ``z``, which must be (B, M) with the M of the batches before (``dim``, None at the
    first)."""
    if z.ndim != 2 or (dim is not None and z.shape[1] != dim):
        got = tuple(z.shape) if z.ndim != 2 else f"M = {z.shape[1]} after M = {dim}"
        raise ValueError(f"{description}: latent batches must have shape (B, M) with one M, got {got}")
    return z.shape[1]


def collect_label_means(
    generator: Network,
    classifier: Network,
    latents: LatentBlocks | Iterator[torch.Tensor],
    num_labels: int,
    per_label: int,
    *,
    max_draws: int | None = None,
    description: str = "latent set",
) -> LabelMeans:
    """Average ``per_label`` latent vectors per label, the label being classifier(generator(z)).argmax (Eq. 3):
    eta_alpha = (1/V) sum of the first V vectors z drawn whose G(z) C assigns to alpha.

    ``latents`` gives the batches: a block function (index -> (B, M), e.g. `sample_blocks`) or an iterator of
    batches, taken in order. Per label the first ``per_label`` vectors are averaged, later ones discarded, so
    each mean is over exactly ``per_label`` vectors. One generator and one classifier call per block, under
    torch.inference_mode; each block's sums are one matmul in the latents' dtype, accumulated across blocks in
    float64 (experiments/sharded_sets.py does the same sums over the ranks of a sharded run).

    Args:
        max_draws: stop once this many vectors have been drawn (checked before each block); defaults to
            50 x per_label x num_labels.
        description: names the set in errors.

    Raises:
        LatentSetError: the cap was reached (or a finite ``latents`` ran out) first; names each short
            label and how many vectors it has.
        ValueError: bad arguments or latents / logits of the wrong shape.
    """
    check_counts(num_labels, per_label)
    cap = draw_cap(per_label, num_labels, max_draws)
    blocks = as_blocks(latents)
    counts = torch.zeros(num_labels, dtype=torch.int64, device="cpu")
    sums, draws, dim = None, 0, None
    start = time.perf_counter()
    with torch.inference_mode():
        for index in range(cap + 1):  # every block but an empty one draws a vector, so the cap ends the loop
            if int(counts.sum()) == num_labels * per_label:
                break
            z = blocks(index) if draws < cap else None
            if z is None:
                hint = RARE_HINT if draws >= cap else "the stream of latent batches ended"
                raise LatentSetError(shortfall_message(counts, per_label, draws, description, hint))
            dim = check_block(z, dim, description)
            labels = classify_batch(generator, classifier, z, num_labels).to(z.device)
            accepted = accepted_rows(labels, counts.to(z.device), per_label)
            block_sums = label_sums(accepted, z)
            sums = block_sums if sums is None else sums + block_sums
            counts += accepted.sum(0).cpu()
            draws += len(z)
        else:  # only empty blocks came
            raise LatentSetError(shortfall_message(counts, per_label, draws, description, RARE_HINT))
    assert sums is not None  # at least one block was taken: per_label >= 1
    return label_means(sums.cpu(), counts, draws, time.perf_counter() - start)


def label_sums(accepted: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(labels, M + 1) float64: per label, the sum of the accepted rows of ``z`` and of their |z|^2 (one matmul,
    in the latents' dtype)."""
    rows = torch.cat([z, z.square().sum(1, keepdim=True)], 1)
    return (accepted.to(z.dtype).T @ rows).to(torch.float64)


def label_means(sums: torch.Tensor, counts: torch.Tensor, draws: int, seconds: float) -> LabelMeans:
    """`LabelMeans` from `label_sums` added over the blocks (computed outside inference mode, so that the means
    are ordinary tensors, on the CPU where the basis is built)."""
    return LabelMeans(sums[:, :-1] / counts[:, None], counts, draws, seconds, sums[:, -1].clone())


def check_counts(num_labels: int, per_label: int) -> None:
    if num_labels < 1 or per_label < 1:
        raise ValueError(f"collect_label_means: num_labels and per_label must be >= 1, got {num_labels}, {per_label}")


def draw_cap(per_label: int, num_labels: int, max_draws: int | None) -> int:
    """The most vectors a set draws: ``max_draws``, or 50 x per_label x num_labels."""
    return DRAWS_PER_VECTOR * per_label * num_labels if max_draws is None else max_draws


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
        relative_standard_errors: each set's `LabelMeans.relative_standard_error` (its least settled eta).
    """

    etas: torch.Tensor
    labels: torch.Tensor
    sets: torch.Tensor
    sources: tuple[str, ...]
    per_set: int
    draws: tuple[int, ...]
    seconds: float
    relative_standard_errors: tuple[float, ...]

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
            "relative_standard_error_per_set": list(self.relative_standard_errors),
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
    device: torch.device | str = "cpu",
    collect: SetCollector | None = None,
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
        device: where latents are drawn and encoded images are kept (the networks' device); the random
            streams are generators on that device, so the etas depend on it. The etas come back on the CPU.
        collect: how set i's blocks become its means, ``collect(i, blocks, description)`` (default:
            `collect_label_means` with V and ``max_draws``); the experiments layer's shares them among ranks,
            resumes and reports progress (experiments/sharded_sets.py).

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
    if collect is None:

        def collect(index: int, blocks: LatentBlocks, description: str) -> LabelMeans:
            return collect_label_means(
                generator, classifier, blocks, num_labels, per_set, max_draws=max_draws, description=description
            )

    found = []
    start = time.perf_counter()
    for index, source in enumerate(sources, start=1):
        if source == "encode":
            assert encoder_sample is not None and images is not None  # _check_sources refuses "encode" without them
            blocks = encode_blocks(encoder_sample, images, batch_size, seed, index)
        else:
            blocks = sample_blocks(latent_dim, batch_size, seed, index, device)
        result = collect(index, blocks, f"set {index}/{num_sets} ({source})")
        if result.means.shape[1] != latent_dim:
            raise ValueError(
                f"set {index} ({source}): latents have dimension {result.means.shape[1]}, expected M = {latent_dim}"
            )
        found.append(result)
    set_index = torch.arange(1, num_sets + 1, device="cpu").repeat_interleave(num_labels)
    labels = torch.arange(num_labels, device="cpu").repeat(num_sets)
    return LatentSets(
        torch.cat([result.means for result in found]),
        labels,
        set_index,
        sources,
        per_set,
        tuple(result.draws for result in found),
        time.perf_counter() - start,
        tuple(result.relative_standard_error() for result in found),
    )
