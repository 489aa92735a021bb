"""The Jacobians Rayleigh EigenDirections need (methods/reds.py): of image features f(G(z)) and g(G(z)) with
respect to the latent z, exact from `torch.func.jacfwd` (forward mode: M = 100 tangents instead of up to
784 outputs) vmapped over the batch, or by central differences as the authors' code takes them.

They are taken in the dtype the networks take (`input_dtype`: the widest of float64 and float32 that G, f
and g run on, found by running them once): a user's network holds its weights as parameters, buffers or
constants of an exported program, or in a plain function, in the dtype it was made in, float32 most often.
`jacobian_networks` prepares what REDs differentiates, for `latentspectra reds` and compare's adapter alike:
float64 copies of the package's own networks, whose parameters it may cast; a user's networks as they are.

What a user's float32 networks lose against float64, measured on the shipped MNIST generator and classifier
(the same folded networks cast to each dtype) at the encoder means of the first 50 test images, for the three
examples of docs/reds.md (upper / lower, thickness / identity, identity / thickness), median / max over the
latents: the relative Frobenius error of J_f and J_g is at most 7.8e-7 / 4.3e-6 (six of float32's seven digits
kept); 1 - |cos| between the float32 and float64 top directions at most 4.0e-12 / 2.8e-10 (an angle below
2.4e-5 rad), generalized or nullspace; the relative error of the top Rayleigh quotient at most 1.0e-6 / 1.3e-5;
the nullspace dimensions identical. Float64 costs 2.2-4.8x the seconds per Jacobian. Along the study's 6-step
paths the first steps differ by at most 2.4e-5, but at a few latents the two paths part (identity / thickness:
12 of the 200 generalized paths end more than 1e-3 apart). AMD EPYC (`lscpu`), CPU capability AVX512
(`torch.backends.cpu.get_cpu_capability()`), torch 2.13.0+cpu, one thread; the command is in docs/reds.md
("Float32 or float64 Jacobians").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import jacfwd, vmap

from ..compute import Network, computes_float64
from ..errors import LatentspectraError
from ..latent.checks import check_latents
from ..models.inference import fold_batch_norms, frozen
from ..models.layers import Configured

LATENT_DTYPES = (torch.float64, torch.float32)  # what `input_dtype` tries first, widest first


class RedsError(LatentspectraError, ValueError):
    """Bad latents, features, parameters or a held Gram matrix that is singular with eps = 0."""


# --- The networks and the dtype they take ------------------------------------------------------------


def is_package_network(network: object) -> bool:
    """One of the package's own model classes (`models.layers.Configured`: generator, classifier, encoder,
    autoencoder), whose parameters the package may cast; a user's network (`ForeignNetwork`) is not."""
    return isinstance(network, Configured)


def _widest_dtype(networks: tuple[nn.Module, ...], device: torch.device) -> torch.dtype:
    """float64 where every network is the package's own and ``device`` computes in float64 (`computes_float64`),
    else float32."""
    owned = all(is_package_network(network) for network in networks)
    return torch.float64 if owned and computes_float64(device) else torch.float32


def jacobian_networks(*networks: nn.Module, device: torch.device | str = "cpu") -> tuple[nn.Module, ...]:
    """The networks REDs differentiates (G, and C where a feature reads it: the Jacobians J_f and J_g of
    f(G(z)) and g(G(z)) the paper's Rayleigh quotient is built from), frozen in eval mode with batch norm
    folded, on ``device``: copies in float64 where all of them are the package's own (`is_package_network`),
    else float32 copies of those; a user's network as it is, in the dtype it was made in (`input_dtype` finds
    it). ``networks`` are untouched, except a user's network, which is only moved to ``device``
    (`models.inference.frozen`). `latentspectra reds` and compare's REDs adapter take their networks from here.
    """
    device = torch.device(device)
    dtype = _widest_dtype(networks, device)
    prepared = (fold_batch_norms(frozen(network)).requires_grad_(False) for network in networks)
    return tuple(
        copy.to(device=device, dtype=dtype) if is_package_network(copy) else copy.to(device) for copy in prepared
    )


def _first_line(error: RuntimeError) -> str:
    """The first line of what ``error`` says, at most 120 characters."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return reason if len(reason) <= 120 else reason[:117] + "..."


def _failure(latent: torch.Tensor, generator: Network, features: tuple[Network, ...]) -> RuntimeError | None:
    """What G and then each feature raise on ``latent``; None where they run."""
    try:
        with torch.no_grad():
            images = generator(latent)
            for feature in features:
                feature(images)
    except RuntimeError as error:  # a dtype mismatch: torch raises RuntimeError
        return error
    return None


def input_dtype(z: torch.Tensor, generator: Network, *features: Network) -> torch.dtype:
    """The floating dtype in which latents go through G and then ``features``: the first of float64,
    float32 and z's own dtype on which they run, tried on the first latent of ``z`` (B, M) or (M,). It is
    float32 for a float32 network whatever holds its weights (parameters, buffers, an exported program's
    constants, a plain function's tensors), float64 for the package's own float64 copies (`jacobian_networks`).

    Raises:
        RedsError: they run on none of these dtypes, with what they raised on z's.
    """
    latent = as_batch(z)[:1]
    failures = {}
    for dtype in dict.fromkeys((*LATENT_DTYPES, z.dtype)):
        failures[dtype] = _failure(latent.to(dtype), generator, features)
        if failures[dtype] is None:
            return dtype
    names = ", ".join(str(dtype).removeprefix("torch.") for dtype in failures)
    failure = failures[z.dtype]
    assert failure is not None  # each dtype failed: one that did not was returned above
    raise RedsError(f"G, f and g fail on latents of each of {names} ({_first_line(failure)})")


# --- Checks ------------------------------------------------------------------------------------------


def as_batch(z: torch.Tensor) -> torch.Tensor:
    """(B, M) latents as they are, a single (M,) latent as a batch of one."""
    return z.reshape(-1, z.shape[-1])


def _check_callables(generator: Network, f: Network, g: Network) -> None:
    """G, f and g are callables, before anything calls them."""
    for name, network in (("generator", generator), ("f", f), ("g", g)):
        if not callable(network):
            raise RedsError(f"{name} must be callable, got {type(network).__name__}")


def _check_features(generator: Network, f: Network, g: Network, z: torch.Tensor) -> tuple[int, int]:
    """Run G, f and g once on the first latent; returns (d_f, d_g) after checking each feature gives a
    finite (1, d) floating tensor."""
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
                raise RedsError(
                    f"feature {name} must map a batch of B images to a (B, d) tensor with d >= 1; "
                    f"for B = 1 it gave {shape}"
                )
            if not value.is_floating_point():
                raise RedsError(f"feature {name} must give floating-point values, got {value.dtype}")
            if not torch.isfinite(value).all():
                raise RedsError(f"feature {name} gave non-finite values at the first latent")
            dims.append(value.shape[1])
    return dims[0], dims[1]


def _checked_latents(generator: Network, f: Network, g: Network, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``batch`` (B, M) in the dtype G, f and g take (`input_dtype`), after checking them (`_check_features`);
    and d_f."""
    _check_callables(generator, f, g)
    batch = batch.to(input_dtype(batch, generator, f, g))
    return batch, _check_features(generator, f, g, batch)[0]


# --- Jacobians ---------------------------------------------------------------------------------------


def feature_jacobians(
    generator: Network, f: Network, g: Network, z: torch.Tensor, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Jacobians of f(G(z)) and g(G(z)) with respect to z, by `torch.func.jacfwd` vmapped over
    the batch (no Python loop over latents or outputs), ``batch_size`` latents at a time.

    ``generator`` maps latents (N, M) to outputs (N, ...) and must treat each latent on its own (an
    eval-mode network); f and g map those outputs to (N, d_f) and (N, d_g). The latents are cast to the
    dtype G, f and g take (`input_dtype`: float64 for `jacobian_networks`' copies of the package's own
    networks, float32 for a float32 network of a user's), which the Jacobians have.

    Args:
        z: (B, M) or (M,) latents.

    Returns:
        J_f (B, d_f, M) and J_g (B, d_g, M), or (d_f, M) and (d_g, M) for one latent.

    Raises:
        LatentError: latents that are not a finite floating-point (B, M) or (M,) tensor.
        RedsError: a non-callable, G, f and g failing on latents of every dtype `input_dtype` tries, a
            feature that does not give (B, d) finite values, or one that torch.func cannot differentiate
            (e.g. one calling .item() or branching on values).
    """
    batch, _ = _checked_latents(generator, f, g, as_batch(check_latents(z, "feature_jacobians", vector=True)))

    def features_of_one(latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = generator(latent.unsqueeze(0))
        return f(images)[0], g(images)[0]

    jacobian = vmap(jacfwd(features_of_one))
    try:
        parts = [jacobian(chunk) for chunk in batch.split(batch_size)]
    except RuntimeError as error:
        raise RedsError(
            f"torch.func cannot differentiate G, f or g ({_first_line(error)}); features must be "
            "differentiable torch functions without .item() or branches on values"
        ) from None
    j_f, j_g = torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
    return (j_f, j_g) if z.ndim == 2 else (j_f[0], j_g[0])


def central_difference_jacobians(
    generator: Network, f: Network, g: Network, z: torch.Tensor, step: float, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
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
    batch, d_f = _checked_latents(generator, f, g, batch)
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
