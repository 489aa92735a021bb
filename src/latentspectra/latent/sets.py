"""Latent sets and their averages eta (paper, Methods steps 4-5, Eq. 3).

For each label alpha and set i, V latent vectors z whose decoded image G(z) the classifier assigns to
alpha are averaged: eta_{alpha,i} = (1/V) sum z (Eq. 3). The vectors come from a stream of batches,
either stochastic encodings E(x) of training images ("encode") or z ~ N(0, I) ("sample"), and only
running sums are kept, so memory is O(batch x M + labels x sets x M) whatever V is.

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

import torch

from ..config import INFERENCE_BATCH_SIZE
from ..errors import LatentspectraError
from ..progress import Progress

Network = Callable[[torch.Tensor], torch.Tensor]
EncoderSample = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
SOURCES = ("encode", "sample")
DRAWS_PER_VECTOR = 50  # default sample cap: 50 draws per requested vector


class LatentSetError(LatentspectraError, RuntimeError):
    """A latent set could not be filled: some label was too rare before the sample cap."""


def sample_latents(latent_dim: int, batch_size: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of z ~ N(0, I_M), shape (batch_size, latent_dim), drawn from ``rng`` on its device."""
    while True:
        yield torch.randn(batch_size, latent_dim, generator=rng, device=rng.device)


def encode_latents(encoder_sample: EncoderSample, images: torch.Tensor, batch_size: int,
                   rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of stochastic encodings of ``images``, in order, epoch after epoch.

    Each epoch draws fresh noise from ``rng``, so a second pass gives new latent vectors.
    """
    if len(images) == 0:
        raise ValueError("encode_latents: no images to encode")
    while True:
        for chunk in images.split(batch_size):
            yield encoder_sample(chunk, rng)


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


def _shortfall_message(counts: torch.Tensor | None, num_labels: int, per_label: int, draws: int, description: str,
                       hint: str) -> str:
    counts_list = [0] * num_labels if counts is None else counts.tolist()
    short = [f"label {label} has {count} of {per_label}" for label, count in enumerate(counts_list) if count < per_label]
    return f"{description}: after {draws} draws " + ", ".join(short) + f"; {hint}"


def _classify_batch(generator: Network, classifier: Network, z: torch.Tensor, num_labels: int) -> torch.Tensor:
    logits = classifier(generator(z))
    if logits.ndim != 2 or logits.shape != (len(z), num_labels):
        raise ValueError(f"classifier must return logits of shape ({len(z)}, {num_labels}) for {len(z)} latents, "
                         f"got {tuple(logits.shape)}")
    return logits.argmax(1)


def collect_label_means(generator: Network, classifier: Network, latents: Iterator[torch.Tensor], num_labels: int,
                        per_label: int, *, max_draws: int | None = None, progress: Progress | None = None,
                        description: str = "latent set") -> LabelMeans:
    """Average ``per_label`` latent vectors per label, the label being classifier(generator(z)).argmax (Eq. 3).

    Consumes batches from ``latents`` (each (B, M)) until every label has ``per_label`` vectors; vectors
    beyond that for a label are discarded, so each mean is over exactly ``per_label`` vectors. One
    generator and one classifier call per batch, under torch.inference_mode; each batch's sums are one
    matmul in the latents' dtype, accumulated across batches in float64.

    Args:
        max_draws: stop once this many vectors have been drawn (checked before each batch); defaults to
            50 x per_label x num_labels.
        progress: told of every accepted vector (`progress.update`).
        description: names the set in errors.

    Raises:
        LatentSetError: the cap was reached (or a finite ``latents`` ran out) first; names each short
            label and how many vectors it has.
        ValueError: bad arguments or latents / logits of the wrong shape.
    """
    if num_labels < 1 or per_label < 1:
        raise ValueError(f"collect_label_means: num_labels and per_label must be >= 1, got {num_labels}, {per_label}")
    cap = DRAWS_PER_VECTOR * per_label * num_labels if max_draws is None else max_draws
    counts: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    missing = num_labels * per_label  # vectors still to accept: the loop's one read back from the device
    draws = 0
    start = time.perf_counter()
    with torch.inference_mode():
        while missing:
            if draws >= cap:
                raise LatentSetError(_shortfall_message(counts, num_labels, per_label, draws, description, RARE_HINT))
            z = next(latents, None)
            if z is None:
                raise LatentSetError(_shortfall_message(counts, num_labels, per_label, draws, description,
                                                        "the stream of latent batches ended"))
            if z.ndim != 2 or (sums is not None and z.shape[1] != sums.shape[1]):
                raise ValueError(f"{description}: latent batches must have shape (B, M) with one M, "
                                 f"got {tuple(z.shape)}")
            if sums is None or counts is None:  # on the latents' device: nothing leaves it inside the loop
                sums = torch.zeros(num_labels, z.shape[1], dtype=torch.float64, device=z.device)
                counts = torch.zeros(num_labels, dtype=torch.int64, device=z.device)
            accepted = _accepted(_classify_batch(generator, classifier, z, num_labels).to(z.device), counts,
                                 per_label)
            sums += (accepted.to(z.dtype).T @ z).to(torch.float64)  # one matmul: the batch's sums per label
            counts += accepted.sum(0)
            draws += len(z)
            still_missing = int((per_label - counts).sum())
            if progress is not None:
                progress.update(missing - still_missing)
            missing = still_missing
    assert sums is not None and counts is not None  # the loop ran at least once: per_label >= 1
    # computed outside inference mode, so the means are ordinary tensors; moved to the CPU, where the basis is built
    return LabelMeans((sums / counts[:, None]).cpu(), counts.cpu(), draws, time.perf_counter() - start)


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
        draws: latent vectors drawn for each set, accepted or not.
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


def _check_sources(sources: Sequence[str], num_sets: int, encoder_sample: EncoderSample | None,
                   images: torch.Tensor | None) -> tuple[str, ...]:
    sources = tuple(sources)
    if len(sources) != num_sets:
        raise ValueError(f"need one source per set: {num_sets} sets, got {len(sources)} sources {sources}")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown latent sources {unknown}; allowed: {list(SOURCES)}")
    if "encode" in sources and (encoder_sample is None or images is None):
        raise ValueError('source "encode" needs encoder_sample and images')
    return sources


def build_latent_sets(generator: Network, classifier: Network, *, latent_dim: int, num_labels: int,
                      per_set: int = 5000, encoder_sample: EncoderSample | None = None,
                      images: torch.Tensor | None = None, sources: Sequence[str] | None = None, seed: int = 0,
                      batch_size: int = INFERENCE_BATCH_SIZE, max_draws: int | None = None,
                      progress: Progress | None = None, device: torch.device | str = "cpu") -> LatentSets:
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
        seed: seeds the torch.Generator behind all sampling and encoding noise: same seed, same etas.
        max_draws: per-set cap on drawn vectors (default 50 x V x l), see `collect_label_means`.
        progress: given the total (n l V accepted vectors) and told of every accepted vector.
        device: where latents are drawn and encoded images are kept (the networks' device); the random
            stream is a generator on that device, so the etas depend on it. The etas come back on the CPU.

    Raises:
        ValueError: l < 1 or M < l (not even one set per label), bad sources, or missing encoder / images.
        LatentSetError: a label too rare to fill a set before the cap.
    """
    if num_labels < 1 or latent_dim < num_labels:
        raise ValueError(f"build_latent_sets: need M >= l >= 1 (n = floor(M / l) latent sets per label), got latent "
                         f"dimension M = {latent_dim} and l = {num_labels} labels")
    num_sets = latent_dim // num_labels
    if sources is None:
        sources = default_sources(num_sets, "encode" if encoder_sample is not None else "sample")
    sources = _check_sources(sources, num_sets, encoder_sample, images)
    rng = torch.Generator(device=device).manual_seed(seed)
    if images is not None:
        images = images.to(rng.device)
    means, draws = [], []
    if progress is not None:
        progress.reset(total=num_sets * num_labels * per_set)
    start = time.perf_counter()
    for index, source in enumerate(sources, start=1):
        if source == "encode":
            latents = encode_latents(encoder_sample, images, batch_size, rng)
        else:
            latents = sample_latents(latent_dim, batch_size, rng)
        result = collect_label_means(generator, classifier, latents, num_labels, per_set, max_draws=max_draws,
                                     progress=progress, description=f"set {index}/{num_sets} ({source})")
        if result.means.shape[1] != latent_dim:
            raise ValueError(f"set {index} ({source}): latents have dimension {result.means.shape[1]}, "
                             f"expected M = {latent_dim}")
        means.append(result.means)
        draws.append(result.draws)
    set_index = torch.arange(1, num_sets + 1, device="cpu").repeat_interleave(num_labels)
    labels = torch.arange(num_labels, device="cpu").repeat(num_sets)
    return LatentSets(torch.cat(means), labels, set_index, sources, per_set,
                      tuple(draws), time.perf_counter() - start)
