"""GANSpace: Härkönen, Hertzmann, Lehtinen & Paris, "GANSpace: Discovering Interpretable GAN Controls",
NeurIPS 2020 (https://arxiv.org/abs/2004.02546); the authors' code is github.com/harskish/ganspace.

Principal directions of a generator (paper, Sec. 2): sample latents z, take the activations y = G_layer(z) of
one layer, and find the top K principal components u_k of y. In a latent space that is itself a learned
feature (StyleGAN's w; here ``layer=None``) the components are the directions. Otherwise they live in the
layer's space and are carried back to z by linear regression: with x_k = u_k (y - mean) / sigma_k the whitened
PCA coordinates of each sample, solve min_V sum |x V - z|^2 by least squares; the rows of V (K, M), each scaled
to unit length, are the latent directions.

Followed from the authors' code (`decomposition.compute`, `linreg_lstsq`, `estimators.IPCAEstimator`): PCA by
scikit-learn's IncrementalPCA fed in batches of activations (memory bounded for any number of samples), the
coordinates whitened by the square roots of the explained variances before the regression, the regression
without intercept, and the rows normalised after it. Where this differs: the regression reuses the PCA's
samples in a second pass (the code draws at least 10 000 fresh ones with another seed), so that given latents
work too; the forward pass stops at the layer, as the code's `partial_forward` does, by an exception from a
forward hook; each direction is signed so that its largest component is positive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .directions import (DirectionMethod, FitInputs, MethodError, Network, as_unit_directions, canonical_signs,
                         check_whole, latent_batches, named_layer, network_device, register)

if TYPE_CHECKING:
    from sklearn.decomposition import IncrementalPCA

RANK_TOLERANCE = 1e-10  # a principal component whose variance is below this share of the largest one is empty


class _LayerReached(Exception):
    """Raised by the forward hook to stop the generator once the layer's output is known."""

    def __init__(self, output: object) -> None:
        super().__init__()
        self.output = output


def layer_activations(generator: Network, layer: nn.Module, name: str, z: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a submodule of ``generator`` called ``name``) while ``generator`` runs on ``z``
    (N, M), flattened to (N, D), float64 on the CPU; the rest of the forward pass is skipped.

    Raises:
        MethodError: the forward pass never runs ``layer``, or its output is not one tensor with N rows.
    """

    def stop(module: nn.Module, args: object, output: object) -> None:
        raise _LayerReached(output)

    handle = layer.register_forward_hook(stop)
    try:
        generator(z.to(network_device(generator)))
    except _LayerReached as reached:
        output = reached.output
    else:
        raise MethodError(f"GANSpace: layer expected one that the generator's forward pass runs, got {name!r}")
    finally:
        handle.remove()
    if not isinstance(output, torch.Tensor) or output.ndim < 1 or len(output) != len(z):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise MethodError(f"GANSpace: layer expected one whose output is a tensor with {len(z)} rows, got {name!r} "
                          f"with {got}")
    return output.detach().reshape(len(z), -1).to("cpu", torch.float64)


@register("ganspace")
class GANSpace(DirectionMethod):
    """The top K principal directions of a layer's activations, carried back to the latent space (module
    docstring). Fit uses ``generator`` (a torch module, only when ``layer`` is set; it runs in the mode it is in,
    so put a generator with batch norm in eval mode first) and ``latents`` when given; otherwise it draws
    ``n_samples`` latents z ~ N(0, I_M), M from ``latent_dim`` or the generator. Without a layer, give latents of
    a learned space (a mapping network's w, an encoder's codes): the principal axes of drawn N(0, I) latents are
    sampling noise.

    Args:
        n_directions: K <= M (and <= the layer's width).
        layer: the dotted name of a submodule of the generator (as in ``named_modules``), or None for the PCA of
            the latents themselves.
        n_samples: latents drawn when fit is given none (authors' default: 300 000 for 512-dimensional latents).
        batch_size: latents per forward pass and per IncrementalPCA step, >= K (authors: at least 2000).
        latent_dim: M, where fit is given neither latents nor a generator that says it.
        seed: seeds the drawn latents.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit rows, by decreasing variance of their principal component.
        explained_variance_ratio_: (K,) float32, the share of the activations' variance each component explains.
    """

    inputs = ("generator", "latents")

    def __init__(self, n_directions: int, *, layer: str | None = None, n_samples: int = 100_000,
                 batch_size: int = 2_000, latent_dim: int | None = None, seed: int = 0) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.layer = layer
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.seed = seed

    def check_params(self) -> None:
        super().check_params()
        if not (self.layer is None or (isinstance(self.layer, str) and self.layer)):
            raise MethodError(f"{self.title}: layer expected None or a submodule name, got {self.layer!r}")
        check_whole(self.title, "n_samples", self.n_samples, 1)
        check_whole(self.title, "batch_size", self.batch_size, max(self.n_directions, 1))
        check_whole(self.title, "seed", self.seed, 0)

    def _fit(self, inputs: FitInputs) -> None:
        latents = self._latents(inputs)
        if len(latents) < self.n_directions:
            raise MethodError(f"{self.title}: latents expected at least n_directions = {self.n_directions} rows, "
                              f"got {len(latents)}")
        from sklearn.decomposition import IncrementalPCA  # imported here: `import latentspectra` stays light

        features = self._features(inputs.generator)
        pca = IncrementalPCA(n_components=self.n_directions)
        for batch in latent_batches(latents, self.batch_size):
            activations = features(batch)
            if activations.shape[1] < self.n_directions:
                raise MethodError(f"{self.title}: n_directions expected <= the width {activations.shape[1]} of layer "
                                  f"{self.layer!r}, got {self.n_directions}")
            pca.partial_fit(activations.numpy())
        self._check_rank(pca)
        if self.layer is None:
            directions = torch.from_numpy(pca.components_)
        else:
            directions = regress_latents(pca, latents, features, self.batch_size)
        self.directions_ = as_unit_directions(canonical_signs(directions))
        self.explained_variance_ratio_ = torch.from_numpy(pca.explained_variance_ratio_).float()

    def _latents(self, inputs: FitInputs) -> torch.Tensor:
        """The given latents, or ``n_samples`` draws from N(0, I_M) seeded by ``seed``."""
        if inputs.latents is not None:
            return inputs.latents.detach().cpu()
        rng = torch.Generator().manual_seed(self.seed)
        return torch.randn(self.n_samples, inputs.require_latent_dim(), generator=rng)

    def _features(self, generator: Network | None) -> Network:
        """latents (B, M) -> float64 (B, D): the latents themselves, or the activations of ``layer``."""
        if self.layer is None:
            return lambda z: z.to(torch.float64)
        layer = named_layer(self.title, generator, self.layer)
        return lambda z: layer_activations(generator, layer, self.layer, z)

    def _check_rank(self, pca: IncrementalPCA) -> None:
        variances = pca.explained_variance_
        rank = int((variances > RANK_TOLERANCE * variances.max()).sum()) if variances.max() > 0 else 0
        if rank < self.n_directions:
            where = "the latents" if self.layer is None else f"layer {self.layer!r}"
            raise MethodError(f"{self.title}: n_directions expected <= the rank {rank} of the activations of {where}, "
                              f"got {self.n_directions}")


def _whitened_coordinates(pca: IncrementalPCA, activations: torch.Tensor) -> np.ndarray:
    """(B, K): the PCA coordinates of ``activations`` (B, D), each divided by its component's standard deviation."""
    centred = activations.numpy() - pca.mean_
    return centred @ pca.components_.T / np.sqrt(pca.explained_variance_)


def regress_latents(pca: IncrementalPCA, latents: torch.Tensor, features: Network, batch_size: int) -> torch.Tensor:
    """(K, M) float64: V minimising sum |x V - z|^2 over the ``latents`` z and the whitened PCA coordinates x of their
    ``features``, by least squares (the authors' `linreg_lstsq`); row k is principal component k in latent space."""
    coordinates = np.concatenate([_whitened_coordinates(pca, features(batch))
                                  for batch in latent_batches(latents, batch_size)])
    return torch.linalg.lstsq(torch.from_numpy(coordinates), latents.to(torch.float64), driver="gelsd").solution
