"""The Jacobians Rayleigh EigenDirections need (methods/reds.py): of image features f(G(z)) and g(G(z)) with
respect to the latent z, exact from `torch.func.jacfwd` (forward mode: M = 100 tangents instead of up to
784 outputs) vmapped over the batch, or by central differences as the authors' code takes them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jacfwd, vmap

from ..errors import LatentspectraError
from ..latent.checks import check_latents

Network = Callable[[torch.Tensor], torch.Tensor]


class RedsError(LatentspectraError, ValueError):
    """Bad latents, features, parameters or a held Gram matrix that is singular with eps = 0."""


# --- Checks ------------------------------------------------------------------------------------------

def as_batch(z: torch.Tensor) -> torch.Tensor:
    """(B, M) latents as they are, a single (M,) latent as a batch of one."""
    return z.reshape(-1, z.shape[-1])


def _check_features(generator: Network, f: Network, g: Network, z: torch.Tensor) -> tuple[int, int]:
    """Run G, f and g once on the first latent; returns (d_f, d_g) after checking each feature gives a
    finite (1, d) floating tensor."""
    for name, network in (("generator", generator), ("f", f), ("g", g)):
        if not callable(network):
            raise RedsError(f"{name} must be callable, got {type(network).__name__}")
    with torch.no_grad():
        images = generator(z[:1])
        if not isinstance(images, torch.Tensor) or images.ndim < 2 or images.shape[0] != 1:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise RedsError(f"generator: expected a batch of 1 output for 1 latent, got {shape}")
        dims = []
        for name, feature in (("f", f), ("g", g)):
            value = feature(images)
            if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[0] != 1 or value.shape[1] == 0:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise RedsError(f"feature {name} must map a batch of B images to a (B, d) tensor with d >= 1; "
                                f"for B = 1 it gave {shape}")
            if not value.is_floating_point():
                raise RedsError(f"feature {name} must give floating-point values, got {value.dtype}")
            if not torch.isfinite(value).all():
                raise RedsError(f"feature {name} gave non-finite values at the first latent")
            dims.append(value.shape[1])
    return dims[0], dims[1]


def _input_dtype(generator: Network, z: torch.Tensor) -> torch.dtype:
    """The floating dtype of the generator's parameters (when it has any), else the dtype of ``z``."""
    if isinstance(generator, torch.nn.Module):
        for parameter in generator.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
    return z.dtype


# --- Jacobians ---------------------------------------------------------------------------------------

def feature_jacobians(generator: Network, f: Network, g: Network, z: torch.Tensor,
                      batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Jacobians of f(G(z)) and g(G(z)) with respect to z, by `torch.func.jacfwd` vmapped over
    the batch (no Python loop over latents or outputs), ``batch_size`` latents at a time.

    ``generator`` maps latents (N, M) to outputs (N, ...) and must treat each latent on its own (an
    eval-mode network); f and g map those outputs to (N, d_f) and (N, d_g). The latents are cast to the
    generator's parameter dtype (float32 for the shipped networks).

    Args:
        z: (B, M) or (M,) latents.

    Returns:
        J_f (B, d_f, M) and J_g (B, d_g, M), or (d_f, M) and (d_g, M) for one latent.

    Raises:
        LatentError: latents that are not a finite floating-point (B, M) or (M,) tensor.
        RedsError: a non-callable, a feature that does not give (B, d) finite values, or one
            that torch.func cannot differentiate (e.g. one calling .item() or branching on values).
    """
    batch = as_batch(check_latents(z, "feature_jacobians", vector=True))
    batch = batch.to(_input_dtype(generator, batch))
    _check_features(generator, f, g, batch)

    def features_of_one(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = generator(latent.unsqueeze(0))
        return f(images)[0], g(images)[0]

    jacobian = vmap(jacfwd(features_of_one))
    try:
        parts = [jacobian(chunk) for chunk in batch.split(batch_size)]
    except RuntimeError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = reason if len(reason) <= 120 else reason[:117] + "..."
        raise RedsError(f"torch.func cannot differentiate G, f or g ({reason}); features must be "
                        "differentiable torch functions without .item() or branches on values") from None
    j_f, j_g = torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
    return (j_f, j_g) if z.ndim == 2 else (j_f[0], j_g[0])


def central_difference_jacobians(generator: Network, f: Network, g: Network, z: torch.Tensor, step: float,
                                 batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Jacobians of f(G(z)) and g(G(z)) by central differences, as the authors' code takes them:
    column m is (h(z + step e_m) - h(z - step e_m)) / (2 step), from 2 M evaluations per latent.

    Same shapes, dtype and requirements as `feature_jacobians`; the 2 B M perturbed latents go through
    G, f and g ``batch_size`` at a time, without gradients.

    Raises:
        LatentError: latents that are not a finite floating-point (B, M) or (M,) tensor.
        RedsError: bad features or a step that is not a finite positive number.
    """
    batch = as_batch(check_latents(z, "central_difference_jacobians", vector=True))
    if not (isinstance(step, (int, float)) and 0 < step < float("inf")):
        raise RedsError(f"central_difference_jacobians: step must be a finite positive number, got {step!r}")
    batch = batch.to(_input_dtype(generator, batch))
    d_f, _ = _check_features(generator, f, g, batch)
    count, dim = batch.shape
    offsets = step * torch.eye(dim, dtype=batch.dtype, device=batch.device)
    shifted = torch.stack([batch[:, None] + offsets, batch[:, None] - offsets], dim=1)  # (B, 2, M, M)

    def features(latents: torch.Tensor) -> torch.Tensor:
        images = generator(latents)
        return torch.cat([f(images), g(images)], dim=1)

    with torch.no_grad():
        values = torch.cat([features(chunk) for chunk in shifted.reshape(-1, dim).split(batch_size)])
    plus, minus = values.reshape(count, 2, dim, -1).unbind(1)  # (B, M, d_f + d_g) each
    jacobian = ((plus - minus) / (2 * step)).transpose(1, 2)  # (B, d_f + d_g, M)
    j_f, j_g = jacobian[:, :d_f], jacobian[:, d_f:]
    return (j_f, j_g) if z.ndim == 2 else (j_f[0], j_g[0])
