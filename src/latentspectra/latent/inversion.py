"""Latents for real images by gradient descent on z: GAN inversion by optimisation.

For images x (N, C, H, W) and any differentiable generator G, `invert` searches each image's latent z_i by
minimising, in float32,

    L(z_i) = |G(z_i) - x_i|^2 / P  +  feature_weight * |F(G(z_i)) - F(x_i)|^2 / |F(x_i)|^2
             +  prior_weight * |z_i|^2 / 2M

(`inversion_terms`): the pixel MSE over the P = C H W pixels; the squared distance of the images' features F (a
classifier's penultimate layer where it has one; the caller chooses), relative to the real image's, so that the
term's scale does not depend on the features'; and the negative log-density of z under the prior N(0, I_M) per
component (up to its constant), which keeps z where the generator was trained.

The search (Abdal, Qin & Wonka, "Image2StyleGAN: How to Embed Images Into the StyleGAN Latent Space?", ICCV 2019:
Adam on the latent against a pixel and a feature loss) runs Adam on z from ``restarts`` starts per image and keeps
each image's best latent seen, the starts themselves included. With ``start="encoder"`` the first start is the
encoder's mean code (in-domain inversion: Zhu, Shen, Zhao & Zhou, "In-Domain GAN Inversion for Real Image
Editing", ECCV 2020, start from the encoder's guess and refine it by optimisation), so the result's loss is never
above the encoder's; the other starts are draws from the prior. With ``start="prior"`` every start is a draw.
Image i's draws, (restarts, M), come from its own CPU stream keyed by (``seed``, its index in the whole set,
``indices[i]``; `start_draws`), so its starts are the same whatever the batch size, the device, and whichever other
images are inverted with it: a sharded run that deals the images over its ranks finds the latents of one process.

Each image stops on its own: when its loss has not fallen by a relative ``min_improvement`` below the best of
its current start for ``patience`` steps, or after ``steps`` steps; its best is frozen from then on and a batch
ends when all its images have stopped. Adam's update is elementwise and the loss a sum of per-image terms, so
an image's latent depends on its own descent only, not on the other images of its batch.

An image no latent reaches (noise) ends with a finite loss and ``reached`` False: G(z) leaves more than
``reach_threshold`` of its pixel variance unexplained. A loss that turns NaN or infinite (a generator that
overflows far from the prior, in bfloat16 say) stops that image at its best finite latent and clears its
``finite`` flag.

Deviations from the papers: Image2StyleGAN optimises StyleGAN's extended latent space W+ with a VGG perceptual
loss and no prior term, from the mean latent; here z itself, with the given classifier's features, a Gaussian
prior term, and restarts. In-domain inversion also keeps the encoder's code of G(z) near z (a domain
regulariser); here the encoder only gives the first start.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ..compute import Network
from ..config import INFERENCE_BATCH_SIZE, InversionSettings, option_value_problem
from ..errors import LatentspectraError
from ..models.foreign import describe_failure
from ..models.layers import is_size
from ..progress import Progress
from .checks import check_latents
from .sets import block_generator

STARTS = ("encoder", "prior")
PRECISIONS = ("float32", "bfloat16")
FEATURE_FLOOR = 1e-12  # added to |F(x)|^2, so that an image whose features are all zero gives a finite distance
Encoder = Callable[[torch.Tensor], Any]  # images -> mean codes (N, M), or (mean, log-variance)


class InversionError(LatentspectraError, ValueError):
    """Bad input to `invert`: images that are not finite (N, C, H, W) tensors of the generator's image shape, a
    generator that fails or has no gradient with respect to z, an unknown start or setting."""


@dataclass(frozen=True)
class Inversion:
    """What `invert` found, per image (all tensors of N rows, on the images' device).

    Attributes:
        latents: (N, M) float32, the best latent seen per image.
        loss: (N,) its loss L (module docstring).
        pixel_mse: (N,) mean squared pixel error of G(latent).
        feature_distance: (N,) relative squared feature distance; None where no features were given.
        reached: (N,) bool: pixel MSE below ``reach_threshold`` x the image's pixel variance.
        finite: (N,) bool: every loss the image's descents saw was finite.
        steps: (N,) int64: Adam steps run for it, summed over its starts.
        stopped_early: (N,) bool: every one of its descents stopped before ``steps``.
        best_start: (N,) int64: the start its latent descends from (0: the encoder's mean with start "encoder").
        start: "encoder" or "prior".
        settings: the settings it ran with.
    """

    latents: torch.Tensor
    loss: torch.Tensor
    pixel_mse: torch.Tensor
    feature_distance: torch.Tensor | None
    reached: torch.Tensor
    finite: torch.Tensor
    steps: torch.Tensor
    stopped_early: torch.Tensor
    best_start: torch.Tensor
    start: str
    settings: InversionSettings

    def summary(self) -> dict[str, Any]:
        """JSON-ready means over the images: loss, pixel MSE, feature distance, the shares reached, finite and
        stopped early, the mean steps, and how many images each start won."""
        return {
            "start": self.start,
            "images": len(self.latents),
            "loss": self.loss.double().mean().item(),
            "pixel_mse": self.pixel_mse.double().mean().item(),
            "feature_distance": None if self.feature_distance is None else self.feature_distance.double().mean().item(),
            "reached": self.reached.double().mean().item(),
            "finite": self.finite.double().mean().item(),
            "stopped_early": self.stopped_early.double().mean().item(),
            "steps_per_image": self.steps.double().mean().item(),
            "best_start_counts": torch.bincount(self.best_start.cpu(), minlength=self.settings.restarts).tolist(),
        }

    def table(self) -> torch.Tensor:
        """The per-image results as one float64 table (N, M + 8) on the CPU: the latents, then `PER_IMAGE` (a
        missing feature distance as NaN); every value exactly, the form in which a sharded run gathers them."""
        columns = [self.latents.cpu().double()]
        for name in PER_IMAGE:
            values = getattr(self, name)
            values = torch.full((len(self.latents),), math.nan) if values is None else values
            columns.append(values.cpu().double()[:, None])
        return torch.cat(columns, 1)

    @classmethod
    def from_table(cls, table: torch.Tensor, start: str, settings: InversionSettings, with_features: bool) -> Inversion:
        """The `Inversion` whose `table` is ``table``, on the CPU (``with_features``: whether it had a feature
        distance)."""
        columns = dict(zip(PER_IMAGE, table[:, -len(PER_IMAGE) :].unbind(1), strict=True))
        return cls(
            latents=table[:, : -len(PER_IMAGE)].float(),
            loss=columns["loss"].float(),
            pixel_mse=columns["pixel_mse"].float(),
            feature_distance=columns["feature_distance"].float() if with_features else None,
            reached=columns["reached"].bool(),
            finite=columns["finite"].bool(),
            steps=columns["steps"].long(),
            stopped_early=columns["stopped_early"].bool(),
            best_start=columns["best_start"].long(),
            start=start,
            settings=settings,
        )


# The per-image fields of `Inversion` besides the latents, in the order of its `table`.
PER_IMAGE = ("loss", "pixel_mse", "feature_distance", "reached", "finite", "steps", "stopped_early", "best_start")


class InversionTerms(NamedTuple):
    """The per-image terms of the loss (each (B,) float32): the total and its pixel and feature parts."""

    loss: torch.Tensor
    pixel_mse: torch.Tensor
    feature_distance: torch.Tensor


def pixel_mse(made: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """|made_i - images_i|^2 / P per image: (B, ...) x2 -> (B,)."""
    return (made.float() - images.float()).pow(2).flatten(1).mean(1)


def feature_distance(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """|features_i - reference_i|^2 / |reference_i|^2 per row: the squared distance relative to the reference's
    squared norm (`FEATURE_FLOOR` keeps it finite for zero features); (B, ...) x2 -> (B,)."""
    features, reference = features.float().flatten(1), reference.float().flatten(1)
    return (features - reference).pow(2).sum(1) / (reference.pow(2).sum(1) + FEATURE_FLOOR)


def inversion_terms(
    z: torch.Tensor,
    made: torch.Tensor,
    images: torch.Tensor,
    made_features: torch.Tensor | None,
    image_features: torch.Tensor | None,
    settings: InversionSettings,
) -> InversionTerms:
    """The loss L of latents ``z`` whose images are ``made`` against the real ``images`` (module docstring),
    with the features of both where given (zero feature distance otherwise)."""
    pixels = pixel_mse(made, images)
    if made_features is None or image_features is None:
        features = torch.zeros_like(pixels)
    else:
        features = feature_distance(made_features, image_features)
    prior = z.float().pow(2).sum(1) / (2 * z.shape[1])
    return InversionTerms(pixels + settings.feature_weight * features + settings.prior_weight * prior, pixels, features)


def check_images(images: Any, caller: str) -> torch.Tensor:
    """``images`` once checked to be a finite floating-point tensor (N, C, H, W) with N >= 1.

    Raises:
        InversionError: "``caller``: images must be a finite floating-point tensor of shape (N, C, H, W), got ...".
    """
    expected = f"{caller}: images must be a finite floating-point tensor of shape (N, C, H, W)"
    if not isinstance(images, torch.Tensor):
        raise InversionError(f"{expected}, got {type(images).__name__}")
    if images.ndim != 4 or min(images.shape) < 1:
        raise InversionError(f"{expected}, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InversionError(f"{expected}, got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise InversionError(f"{expected}, got NaN or infinite pixels")
    return images


def _network_context(device: torch.device, precision: str) -> AbstractContextManager:
    """bfloat16 autocast on ``device`` for the network passes where ``precision`` says so, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def _check_generator(
    generator: Network,
    image_shape: tuple[int, ...],
    latent_dim: int,
    context: AbstractContextManager,
    device: torch.device,
) -> None:
    """G maps two latents (with gradients) to two images of ``image_shape`` that have a gradient with respect to
    them.

    Raises:
        InversionError: G fails, returns no tensor, images of another shape, or images without a gradient.
    """
    z = torch.zeros(2, latent_dim, device=device, requires_grad=True)
    where = f"invert: the generator on latents of shape (2, {latent_dim})"
    try:
        with context:
            made = generator(z)
    except Exception as failure:
        raise InversionError(f"{where} fails ({describe_failure(failure)})") from None
    if not isinstance(made, torch.Tensor):
        raise InversionError(f"{where} returns a {type(made).__name__}, expected images (a tensor)")
    if tuple(made.shape[1:]) != image_shape or len(made) != 2:
        raise InversionError(
            f"invert: images are {image_shape} (C, H, W), but the generator makes images of shape "
            f"{tuple(made.shape[1:])}; expected images of the generator's shape"
        )
    if not made.requires_grad:
        raise InversionError(
            f"{where} gives images without a gradient with respect to z (it detaches them, or runs under "
            "torch.no_grad or inference mode, as a TorchScript module frozen that way does); expected a "
            "differentiable generator"
        )


def _check_inputs(
    latent_dim: int, start: str, encoder: Encoder | None, settings: InversionSettings, precision: str
) -> None:
    if not is_size(latent_dim):
        raise InversionError(f"invert: latent_dim must be a whole number >= 1, got {latent_dim!r}")
    if start not in STARTS:
        raise InversionError(f"invert: start must be one of {', '.join(STARTS)}, got {start!r}")
    if start == "encoder" and encoder is None:
        raise InversionError('invert: start "encoder" needs an encoder; give one, or start "prior"')
    if precision not in PRECISIONS:
        raise InversionError(f"invert: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    problem = option_value_problem(settings)
    if problem is not None:
        raise InversionError(f"invert: settings {problem}")


def _encoder_means(encoder: Encoder, images: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """The encoder's mean codes of ``images`` (the first of a (mean, log-variance) pair), float32, checked."""
    with torch.no_grad():
        codes = encoder(images)
    means = codes[0] if isinstance(codes, (tuple, list)) else codes
    return check_latents(means, "invert", "the encoder's means", dim=latent_dim).float()


class _Best:
    """Each image's best latent so far over its starts, with its terms and the bookkeeping of `Inversion`."""

    def __init__(self, count: int, latent_dim: int, device: torch.device):
        self.latents = torch.zeros(count, latent_dim, device=device)
        self.terms = InversionTerms(*(torch.full((count,), math.inf, device=device) for _ in range(3)))
        self.start = torch.zeros(count, dtype=torch.int64, device=device)
        self.finite = torch.ones(count, dtype=torch.bool, device=device)
        self.steps = torch.zeros(count, dtype=torch.int64, device=device)
        self.stopped_early = torch.ones(count, dtype=torch.bool, device=device)

    def take(self, rows: torch.Tensor, z: torch.Tensor, terms: InversionTerms, start: int) -> None:
        """Keep ``z`` and its ``terms`` (one row per index in ``rows``) as the best of those images."""
        self.latents[rows] = z.detach()
        for kept, new in zip(self.terms, terms):
            kept[rows] = new.detach()
        self.start[rows] = start


Objective = Callable[[torch.Tensor, torch.Tensor], InversionTerms]  # (latents, their images' rows) -> terms


def _descend(
    objective: Objective, start_latents: torch.Tensor, start: int, best: _Best, settings: InversionSettings
) -> None:
    """One descent of Adam from ``start_latents`` (B, M), updating ``best``. Only the images still descending
    pass through the networks (module docstring: each image stops on its own; a non-finite loss stops it)."""
    z = start_latents.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=settings.learning_rate)
    rows = torch.arange(len(z), device=z.device)  # the images still descending
    start_best = torch.full((len(z),), math.inf, device=z.device)
    stalled = torch.zeros(len(z), dtype=torch.int64, device=z.device)
    for step in range(settings.steps + 1):
        terms = objective(z[rows], rows)
        loss = terms.loss.detach()
        finite = torch.isfinite(loss)
        best.finite[rows] &= finite
        better = finite & (loss < best.terms.loss[rows])
        best.take(rows[better], z[rows[better]], InversionTerms(*(term[better] for term in terms)), start)
        progressed = loss < start_best[rows] * (1 - settings.min_improvement)
        start_best[rows] = torch.where(finite, torch.minimum(start_best[rows], loss), start_best[rows])
        stalled[rows] = torch.where(progressed, 0, stalled[rows] + 1)
        going = finite & (stalled[rows] < settings.patience)
        if step == settings.steps:
            break
        rows_going = rows[going]
        if len(rows_going) == 0:
            rows = rows_going
            break
        best.steps[rows_going] += 1
        optimizer.zero_grad(set_to_none=False)
        torch.where(going, terms.loss, 0.0).sum().backward()
        assert z.grad is not None  # the generator's gradient was checked before any descent
        moving = torch.zeros(len(z), 1, dtype=torch.bool, device=z.device)
        moving[rows_going] = True
        z.grad = torch.where(moving, torch.nan_to_num(z.grad), 0.0)
        optimizer.step()
        rows = rows_going
    ran_out = torch.zeros(len(z), dtype=torch.bool, device=z.device)
    ran_out[rows] = True
    best.stopped_early &= ~ran_out


def invert(
    generator: Network,
    images: torch.Tensor,
    latent_dim: int,
    *,
    features: Network | None = None,
    encoder: Encoder | None = None,
    start: str | None = None,
    settings: InversionSettings = InversionSettings(),
    batch_size: int = INFERENCE_BATCH_SIZE,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    precision: str = "float32",
    progress: Progress | None = None,
) -> Inversion:
    """Latents z (N, ``latent_dim``) with G(z) close to ``images`` (N, C, H, W) by Adam on z (module docstring), in
    batches of ``batch_size`` on the images' device.

    Args:
        generator: latents (B, M) -> images (B, C, H, W), differentiable in the latents.
        features: images -> features (B, ...) for the feature term (a classifier's penultimate layer); None: no
            feature term.
        encoder: images -> mean codes (B, M) or (mean, log-variance); used by ``start="encoder"``.
        start: "encoder" (the first start is the encoder's mean, the others draws from the prior) or "prior"
            (every start a draw); None: "encoder" where an encoder is given, else "prior".
        settings: steps, restarts, learning rate, loss weights, early stop and the reach threshold.
        seed: seeds the draws from the prior.
        indices: each image's index in the whole set whose part ``images`` are (default 0, ..., N - 1): image i's
            draws come from (``seed``, ``indices[i]``) (`start_draws`), so that a run that splits a set of images
            into parts (the ranks of a sharded run) finds the latents of one call on the whole set.
        precision: "float32" or "bfloat16": the network passes under bfloat16 autocast with the latter; z and the
            loss stay float32.
        progress: a sink (`progress.Progress`) told N x restarts and each batch's images after each start.

    Raises:
        InversionError: images that are not finite floating-point (N, C, H, W) tensors of the generator's shape; a
            generator that fails on a probe or has no gradient with respect to z; start "encoder" without an
            encoder; an unknown start or a setting out of its range.
        LatentError: the encoder's means are not finite (N, M) codes.
    """
    start = start or ("encoder" if encoder is not None else "prior")
    _check_inputs(latent_dim, start, encoder, settings, precision)
    images = check_images(images, "invert")
    context = _network_context(images.device, precision)
    draws = start_draws(seed, _check_indices(indices, len(images)), settings.restarts, latent_dim)
    if progress is not None:
        progress.reset(total=len(images) * settings.restarts)
    batches = []
    with torch.inference_mode(False), torch.enable_grad():
        _check_generator(generator, tuple(images.shape[1:]), latent_dim, context, images.device)
        for rows in torch.arange(len(images)).split(batch_size):
            targets = images[rows.to(images.device)].detach().float().clone()
            starts = draws[:, rows].to(images.device)
            if start == "encoder":
                assert encoder is not None  # `_check_inputs` refused start "encoder" without one
                starts[0] = _encoder_means(encoder, targets, latent_dim)
            batches.append(_invert_batch(generator, features, targets, starts, settings, context, progress))
    return _result(batches, images, features is not None, start, settings)


def start_draws(seed: int, indices: Sequence[int], restarts: int, latent_dim: int) -> torch.Tensor:
    """The draws from the prior N(0, I_M) that the descents of the images of ``indices`` start from, (restarts, N,
    M) on the CPU: image ``indices[i]``'s come from its own stream, `latent.sets.block_generator` (seed, index, 0),
    whatever other images are drawn for."""
    return torch.stack(
        [torch.randn(restarts, latent_dim, generator=block_generator(seed, index, 0)) for index in indices], 1
    )


def _check_indices(indices: Sequence[int] | None, count: int) -> list[int]:
    """``indices`` as ``count`` whole numbers >= 0 (default 0, ..., count - 1).

    Raises:
        InversionError: not one whole number >= 0 per image.
    """
    if indices is None:
        return list(range(count))
    expected = f"invert: indices must be {count} whole numbers >= 0, one per image"
    try:
        found = [operator.index(index) for index in indices]
    except TypeError:
        raise InversionError(f"{expected}, got {type(indices).__name__}") from None
    if len(found) != count or min(found, default=0) < 0:
        raise InversionError(f"{expected}, got {len(found)} from {min(found, default=0)}")
    return found


def _invert_batch(
    generator: Network,
    features: Network | None,
    targets: torch.Tensor,
    starts: torch.Tensor,
    settings: InversionSettings,
    context: AbstractContextManager,
    progress: Progress | None,
) -> _Best:
    """Every descent of one batch of ``targets`` (B, C, H, W), from each of ``starts`` (restarts, B, M) in turn."""
    with torch.no_grad(), context:
        target_features = None if features is None else features(targets).float()

    def objective(z: torch.Tensor, rows: torch.Tensor) -> InversionTerms:
        with context:
            made = generator(z)
            made_features = None if features is None else features(made.float())
        reference = None if target_features is None else target_features[rows]
        return inversion_terms(z, made, targets[rows], made_features, reference, settings)

    best = _Best(len(targets), starts.shape[2], targets.device)
    for index, start_latents in enumerate(starts):
        _descend(objective, start_latents, index, best, settings)
        if progress is not None:
            progress.update(len(targets))
    return best


def _result(
    batches: list[_Best], images: torch.Tensor, with_features: bool, start: str, settings: InversionSettings
) -> Inversion:
    """The batches' bests as one `Inversion`, with whether each image was reached."""
    terms = InversionTerms(*(torch.cat([batch.terms[k] for batch in batches]) for k in range(3)))
    variance = images.float().flatten(1).var(1, unbiased=False)
    return Inversion(
        latents=torch.cat([batch.latents for batch in batches]),
        loss=terms.loss,
        pixel_mse=terms.pixel_mse,
        feature_distance=terms.feature_distance if with_features else None,
        reached=terms.pixel_mse < settings.reach_threshold * variance,
        finite=torch.cat([batch.finite for batch in batches]),
        steps=torch.cat([batch.steps for batch in batches]),
        stopped_early=torch.cat([batch.stopped_early for batch in batches]),
        best_start=torch.cat([batch.start for batch in batches]),
        start=start,
        settings=settings,
    )
