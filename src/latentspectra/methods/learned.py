"""Learned directions: Voynov & Babenko, "Unsupervised Discovery of Interpretable Directions in the GAN Latent
Space", ICML 2020 (https://arxiv.org/abs/2002.03754); the authors' code is github.com/anvoynov/GANLatentDiscovery.

K directions A and a reconstructor R are trained together, the generator G frozen (paper, Sec. 3): each step
draws latents z ~ N(0, I_M), a direction index k uniformly from 0..K-1 and a shift eps; R sees the pair G(z),
G(z + eps a_k) and predicts k and eps. The loss (paper, Eq. 1) is the cross-entropy of k plus lambda = 0.25 times
the mean absolute error of eps. Directions whose edits R tells apart easily are distinct and consistent, the
paper's proxy for interpretable.

Followed from the authors' code (`trainer.py`, `latent_shift_predictor.py`):

- the shifts: eps = max_shift u, u ~ U(-1, 1), any of magnitude below min_shift raised to +-min_shift (their
  ``shift_scale`` = 6, ``min_shift`` = 0.5: a share min_shift / max_shift of the draws sits at +-min_shift);
- the loss weights 1 (direction) and 0.25 (shift); Adam at one rate for A and R (their two optimisers share the
  default 1e-4); batches of 32;
- the reconstructor of images: their LeNet of width 2 on the two images stacked on the channel axis (5 x 5
  convolutions to 6, 16 and 120 channels, each with batch norm and ReLU, the first two followed by 2 x 2 max
  pooling; the features averaged over space), with two heads Linear-BatchNorm-ReLU-Linear (to 84 units, then the
  K logits or the shift);
- the reported accuracy: R's accuracy of k on fresh draws with R in eval mode (their `validate_classifier`).

A port of their `LeNetShiftPredictor`, `LatentDeformator` ("ortho") and `Trainer` loop, run from the same weights
and draws, ends where `train_steps` ends (tests/test_learned_directions.py).

Where this differs:

- A is (K, M), directions as rows (the paper's A is M x K, directions as columns).
- ``deformator="qr"`` (the default): A is the transposed Q factor (`torch.linalg.qr`) of a free (M, K) matrix
  drawn N(0, 1), so any K <= M works. ``deformator="expm"`` is the authors' "ortho" deformator: the first K
  columns of the matrix exponential of S - S^T, S a free M x M matrix drawn N(0, 1) (made for K = M; with fewer
  directions it still trains all of S). ``deformator="linear"``: the free (M, K) matrix's columns scaled to unit
  length (the paper's unit columns; their code's "linear" A is not normalised).
- Their LeNet is unpadded and needs images of at least 32 x 32 pixels (their MNIST generator, SN-GAN
  ``sn_resnet32``, makes 32 x 32 digits); images with a side below 32 (MNIST's 28) are brought to 32 by repeating
  their border pixels (``replicate`` padding) before the pair enters it. Generators whose outputs are (N, D)
  vectors get an MLP reconstructor (two Linear-BatchNorm-ReLU layers of 120 units) under the same heads.
- The default budget is 2000 steps at learning rate 1e-3 (theirs: 1e5 steps at 1e-4), which does not converge
  on the shipped MNIST generator; ``tolerance`` stops training once two doublings of the steps add less than it to
  R's held-out accuracy (their code trains a fixed budget). `latentspectra compare` trains 16,000 steps of 64 at
  rate 3e-3 with tolerance 0.02 (config.LEARNED_BUDGETS; the curves are in docs/compare.md), stopping earlier
  where two doublings in a row added less (`has_converged`, also its verdict).
- The generator runs in the mode it is in (theirs: eval mode), as in the package's other methods; put a generator
  with batch norm in eval mode first. Its parameters get no gradients; only A and R learn.

A property of the objective, not of this code: the part of a direction along latent coordinates that the generator
ignores gets no gradient, so once R tells the directions apart nothing removes it (seen on a toy with 3 factors in
M = 4 coordinates: one seed in six kept a direction 0.6 along the ignored coordinate after 400 steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAX_TRAINING_STEPS, derived_seed
from .directions import (
    DirectionMethod,
    FitInputs,
    MethodError,
    Network,
    as_unit_directions,
    canonical_signs,
    check_number,
    check_whole,
    network_device,
    register,
    unit_rows,
)

SHIFT_WEIGHT = 0.25  # lambda of the paper's Eq. 1 and the authors' `shift_weight`
LENET_WIDTH = 2  # the authors' `LeNetShiftPredictor(width=2)`: 6, 16, 120 channels, heads of 84 units
LENET_SIZE = 32  # the smallest image side their unpadded LeNet takes (32 -> 28 -> 14 -> 10 -> 5 -> 1)
CURVE_BATCH = 512  # draws per pass of the convergence curve's evaluations (R in eval mode: any batch gives the same)
CURVE_FIRST = 125  # the convergence curve halves the budget down to this many steps (at least 4 doublings)
HISTORY_CHUNKS = 10  # entries of history_: the training steps are averaged over this many consecutive chunks


# --- The reconstructor --------------------------------------------------------------------------------


def _conv_block(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 5), nn.BatchNorm2d(outputs), nn.ReLU()]


def _dense_block(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs), nn.ReLU()]


class ReplicatedTo(nn.Module):
    """Images (N, C, H, W) with H or W below ``size`` padded to ``size`` by repeating their border pixels (as
    evenly as the difference allows); larger images pass unchanged."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        rows, columns = max(0, self.size - height), max(0, self.size - width)
        if rows == columns == 0:
            return images
        return F.pad(images, (columns // 2, columns - columns // 2, rows // 2, rows - rows // 2), mode="replicate")


def image_features(channels: int, width: int = LENET_WIDTH) -> nn.Sequential:
    """Pairs of images stacked on the channel axis (N, 2C, H, W) -> (N, 60 width) features: the authors' LeNet
    (unpadded 5 x 5 convolutions, 2 x 2 max pooling, the features averaged over space), smaller images brought to
    its 32 x 32 first (`ReplicatedTo`, module docstring)."""
    pool = nn.MaxPool2d(2)
    return nn.Sequential(
        ReplicatedTo(LENET_SIZE),
        *_conv_block(2 * channels, 3 * width),
        pool,
        *_conv_block(3 * width, 8 * width),
        pool,
        *_conv_block(8 * width, 60 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def vector_features(size: int, width: int = LENET_WIDTH) -> nn.Sequential:
    """Pairs of output vectors side by side (N, 2D) -> (N, 60 width) features."""
    return nn.Sequential(*_dense_block(2 * size, 60 * width), *_dense_block(60 * width, 60 * width))


def _head(inputs: int, outputs: int, width: int = LENET_WIDTH) -> nn.Sequential:
    return nn.Sequential(*_dense_block(inputs, 42 * width), nn.Linear(42 * width, outputs))


class Reconstructor(nn.Module):
    """R: the outputs G(z) and G(z + eps a_k) -> (the K logits of k (N, K), the predicted eps (N,))."""

    def __init__(self, features: nn.Module, count: int, width: int = LENET_WIDTH) -> None:
        super().__init__()
        self.features = features
        self.direction_head = _head(60 * width, count, width)
        self.shift_head = _head(60 * width, 1, width)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(torch.cat([before, after], dim=1))
        return self.direction_head(features), self.shift_head(features).squeeze(1)


def build_reconstructor(output: torch.Tensor, count: int) -> Reconstructor:
    """The reconstructor for generator outputs like ``output``: images (N, C, H, W) get the LeNet, vectors (N, D)
    the MLP.

    Raises:
        MethodError: ``output`` is neither.
    """
    if output.ndim == 4:
        return Reconstructor(image_features(output.shape[1]), count)
    if output.ndim == 2:
        return Reconstructor(vector_features(output.shape[1]), count)
    raise MethodError(
        f"LearnedDirections: generator expected outputs of shape (N, D) or (N, C, H, W), got {tuple(output.shape)}"
    )


# --- Training -----------------------------------------------------------------------------------------


class Shifts(NamedTuple):
    """One batch of the training signal: latents z (B, M), direction indices k (B,) and shifts eps (B,)."""

    z: torch.Tensor
    k: torch.Tensor
    eps: torch.Tensor


def draw_shifts(
    rng: torch.Generator, size: int, dim: int, count: int, min_shift: float, max_shift: float, device: torch.device
) -> Shifts:
    """``size`` draws z ~ N(0, I_dim), k uniform in 0..count-1 and eps = max_shift u, u ~ U(-1, 1), with magnitudes
    below ``min_shift`` raised to it (the authors' `Trainer.make_shifts`); drawn on the CPU from ``rng``, so that
    every device gets the same numbers, then moved to ``device``."""
    z = torch.randn(size, dim, generator=rng)
    k = torch.randint(count, (size,), generator=rng)
    u = 2 * torch.rand(size, generator=rng) - 1
    eps = torch.where(u < 0, -1.0, 1.0) * (max_shift * u.abs()).clamp_min(min_shift)
    return Shifts(z.to(device), k.to(device), eps.to(device))


DEFORMATORS = ("qr", "expm", "linear")  # how A is made from its free matrix (module docstring)


def direction_rows(free: torch.Tensor, deformator: str, count: int) -> torch.Tensor:
    """A (K, M), K = ``count``, from the free matrix of the ``deformator``: the transposed Q factor of the QR
    decomposition of (M, K) ``free`` ("qr", orthonormal rows), the first K columns of expm(S - S^T) for (M, M)
    ``free`` = S ("expm", the authors' "ortho": orthonormal rows), or the columns of (M, K) ``free`` scaled to
    unit length ("linear")."""
    if deformator == "expm":
        return torch.linalg.matrix_exp(free - free.T)[:, :count].T
    return torch.linalg.qr(free).Q.T if deformator == "qr" else unit_rows(free.T)


def shift_losses(
    generator: Network, reconstructor: Reconstructor, directions: torch.Tensor, batch: Shifts
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cross-entropy of k, SHIFT_WEIGHT x mean |eps - predicted eps|, the number of k predicted right) on
    ``batch``: the two terms of the paper's Eq. 1, with gradients to the directions and R; G(z) itself needs
    none."""
    with torch.no_grad():
        before = generator(batch.z)
    after = generator(batch.z + batch.eps[:, None] * directions[batch.k])
    logits, predicted = reconstructor(before, after)
    correct = (logits.argmax(1) == batch.k).sum()
    return F.cross_entropy(logits, batch.k), SHIFT_WEIGHT * (predicted - batch.eps).abs().mean(), correct


@contextmanager
def frozen(generator: Network) -> Iterator[None]:
    """Inside the block, a torch module ``generator`` has no parameter that asks for gradients (so training A and
    R leaves its ``.grad`` untouched); each parameter's flag comes back after."""
    parameters = list(generator.parameters()) if isinstance(generator, nn.Module) else []
    flags = [parameter.requires_grad for parameter in parameters]
    try:
        for parameter in parameters:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in zip(parameters, flags):
            parameter.requires_grad_(flag)


def training_step(
    generator: Network,
    reconstructor: Reconstructor,
    directions: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batch: Shifts,
) -> torch.Tensor:
    """One Adam step on the paper's Eq. 1 for ``batch``: whatever ``optimizer`` holds (A and R, or R alone) learns;
    returns (direction loss, shift loss, accuracy) of the batch, detached (3,)."""
    direction_loss, shift_loss, correct = shift_losses(generator, reconstructor, directions, batch)
    optimizer.zero_grad()
    (direction_loss + shift_loss).backward()
    optimizer.step()
    return torch.stack([direction_loss, shift_loss, correct / len(batch.k)]).detach()


def train_steps(
    generator: Network,
    reconstructor: Reconstructor,
    directions: Callable[[], torch.Tensor],
    parameters: list[torch.Tensor],
    draw: Callable[[int], Shifts],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    after_step: Callable[[int], bool] | None = None,
) -> list[dict[str, float]]:
    """Up to ``steps`` `training_step` s of Adam (rate ``learning_rate``) on ``parameters``, R in train mode, each
    on ``draw(batch_size)`` with the directions ``directions()`` gives then (A from its free matrix, or fixed
    rows); ``after_step(n)`` (where given) is called after the n-th step, and training stops where it returns
    True. Returns the history (losses averaged over at most HISTORY_CHUNKS chunks of the steps; a chunk cut short
    by a stop averages the steps it ran). Call it with gradients enabled and the generator `frozen`."""
    optimizer = torch.optim.Adam(parameters, lr=learning_rate, foreach=True)
    reconstructor.train()
    device = parameters[0].device
    history = []
    done = 0
    for size in chunk_sizes(steps, HISTORY_CHUNKS):
        totals = torch.zeros(3, device=device)
        for ran in range(1, size + 1):
            batch = draw(batch_size)
            totals += training_step(generator, reconstructor, directions(), optimizer, batch)
            if after_step is not None and after_step(done + ran):
                history.append(_history_entry(done + ran, totals / ran))
                return history
        done += size
        history.append(_history_entry(done, totals / size))
    return history


def chunk_sizes(steps: int, chunks: int) -> list[int]:
    """The sizes of min(``chunks``, ``steps``) consecutive chunks of ``steps`` steps, the first ``steps mod n``
    one longer (as ``tensor_split`` cuts), computed without holding a step index each."""
    count = min(chunks, steps)
    return [steps // count + (index < steps % count) for index in range(count)]


def held_out_accuracy(
    generator: Network,
    reconstructor: Reconstructor,
    directions: torch.Tensor,
    draw: Callable[[int], Shifts],
    *,
    n_validation: int,
    batch_size: int,
) -> float:
    """R's accuracy of k, in eval mode and without gradients, on ``n_validation`` fresh draws (``draw(size)``) in
    batches of ``batch_size`` (the authors' `validate_classifier`)."""
    reconstructor.eval()
    correct = 0
    with torch.no_grad():
        for draws in torch.arange(n_validation).split(batch_size):
            correct += int(shift_losses(generator, reconstructor, directions, draw(len(draws)))[2])
    return correct / n_validation


def seeded_reconstructor(generator: Network, probe: Shifts, count: int, seed: int) -> Reconstructor:
    """R for the generator's outputs (their shape from a probe of latents), K = ``count``, its initial weights
    seeded by ``seed`` without touching torch's global generator."""
    with torch.no_grad():
        output = generator(probe.z)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_reconstructor(output, count)


def train_reconstructor(
    generator: Network,
    directions: torch.Tensor,
    *,
    steps: int = 500,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    min_shift: float = 0.5,
    max_shift: float = 6.0,
    seed: int = 0,
    n_validation: int = 3200,
) -> float:
    """The paper's reconstructor classification accuracy of given, frozen ``directions`` (K, M): a fresh R (the
    architecture `LearnedDirections` trains) trained alone for ``steps`` `training_step` s of ``batch_size`` draws
    (the shifts drawn as in `draw_shifts`) to tell which of the K directions moved G(z) to G(z + eps d_k); returns
    its accuracy of k on ``n_validation`` fresh draws (chance: 1 / K). ``seed`` seeds R's initial weights and every
    draw; torch's global generator is left as it was. ``directions`` are used as given (normalise them first for
    unit rows); the generator gets no gradients and runs in the mode it is in.

    Raises:
        MethodError: bad budgets or shifts, directions that are not a (K, M) tensor, or outputs of neither shape.
    """
    title = "train_reconstructor"
    for name, value, least in (
        ("steps", steps, 1),
        ("batch_size", batch_size, 2),
        ("n_validation", n_validation, 1),
        ("seed", seed, 0),
    ):
        check_whole(title, name, value, least)
    check_number(title, "learning_rate", learning_rate, 0, strict=True)
    check_number(title, "min_shift", min_shift, 0, strict=False)
    check_number(title, "max_shift", max_shift, min_shift, strict=min_shift == 0)
    if not (isinstance(directions, torch.Tensor) and directions.ndim == 2 and len(directions) >= 1):
        raise MethodError(
            f"{title}: directions expected a (K, M) tensor, got "
            f"{tuple(directions.shape) if isinstance(directions, torch.Tensor) else type(directions)}"
        )
    device = network_device(generator)
    rows = directions.detach().to(device=device, dtype=torch.float32)
    count, dim = rows.shape
    rng = torch.Generator().manual_seed(seed)

    def draw(size: int) -> Shifts:
        return draw_shifts(rng, size, dim, count, min_shift, max_shift, device)

    with torch.enable_grad(), frozen(generator):
        reconstructor = seeded_reconstructor(generator, draw(2), count, seed).to(device)
        train_steps(
            generator,
            reconstructor,
            lambda: rows,
            list(reconstructor.parameters()),
            draw,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
        )
    return held_out_accuracy(generator, reconstructor, rows, draw, n_validation=n_validation, batch_size=batch_size)


@register("learned")
class LearnedDirections(DirectionMethod):
    """K directions trained with a reconstructor so that the generator's edits along them can be told apart (module
    docstring). Fit uses ``generator`` (a callable latents (N, M) -> images (N, C, H, W) or vectors (N, D),
    differentiable in torch; a torch module runs on the device of its parameters); M comes from ``latent_dim`` or
    the generator's ``latent_dim``.

    Cost: about 30-40 ms a step on 2 CPU cores for the shipped MNIST generator at M = 100, K = 10, in float32
    (AMD EPYC, AVX512-BF16), so 1 to 1.5 minutes at the defaults (2000 steps of 32), which do not converge there.
    At compare's budget (batch 64, rate 3e-3) R's held-out accuracy reached 0.91, 0.93, 0.95 and 0.97 after 2,000,
    4,000, 8,000 and 16,000 steps (seed 0; the three seeds' curves are in docs/compare.md).

    Args:
        n_directions: K <= M.
        steps: training steps (authors: 1e5).
        batch_size: draws per step, >= 2 (batch norm in R; authors: 32).
        learning_rate: Adam's rate for A and R (authors: 1e-4 over their longer run).
        min_shift: the least shift magnitude, >= 0 (authors: 0.5).
        max_shift: the largest shift magnitude, >= min_shift and > 0 (authors: 6).
        deformator: how A is made: "qr" (orthonormal rows, any K), "expm" (the authors' "ortho": the matrix
            exponential of a skew-symmetric M x M matrix, orthonormal rows) or "linear" (unit rows).
        n_validation: fresh draws on which the final accuracy of R is measured (authors: 100 batches of 32).
        tolerance: where given (> 0), training stops at the first point of the convergence curve from steps / 8
            on where each of the last two doublings of the steps changed R's held-out accuracy by less than this
            (`doubling_gains`; earlier points are not judged, so that the flat start, R still near chance, is not
            taken for convergence, and one flat doubling is not enough: a plateau of one doubling stopped a fit
            at 2,000 steps and 0.81 that went on to 0.94), ``steps`` being the most it trains; None (default, as
            the authors): all ``steps``.
        latent_dim: M, where the generator does not say it.
        seed: seeds A's initial matrix, R's initial weights and every draw.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit rows (orthonormal but for the "linear" deformator), each signed so that
            its largest component is positive.
        reconstructor_accuracy_: the share of the ``n_validation`` fresh draws whose k R predicts (chance: 1 / K).
        convergence_: {"steps": [...], "reconstructor_accuracy": [...]}: R's held-out accuracy (eval mode, on
            ``n_validation`` draws of their own stream, the same at every point) after each of
            `checkpoint_steps` (steps/16, steps/8, ..., steps, or from about CURVE_FIRST steps on for longer
            budgets) that training reached; the budget has converged where the last doubling adds little
            (`convergence_gain`). Its last point is the number of steps trained.
        history_: one dict per chunk of the training steps ({"steps": the last step of the chunk, "loss",
            "direction_loss", "shift_loss", "accuracy": their means over the chunk}), at most 10.
    """

    inputs = ("generator",)
    float32_gradients = True
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(
        self,
        n_directions: int,
        *,
        steps: int = 2000,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        min_shift: float = 0.5,
        max_shift: float = 6.0,
        deformator: str = "qr",
        n_validation: int = 3200,
        tolerance: float | None = None,
        latent_dim: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.min_shift = min_shift
        self.max_shift = max_shift
        self.deformator = deformator
        self.n_validation = n_validation
        self.tolerance = tolerance
        self.seed = seed

    def check_params(self) -> None:
        super().check_params()
        check_whole(self.title, "steps", self.steps, 1, most=MAX_TRAINING_STEPS)
        check_whole(self.title, "batch_size", self.batch_size, 2)
        check_number(self.title, "learning_rate", self.learning_rate, 0, strict=True)
        check_number(self.title, "min_shift", self.min_shift, 0, strict=False)
        check_number(self.title, "max_shift", self.max_shift, self.min_shift, strict=self.min_shift == 0)
        if self.deformator not in DEFORMATORS:
            raise MethodError(
                f"{self.title}: deformator expected one of {', '.join(DEFORMATORS)}, got {self.deformator!r}"
            )
        check_whole(self.title, "n_validation", self.n_validation, 1)
        if self.tolerance is not None:
            check_number(self.title, "tolerance", self.tolerance, 0, strict=True)
        check_whole(self.title, "seed", self.seed, 0)

    def _fit(self, inputs: FitInputs) -> None:
        generator = inputs.require("generator")
        dim = inputs.require_latent_dim()
        device = network_device(generator)
        rng = torch.Generator().manual_seed(self.seed)
        columns = dim if self.deformator == "expm" else self.n_directions
        free = torch.randn(dim, columns, generator=rng).to(device).requires_grad_()
        with torch.enable_grad(), frozen(generator):
            reconstructor = self._reconstructor(generator, self._draw(rng, 2, dim, device)).to(device)
            curve = self._convergence_curve(generator, reconstructor, free)
            self.history_ = self._train(generator, reconstructor, free, rng, curve.record)
        self.convergence_ = curve.found
        directions = self._directions(free.detach())
        self.reconstructor_accuracy_ = self._held_out_accuracy(generator, reconstructor, directions, rng)
        self.directions_ = as_unit_directions(canonical_signs(directions.cpu()))

    def _directions(self, free: torch.Tensor) -> torch.Tensor:
        """A (K, M) from the free matrix, by the method's deformator (`direction_rows`)."""
        return direction_rows(free, self.deformator, self.n_directions)

    def _draw(self, rng: torch.Generator, size: int, dim: int, device: torch.device) -> Shifts:
        return draw_shifts(rng, size, dim, self.n_directions, self.min_shift, self.max_shift, device)

    def _reconstructor(self, generator: Network, probe: Shifts) -> Reconstructor:
        """R for the generator's outputs, its initial weights seeded by ``seed`` (`seeded_reconstructor`)."""
        return seeded_reconstructor(generator, probe, self.n_directions, self.seed)

    def _train(
        self,
        generator: Network,
        reconstructor: Reconstructor,
        free: torch.Tensor,
        rng: torch.Generator,
        after_step: Callable[[int], bool],
    ) -> list[dict[str, float]]:
        """``steps`` Adam steps on A (through ``free``) and R; returns history_ (losses averaged per chunk)."""
        return train_steps(
            generator,
            reconstructor,
            lambda: self._directions(free),
            [free, *reconstructor.parameters()],
            lambda size: self._draw(rng, size, free.shape[0], free.device),
            steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            after_step=after_step,
        )

    def _convergence_curve(
        self, generator: Network, reconstructor: Reconstructor, free: torch.Tensor
    ) -> ConvergenceCurve:
        """The `ConvergenceCurve` of this fit: R's held-out accuracy at the doublings of `checkpoint_steps`, on
        draws of a stream of their own (seed + 1), so that training draws exactly what it would without it."""

        def accuracy() -> float:
            rng = torch.Generator().manual_seed(derived_seed(self.seed, 1))
            with torch.no_grad():
                directions = self._directions(free)
            found = self._held_out_accuracy(generator, reconstructor, directions, rng, CURVE_BATCH)
            reconstructor.train()
            return found

        return ConvergenceCurve(checkpoint_steps(self.steps), accuracy, self.tolerance, judged_from=self.steps // 8)

    def fit_record(self) -> dict[str, Any]:
        """The learned directions' convergence curve (`convergence_`), its last doubling's gain, the tolerance
        (None: none set) and whether the curve has converged by it (`has_converged`; None without a tolerance)."""
        return {
            "convergence": {
                **self.convergence_,
                "last_doubling_gain": convergence_gain(self.convergence_),
                "tolerance": self.tolerance,
                "converged": None if self.tolerance is None else has_converged(self.convergence_, self.tolerance),
            }
        }

    def _held_out_accuracy(
        self,
        generator: Network,
        reconstructor: Reconstructor,
        directions: torch.Tensor,
        rng: torch.Generator,
        batch_size: int | None = None,
    ) -> float:
        """R's accuracy of k, in eval mode, on ``n_validation`` fresh draws from ``rng`` in batches of
        ``batch_size`` (default: the method's)."""
        return held_out_accuracy(
            generator,
            reconstructor,
            directions,
            lambda size: self._draw(rng, size, directions.shape[1], directions.device),
            n_validation=self.n_validation,
            batch_size=batch_size or self.batch_size,
        )


def checkpoint_steps(steps: int) -> list[int]:
    """steps / 2^J, ..., steps / 2, steps (rounded, at least 1, each once), J = 4 or, for budgets over 16
    CURVE_FIRST steps, as many halvings as stay at CURVE_FIRST steps or more: where the convergence curve is
    read."""
    doublings = max(4, int(math.log2(steps / CURVE_FIRST))) if steps > CURVE_FIRST else 4
    return sorted({max(1, round(steps / 2**power)) for power in range(doublings, -1, -1)})


def doubling_gains(curve: dict[str, list]) -> list[float]:
    """What each doubling of the budget added to R's held-out accuracy, in order (one fewer than the points)."""
    found = curve["reconstructor_accuracy"]
    return [after - before for before, after in pairwise(found)]


def convergence_gain(curve: dict[str, list]) -> float | None:
    """What the last doubling of the budget added to R's held-out accuracy (None with one point)."""
    gains = doubling_gains(curve)
    return gains[-1] if gains else None


def has_converged(curve: dict[str, list], tolerance: float) -> bool:
    """Whether the last two doublings of the budget each changed R's held-out accuracy by less than
    ``tolerance``: when ``LearnedDirections(tolerance=...)`` stops before its budget, and what compare calls
    converged (0.02). One flat doubling is not enough: a fit flat from 1,000 to 2,000 steps at 0.81 went on to
    0.94."""
    last_two = doubling_gains(curve)[-2:]
    return len(last_two) == 2 and all(abs(gain) < tolerance for gain in last_two)


class ConvergenceCurve:
    """R's held-out accuracy (``accuracy()``) recorded at each of ``at`` steps, while training runs: `record` is
    the ``after_step`` hook of `train_steps`, asking it to stop once, at a point from step ``judged_from`` on, the
    last two doublings each gained less than ``tolerance`` (where given); ``found`` holds {"steps",
    "reconstructor_accuracy"}."""

    def __init__(
        self, at: list[int], accuracy: Callable[[], float], tolerance: float | None = None, judged_from: int = 0
    ) -> None:
        self.at, self.accuracy, self.tolerance, self.judged_from = set(at), accuracy, tolerance, judged_from
        self.found: dict[str, list] = {"steps": [], "reconstructor_accuracy": []}

    def record(self, step: int) -> bool:
        """Read the curve after ``step`` where it is a checkpoint; True where training has converged."""
        if step not in self.at:
            return False
        self.found["steps"].append(step)
        self.found["reconstructor_accuracy"].append(self.accuracy())
        if self.tolerance is None or step < self.judged_from:
            return False
        return has_converged(self.found, self.tolerance)


def _history_entry(steps: int, means: torch.Tensor) -> dict[str, float]:
    direction_loss, shift_loss, accuracy = means.tolist()
    return {
        "steps": steps,
        "loss": direction_loss + shift_loss,
        "direction_loss": direction_loss,
        "shift_loss": shift_loss,
        "accuracy": accuracy,
    }
