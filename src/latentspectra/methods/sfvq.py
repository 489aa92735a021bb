"""Space-filling vector quantization (SFVQ): a piecewise-linear curve through an ordered codebook.

Vali & Bäckström, "Interpretable Latent Space Using Space-Filling Curves for Phonetic Analysis in Voice
Conversion", Interspeech 2023 (the quantizer), and "Unsupervised Panoptic Interpretation of Latent Spaces
in GANs Using Space-Filling Vector Quantization", arXiv 2410.20573, 2024 (its use on generator latents).

A vector x is quantized to the nearest point of the curve through c_1..c_K in order, i.e. of any segment
[c_k, c_k+1] (not only the nearest corner):

    q(x) = c_k + t (c_k+1 - c_k),  t = clamp(<x - c_k, c_k+1 - c_k> / |c_k+1 - c_k|^2, 0, 1),

with k the segment of smallest |x - q(x)|. Training follows the authors' generic quantizer: the codebook
starts as the means of the data split into quantiles by norm (4 of them: quartiles), and doubles at each
bit-rate stage by inserting codewords on the curve, which keeps the curve (and so its order) unchanged: by
default as the authors' ``codebook_extension`` does, splitting each codeword into two 1 % of a segment apart
(``growth="split"``), or at the segments' midpoints (``growth="midpoint"``, ours; `SFVQ` gives the measurements
behind the default).
Within a stage every step puts one dithered point c_k + u_k (c_k+1 - c_k), u_k ~ U(0, 1), on each segment,
sends each input to the nearest candidate point and minimises the mean squared error with Adam (step decay of
the learning rate at fixed fractions of the stage). The candidates are by default the K codewords and the
K - 1 dithered points; the authors' code matches against the K - 1 dithered points only
(``candidates="dithered"``; `SFVQ` says why the default differs). Gradients reach the codebook directly
through the chosen point, so noise-substitution VQ (NSVQ; Vali & Bäckström, IEEE Access 10, 2022), which
the authors use to pass gradients through the quantizer to an encoder, is not needed here.

`project_onto_curve` is exact over all K - 1 segments (in float64, in chunks of inputs), where the
authors' evaluation only looks at the two segments that meet at the nearest codeword.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from ..config import SFVQ_CANDIDATES, SFVQ_GROWTH
from ..errors import LatentspectraError
from ..latent.checks import check_latents
from ..progress import Progress
from ..threads import single_thread

CHUNK_ELEMENTS = 1 << 22  # inputs x segments per chunk of `project_onto_curve`: 32 MiB per float64 matrix
# SFVQ_CANDIDATES (config.py): the training candidates (`training_candidates`); SFVQ_GROWTH: the growth rules
# between stages (`grown_codebook`).
SPLIT_FRACTION = 0.01  # how far along the curve a split codeword's copy moves: the authors' codebook_extension_eps


class SFVQError(LatentspectraError, ValueError):
    """Bad SFVQ parameters or input latents, an unfitted SFVQ, or a missing / inconsistent SFVQ file."""


class CurveQuantization(NamedTuple):
    """The nearest point of the curve for each of N inputs.

    Attributes:
        points: (N, M) q(x) = c_k + t (c_k+1 - c_k).
        segments: (N,) int64 k in 0..K-2, the segment [c_k, c_k+1] (0-based codeword indices).
        positions: (N,) t in [0, 1] along the segment.
        squared_distances: (N,) |x - q(x)|^2.
    """

    points: torch.Tensor
    segments: torch.Tensor
    positions: torch.Tensor
    squared_distances: torch.Tensor


def _chunk_rows(chunk_rows: int | None, columns: int) -> int:
    """``chunk_rows``, checked, or by default as many rows as keep a (rows x ``columns``) matrix at
    `CHUNK_ELEMENTS`."""
    if chunk_rows is None:
        return max(1, CHUNK_ELEMENTS // columns)
    if chunk_rows < 1:
        raise SFVQError(f"chunk_rows: expected >= 1, got {chunk_rows}")
    return chunk_rows


def curve_points(codebook: torch.Tensor, segments: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """c_k + t (c_k+1 - c_k) for each pair (k, t) of ``segments`` (N,) and ``positions`` (N,), with c the
    rows of ``codebook`` (K, M); (N, M) in the codebook's dtype.

    Raises:
        IndexError: a segment index outside 0..K-2.
    """
    start = codebook[segments]
    return start + positions.to(codebook.dtype)[:, None] * (codebook[segments + 1] - start)


def project_onto_curve(
    latents: torch.Tensor, codebook: torch.Tensor, chunk_rows: int | None = None
) -> CurveQuantization:
    """The nearest point of the piecewise-linear curve through ``codebook`` (K, M) for each row of
    ``latents`` (N, M): the exact minimum over all K - 1 segments (module docstring).

    Computed in float64 from inner products, ``chunk_rows`` inputs at a time (default: as many as keep
    each (chunk x segments) matrix at `CHUNK_ELEMENTS`), so memory stays bounded for any N. Results are
    in ``latents``' dtype; a zero-length segment projects with t = 0; ties go to the lower segment.

    Raises:
        LatentError: a codebook or latents that are not finite floating-point (K, M) / (N, M) tensors.
        SFVQError: K < 2, or ``chunk_rows`` < 1.
    """
    codebook = check_latents(codebook, "project_onto_curve", "codebook")
    latents = check_latents(latents, "project_onto_curve", "latents", dim=codebook.shape[1])
    if len(codebook) < 2:
        raise SFVQError(f"codebook: a curve needs at least 2 codewords, got {len(codebook)}")
    chunk_rows = _chunk_rows(chunk_rows, len(codebook) - 1)
    exact = codebook.double()
    starts, steps = exact[:-1], exact[1:] - exact[:-1]
    step_sq = (steps * steps).sum(1)
    start_step = (starts * steps).sum(1)
    start_sq = (starts * starts).sum(1)
    segments, positions = [], []
    for chunk in latents.double().split(chunk_rows):
        along = chunk @ steps.T - start_step  # <x - c_k, c_k+1 - c_k>
        t = torch.where(step_sq > 0, along / step_sq.clamp_min(torch.finfo(torch.float64).tiny), 0.0).clamp(0, 1)
        distances = (
            (chunk * chunk).sum(1, keepdim=True) - 2 * chunk @ starts.T + start_sq - 2 * t * along + t * t * step_sq
        )
        best = distances.argmin(1)
        segments.append(best)
        positions.append(t.gather(1, best[:, None])[:, 0])
    segment = torch.cat(segments)
    position = torch.cat(positions)
    points = curve_points(exact, segment, position)
    squared = (latents.double() - points).pow(2).sum(1)
    dtype = latents.dtype
    return CurveQuantization(points.to(dtype), segment, position.to(dtype), squared.to(dtype))


def nearest_codewords(
    latents: torch.Tensor, codebook: torch.Tensor, chunk_rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain vector quantization: for each row of ``latents`` (N, M), the index (N,) int64 of the nearest
    row of ``codebook`` (K, M) and the squared distance (N,) to it, in float64, in chunks of inputs.

    Raises:
        LatentError: a codebook or latents that are not finite floating-point (K, M) / (N, M) tensors.
        SFVQError: ``chunk_rows`` < 1.
    """
    codebook = check_latents(codebook, "nearest_codewords", "codebook")
    latents = check_latents(latents, "nearest_codewords", "latents", dim=codebook.shape[1])
    chunk_rows = _chunk_rows(chunk_rows, len(codebook))
    exact = codebook.double()
    indices, squared = [], []
    for chunk in latents.double().split(chunk_rows):
        best = torch.cdist(chunk, exact).argmin(1)
        indices.append(best)
        squared.append((chunk - exact[best]).pow(2).sum(1))
    return torch.cat(indices), torch.cat(squared)


def norm_quantile_means(latents: torch.Tensor, count: int) -> torch.Tensor:
    """The initial codebook: ``latents`` (N, M) sorted by norm and split into ``count`` groups of (nearly)
    equal size, the mean of each group, in increasing norm (``count`` = 4: the authors' quartiles).

    Raises:
        LatentError: latents that are not a finite floating-point (N, M) tensor.
        SFVQError: fewer than ``count`` latents.
    """
    latents = check_latents(latents, "norm_quantile_means", "latents")
    if not 1 <= count <= len(latents):
        raise SFVQError(f"latents: {len(latents)} rows cannot be split into {count} norm quantiles")
    order = torch.linalg.vector_norm(latents, dim=1).argsort(stable=True)
    return torch.stack([latents[group].mean(0) for group in order.tensor_split(count)])


def insert_codewords(codebook: torch.Tensor, count: int) -> torch.Tensor:
    """Grow the curve through ``codebook`` (K, M) to ``count`` codewords by inserting new ones on its
    segments: every old codeword stays, in order, so the curve itself is unchanged.

    The count - K new codewords are spread over the K - 1 segments as evenly as possible (the longest
    segments take the remainder) and split their segment into equal parts: for doubling (count = 2K) every
    segment gets its midpoint and the longest one a third and two thirds instead.

    Returns:
        (count, M) tensor of ``codebook``'s dtype.

    Raises:
        SFVQError: K < 2 or ``count`` < K.
    """
    codebook = check_latents(codebook, "insert_codewords", "codebook")
    size = len(codebook)
    if size < 2 or count < size:
        raise SFVQError(
            f"insert_codewords: need at least 2 codewords and count >= {size}, got K = {size} and count = {count}"
        )
    added = count - size
    steps = codebook[1:] - codebook[:-1]
    per_segment = torch.full((size - 1,), added // (size - 1), dtype=torch.int64)
    longest = torch.linalg.vector_norm(steps, dim=1).argsort(descending=True, stable=True)
    per_segment[longest[: added % (size - 1)]] += 1
    pieces = []
    for k, inserted in enumerate(per_segment.tolist()):
        fractions = torch.arange(inserted + 1, dtype=codebook.dtype) / (inserted + 1)
        pieces.append(codebook[k] + fractions[:, None] * steps[k])
    pieces.append(codebook[-1:])
    return torch.cat(pieces)


def split_codewords(codebook: torch.Tensor, count: int) -> torch.Tensor:
    """Grow the curve through ``codebook`` (K, M) to ``count`` codewords by the authors' rule (their
    ``codebook_extension``): a codeword is split into itself and a copy moved `SPLIT_FRACTION` of the way along the
    curve towards a neighbour, the next codeword for the first K // 2 codewords and the previous one for the
    others, the copy placed on that side. The copies lie on the curve, so it (and its order) is unchanged.

    Doubling (count = 2K) splits every codeword, as their code does (it only doubles); a smaller growth (the last
    stage of a K that is not a power-of-two multiple of the start) splits count - K codewords spread evenly along
    the curve, our extension.

    Returns:
        (count, M) tensor of ``codebook``'s dtype.

    Raises:
        SFVQError: K < 2 or ``count`` outside K..2K.
    """
    codebook = check_latents(codebook, "split_codewords", "codebook")
    size = len(codebook)
    if size < 2 or not size <= count <= 2 * size:
        raise SFVQError(
            f"split_codewords: need at least 2 codewords and K <= count <= 2K, got K = {size} and count = {count}"
        )
    added = count - size
    split = torch.zeros(size, dtype=torch.bool)
    split[(2 * torch.arange(added) + 1) * size // (2 * max(added, 1))] = True
    index = torch.arange(size)
    forward = index < size // 2
    copies = codebook + SPLIT_FRACTION * (codebook[torch.where(forward, index + 1, index - 1)] - codebook)
    first = torch.where((split & ~forward)[:, None], copies, codebook)  # a backward copy comes before its codeword
    second = torch.where(forward[:, None], copies, codebook)  # a forward copy after it
    return torch.stack([first, second], 1)[torch.stack([torch.ones_like(split), split], 1)]


def grown_codebook(codebook: torch.Tensor, count: int, growth: str) -> torch.Tensor:
    """``codebook`` grown to ``count`` codewords by the rule ``growth`` (`SFVQ_GROWTH`): "split" (`split_codewords`,
    the authors') or "midpoint" (`insert_codewords`, ours)."""
    return split_codewords(codebook, count) if growth == "split" else insert_codewords(codebook, count)


def growth_schedule(initial: int, final: int) -> list[int]:
    """Codebook sizes of the bit-rate stages: ``initial``, doubling while below ``final``, then ``final``
    (e.g. 4, 8, 16, 32, 64; for a final size that is not ``initial`` times a power of two the last stage
    inserts only as many codewords as needed: 4, 8, 16, 32, 48 for 48).

    Raises:
        SFVQError: ``initial`` or ``final`` below 2.
    """
    if initial < 2 or final < 2:
        raise SFVQError(f"growth_schedule: need initial and final sizes >= 2, got {initial} and {final}")
    sizes = [min(initial, final)]
    while sizes[-1] < final:
        sizes.append(min(2 * sizes[-1], final))
    return sizes


class SFVQ:
    """Space-filling vector quantizer (module docstring), in the scikit-learn style.

    Args:
        num_codewords: K >= 2, codewords on the fitted curve.
        initial_codewords: size of the first stage (the norm-quantile means); 4 as the authors.
        epochs_per_stage: passes over the data at each codebook size (authors: 5).
        batch_size: inputs per Adam step (authors: 64).
        learning_rate: Adam's initial learning rate (authors: 1e-3).
        decay_at: fractions of each stage's steps at which the learning rate is multiplied by
            ``decay_factor`` (authors: 0.6 and 0.8, factor 0.5).
        decay_factor: the step decay factor.
        seed: seeds the shuffling and the dithering in `fit` (same seed, same data: same codebook).
        candidates: the points each input is matched against in a training step (`training_candidates`):
            "codewords+dithered" (default) the K codewords and the K - 1 dithered points; "dithered" the
            dithered points only, as the authors' code. The default is ours because it quantizes better, the
            number SFVQ's quantizer is judged by, while the authors' set orders the labels better. Measured on
            the shipped networks' MNIST codes (K = 64, three seeds; docs/sfvq.md): curve test error 23.43-23.52
            against 24.36-24.43, but 12-13 label runs against 10, and 0.810-0.825 of neighbouring codeword
            pairs with the same label against 0.857.
        growth: how the codebook grows between stages (`grown_codebook`): "split" (default) each codeword
            into two 1 % of a segment apart along the curve, the authors' ``codebook_extension``; "midpoint" a
            new codeword at each segment's midpoint, ours. The default is the authors' because it quantizes
            better: curve test error on the shipped networks' MNIST codes (seeds 0, 1, 2; `latentspectra sfvq
            --codewords K --growth G --seed S`, docs/sfvq.md) 33.76-33.99 against 34.74-34.90 at K = 16 and
            23.27-23.39 against 23.43-23.52 at K = 64; with the authors' candidates (seed 0) 36.32 against 36.49
            and 24.26 against 24.64.

    Attributes (after `fit` or `load`):
        codebook_: (K, M) float32, the codewords in curve order.
        n_features_in_: M.
        history_: per stage, {"codewords", "steps", "loss"} with loss the mean squared distance of the
            inputs to their dithered quantization over the stage's last epoch.
    """

    def __init__(
        self,
        num_codewords: int,
        *,
        initial_codewords: int = 4,
        epochs_per_stage: int = 5,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        decay_at: Sequence[float] = (0.6, 0.8),
        decay_factor: float = 0.5,
        seed: int = 0,
        candidates: str = SFVQ_CANDIDATES[0],
        growth: str = SFVQ_GROWTH[0],
    ) -> None:
        self.num_codewords = num_codewords
        self.initial_codewords = initial_codewords
        self.epochs_per_stage = epochs_per_stage
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.decay_at = decay_at
        self.decay_factor = decay_factor
        self.seed = seed
        self.candidates = candidates
        self.growth = growth

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-ready."""
        return {
            "num_codewords": self.num_codewords,
            "initial_codewords": self.initial_codewords,
            "epochs_per_stage": self.epochs_per_stage,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "decay_at": list(self.decay_at),
            "decay_factor": self.decay_factor,
            "seed": self.seed,
            "candidates": self.candidates,
            "growth": self.growth,
        }

    def check_params(self) -> None:
        def whole(name: str, value: Any, least: int) -> None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise SFVQError(f"{name}: expected an integer >= {least}, got {value!r}")

        whole("num_codewords", self.num_codewords, 2)
        whole("initial_codewords", self.initial_codewords, 2)
        whole("epochs_per_stage", self.epochs_per_stage, 1)
        whole("batch_size", self.batch_size, 1)
        whole("seed", self.seed, 0)

        def real(value: Any) -> bool:
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)

        if not (real(self.learning_rate) and self.learning_rate > 0):
            raise SFVQError(f"learning_rate: expected a finite number > 0, got {self.learning_rate!r}")
        if not (real(self.decay_factor) and 0 < self.decay_factor <= 1):
            raise SFVQError(f"decay_factor: expected a number in (0, 1], got {self.decay_factor!r}")
        fractions: list[Any] = list(self.decay_at) if isinstance(self.decay_at, (list, tuple)) else [self.decay_at]
        if any(not (real(f) and 0 < f < 1) for f in fractions) or fractions != sorted(fractions):
            raise SFVQError(f"decay_at: expected increasing fractions in (0, 1), got {fractions}")
        if not (isinstance(self.candidates, str) and self.candidates in SFVQ_CANDIDATES):
            raise SFVQError(f"candidates: expected one of {', '.join(SFVQ_CANDIDATES)}, got {self.candidates!r}")
        if not (isinstance(self.growth, str) and self.growth in SFVQ_GROWTH):
            raise SFVQError(f"growth: expected one of {', '.join(SFVQ_GROWTH)}, got {self.growth!r}")

    def fit(self, latents: torch.Tensor, progress: Progress | None = None) -> SFVQ:
        """Fit the curve to ``latents`` (N, M), N >= K: norm-quantile start, then one training stage per
        codebook size of `growth_schedule`, growing the codebook between stages (`grown_codebook`). Returns self.

        ``progress`` is given the number of epochs (stages x epochs per stage) and told of each. Runs on one
        intra-op thread: each step multiplies a (batch x M) by an (M x 2K - 1) matrix (M x K - 1 with the
        authors' candidates), too small for threads to pay off (on the shared 2-core machine, two threads were
        20x slower).

        Raises:
            SFVQError: bad parameters (e.g. K < 2), bad latents, or fewer latents than codewords.
        """
        self.check_params()
        latents = check_latents(latents, "SFVQ.fit", "latents")
        if len(latents) < self.num_codewords:
            raise SFVQError(f"latents: {len(latents)} rows, need at least num_codewords = {self.num_codewords}")
        data = latents.detach().to(torch.float32).clone()  # a plain copy, also of an inference-mode tensor
        rng = torch.Generator().manual_seed(self.seed)
        sizes = growth_schedule(self.initial_codewords, self.num_codewords)
        codebook = norm_quantile_means(data, sizes[0])
        history = []
        if progress is not None:
            progress.reset(total=len(sizes) * self.epochs_per_stage)
        with single_thread():
            for size in sizes:
                codebook = grown_codebook(codebook, size, self.growth)
                codebook, record = self._train_stage(codebook, data, rng, progress)
                history.append(record)
        if not bool(torch.isfinite(codebook).all()):
            raise SFVQError(
                f"the fit diverged to NaN or infinite codewords (learning_rate {self.learning_rate:g}); "
                "lower the learning rate"
            )
        self.codebook_ = codebook
        self.n_features_in_ = data.shape[1]
        self.history_ = history
        return self

    def _train_stage(
        self, codebook: torch.Tensor, data: torch.Tensor, rng: torch.Generator, progress: Progress | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """One bit-rate stage: ``epochs_per_stage`` epochs of Adam on the dithered-curve MSE."""
        parameter = torch.nn.Parameter(codebook.clone())
        optimizer = torch.optim.Adam([parameter], lr=self.learning_rate)
        steps = self.epochs_per_stage * -(-len(data) // self.batch_size)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[int(f * steps) for f in self.decay_at], gamma=self.decay_factor
        )
        for _ in range(self.epochs_per_stage):
            total = 0.0
            for batch in torch.randperm(len(data), generator=rng).split(self.batch_size):
                inputs = data[batch]
                candidates = training_candidates(parameter, rng, self.candidates)
                with torch.no_grad():
                    nearest = ((candidates * candidates).sum(1) - 2 * inputs @ candidates.T).argmin(1)
                loss = torch.nn.functional.mse_loss(candidates[nearest], inputs)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(batch)
            if progress is not None:
                progress.update()
        record = {"codewords": len(codebook), "steps": steps, "loss": total / len(data) * data.shape[1]}
        return parameter.detach(), record

    def fitted_codebook(self) -> torch.Tensor:
        """``codebook_``, or SFVQError when the curve is not fitted."""
        if not hasattr(self, "codebook_"):
            raise SFVQError("SFVQ is not fitted yet: call fit(latents) or load_sfvq(path) first")
        return self.codebook_

    def quantize(self, latents: torch.Tensor, chunk_rows: int | None = None) -> CurveQuantization:
        """The nearest curve point, its segment and its position on it for each row of ``latents`` (N, M):
        `project_onto_curve` with ``codebook_``.

        Raises:
            SFVQError: not fitted.
            LatentError: latents not a finite floating-point tensor of shape (N, M), M = ``n_features_in_``.
        """
        return project_onto_curve(latents, self.fitted_codebook(), chunk_rows)


def training_candidates(codebook: torch.Tensor, rng: torch.Generator, candidates: str) -> torch.Tensor:
    """The points of one training step for the curve through ``codebook`` (K, M): one dithered point
    c_k + u_k (c_k+1 - c_k), u_k ~ U(0, 1) drawn from ``rng``, on each segment, preceded by the K codewords
    for ``candidates`` "codewords+dithered" ((2K - 1, M)) or alone for "dithered" ((K - 1, M), the authors'
    training step; Vali & Bäckström, Interspeech 2023). Both draw the same u from the same ``rng`` state.
    """
    fractions = torch.rand(len(codebook) - 1, 1, generator=rng)
    dithered = codebook[:-1] + fractions * (codebook[1:] - codebook[:-1])
    return torch.cat([codebook, dithered]) if candidates == "codewords+dithered" else dithered
