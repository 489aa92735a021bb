"""GANSpace: Härkönen, Hertzmann, Lehtinen & Paris, "GANSpace: Discovering Interpretable GAN Controls",
NeurIPS 2020 (https://arxiv.org/abs/2004.02546); the authors' code is github.com/harskish/ganspace.

Principal directions of a generator (paper, Sec. 2): sample latents z, take the activations y = G_layer(z) of
one layer, and find the top K principal components u_k of y. In a latent space that is itself a learned
feature (StyleGAN's w) the components are the directions. Otherwise they live in the layer's space and are
carried back to z by linear regression: with x_k = u_k (y - mean) / sigma_k the whitened PCA coordinates of each
sample, solve min_V sum |x V - z|^2 by least squares; the rows of V (K, M), each scaled to unit length, are the
latent directions.

The authors' recipe, followed here (`decomposition.compute`, `linreg_lstsq`, `estimators.IPCAEstimator`):

- the layer: for a generator without a mapping network (BigGAN) their README runs ``--layer=generator.gen_z``,
  the output of the first linear layer on z; that is the default here (``layer="first_linear"``: the first
  ``nn.Linear`` whose input is the latent itself, in the order the forward pass runs them, found by a probe
  call, `latent_linear`). PCA of the latents themselves (their ``samples_are_latents``, for StyleGAN's w) is
  ``layer="latents"``;
- the PCA: scikit-learn's IncrementalPCA without whitening, fed ``partial_fit`` in batches of 2,000 activations
  (their NB = max(B, 2000, 3K), 2,000 for K <= 666); sigma_k = sqrt(explained_variance_);
- the regression on fresh latents: max(10 000, ``n_samples``) of them (their ``n_samp``), drawn with another
  seed, ``seed`` + 2 (their SEED_LINREG = 3 against their default SEED_SAMPLING = 1), without intercept, by
  SVD-based least squares (their ``gelsd``); the rows normalised after it.

For the package's Generator the default layer is ``project.0``, Linear(M, 512), read before the batch norm that
follows it; in the package's inference copies (models/inference.py) that batch norm is folded into
``project.0``, so there the same name is read after it. The two agree on the first three directions (|cos|
0.995, 0.989, 0.976 on the shipped MNIST generator) and swap the 4th and 5th (0.95 each).

Where this differs from the code: latents given to fit are the PCA's samples and are reused for the regression
(the code always samples its own); z is drawn from N(0, I), the package's generators' prior (the code calls each
model's ``sample_latent``; BigGAN's is a normal truncated at +-2); the regression's seed moves with ``seed``
(theirs stays 3 for any ``--seed``); ``n_samples`` defaults to 100,000 (their ``-n`` default is 300,000, their
README's 1,000,000): the PCA costs about 0.25 s per batch at width 512 on one core, 15 s for 100,000 samples;
the regression runs in float64 (theirs in float32); each direction is signed so that its largest component is
positive (their sign is the solver's); the forward pass stops at the layer by an exception from a forward hook,
as their ``partial_forward`` stops early. The PCA runs on one BLAS thread (`single_blas_thread`): on the shared
2-core machine one 2005 x 512 SVD of a ``partial_fit`` took 0.24 s on one thread and 9.1 s on two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..threads import single_blas_thread
from .directions import (
    DirectionMethod,
    FitInputs,
    MethodError,
    Network,
    as_unit_directions,
    canonical_signs,
    check_count,
    check_whole,
    latent_batches,
    layer_root,
    named_layer,
    network_device,
    register,
    standard_normal_draws,
)

if TYPE_CHECKING:
    from sklearn.decomposition import IncrementalPCA

FIRST_LINEAR = "first_linear"  # the layer: the output of the first nn.Linear that takes z (the authors' gen_z)
LATENTS = "latents"  # no layer: the PCA of the latents themselves (the authors' StyleGAN w)
REGRESSION_MIN_SAMPLES = 10_000  # the authors' linreg_lstsq: max(10 000, n) fresh latents
REGRESSION_SEED_OFFSET = 2  # the authors' SEED_LINREG = 3 against SEED_SAMPLING = 1
PROBE_ROWS = 2  # latents of the probe call that finds the first linear layer (2: batch norm in train mode runs)
RANK_TOLERANCE = 1e-10  # a principal component whose variance is below this share of the largest one is empty


class _LayerReached(Exception):
    """Raised by a forward hook to stop the generator once the layer's input or output is known."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


def _run_until(generator: Network, z: torch.Tensor) -> object | None:
    """Run ``generator`` on ``z`` until a hook raises `_LayerReached`; its value, or None when none does."""
    try:
        generator(z.to(network_device(generator)))
    except _LayerReached as reached:
        return reached.value
    return None


def latent_width(generator: nn.Module) -> int | None:
    """M read from ``generator``: the ``latent_dim`` of the user's module inside the package's wrappers
    (`layer_root`; the package's networks carry it, from their ``config``), else the input width of its first
    ``nn.Linear`` in module order, else None."""
    root = layer_root(generator)
    width = getattr(root, "latent_dim", None)
    if isinstance(width, int) and not isinstance(width, bool) and width >= 1:
        return width
    return next((module.in_features for module in root.modules() if isinstance(module, nn.Linear)), None)


def latent_linear(generator: nn.Module, latent_dim: int) -> str:
    """The dotted name (in the user's module, `layer_root`) of the first ``nn.Linear``, in the order the forward
    pass runs them, whose input is the latent itself: found by one probe call on ``PROBE_ROWS`` latents of width
    ``latent_dim``, stopped there.

    Raises:
        MethodError: the generator runs no ``nn.Linear`` on the latent.
    """
    probe = torch.randn(PROBE_ROWS, latent_dim, generator=torch.Generator().manual_seed(0))

    def hook_for(name: str) -> Callable[[nn.Module, tuple], None]:
        def check(module: nn.Module, args: tuple) -> None:
            given = args[0] if args else None
            if (
                isinstance(given, torch.Tensor)
                and given.shape == probe.shape
                and torch.equal(given.detach().to("cpu", probe.dtype), probe)
            ):
                raise _LayerReached(name)

        return check

    handles = [
        module.register_forward_pre_hook(hook_for(name))
        for name, module in layer_root(generator).named_modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        found = _run_until(generator, probe)
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(found, str):  # None: no hook raised (a hook raises its layer's name)
        raise MethodError(
            f"GANSpace: layer expected (the generator runs no nn.Linear on the latent z; name a layer "
            f"or give layer={LATENTS!r}), got {FIRST_LINEAR!r}"
        )
    return found


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
        output = _run_until(generator, z)
    finally:
        handle.remove()
    if output is None:
        raise MethodError(f"GANSpace: layer expected one that the generator's forward pass runs, got {name!r}")
    if not isinstance(output, torch.Tensor) or output.ndim < 1 or len(output) != len(z):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise MethodError(
            f"GANSpace: layer expected one whose output is a tensor with {len(z)} rows, got {name!r} with {got}"
        )
    return output.detach().reshape(len(z), -1).to("cpu", torch.float64)


@register("ganspace")
class GANSpace(DirectionMethod):
    """The top K principal directions of a layer's activations, carried back to the latent space (module
    docstring). Fit uses ``generator`` (a torch module, unless ``layer`` is "latents"; it runs in the mode it is
    in, so put a generator with batch norm in eval mode first) and ``latents`` when given: they are then the
    PCA's samples and the regression's. Otherwise it draws ``n_samples`` latents z ~ N(0, I_M) seeded by
    ``seed`` for the PCA and max(10 000, ``n_samples``) fresh ones seeded by ``seed`` + 2 for the regression (the
    authors' counts and seeds). M comes from ``latent_dim``, the latents, or the generator (`latent_width`), so
    ``get("ganspace", n_directions=5).fit(generator=G)`` needs nothing else.

    Args:
        n_directions: K <= M (and <= the layer's width).
        layer: where the PCA reads: "first_linear" (default, the authors' layer for a generator without a
            mapping network: the output of the first ``nn.Linear`` that takes z, `latent_linear`), "latents" (the
            PCA of the latents themselves, as for StyleGAN's w; give latents of a learned space, such as an
            encoder's codes: the principal axes of drawn N(0, I) latents are sampling noise; None, its name in
            files and configs written before, means the same), or the dotted name of a submodule of the
            generator (as in ``named_modules`` of the user's own module). The two reserved names win over
            submodules called so.
        n_samples: latents drawn for the PCA when fit is given none (authors' default: 300 000).
        batch_size: latents per forward pass and per IncrementalPCA step, >= K (authors: at least 2000).
        latent_dim: M, where fit is given neither latents nor a generator that says it.
        seed: seeds the drawn latents.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit rows, by decreasing variance of their principal component.
        explained_variance_ratio_: (K,) float32, the share of the activations' variance each component explains.
        layer_: the layer read: its dotted name, or "latents".
    """

    inputs = ("generator", "latents")
    reads_activations = True
    fit_latents = None  # it draws its own z for the PCA and fresh ones for the regression, as its authors do

    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(
        self,
        n_directions: int,
        *,
        layer: str | None = FIRST_LINEAR,
        n_samples: int = 100_000,
        batch_size: int = 2_000,
        latent_dim: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.layer = layer
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.seed = seed

    def check_params(self) -> None:
        super().check_params()
        if not (self.layer is None or (isinstance(self.layer, str) and self.layer)):
            raise MethodError(
                f"{self.title}: layer expected {FIRST_LINEAR!r}, {LATENTS!r} or a submodule name, got {self.layer!r}"
            )
        check_whole(self.title, "n_samples", self.n_samples, 1)
        check_whole(self.title, "batch_size", self.batch_size, max(self.n_directions, 1))
        check_whole(self.title, "seed", self.seed, 0)

    def _fit(self, inputs: FitInputs) -> None:
        dim = self._latent_dim(inputs)
        name = self._layer_name(inputs.generator, dim)
        features = self._features(inputs.generator, name)
        latents = self._latents(inputs, self.n_samples, self.seed, dim)
        if len(latents) < self.n_directions:
            raise MethodError(
                f"{self.title}: latents expected at least n_directions = {self.n_directions} rows, got {len(latents)}"
            )
        with single_blas_thread():
            pca = self._principal_components(latents, features, name)
        if name == LATENTS:
            directions = torch.from_numpy(pca.components_)
        else:
            fresh = self._latents(
                inputs, max(REGRESSION_MIN_SAMPLES, self.n_samples), self.seed + REGRESSION_SEED_OFFSET, dim
            )
            directions = regress_latents(pca, fresh, features, self.batch_size)
        self.directions_ = as_unit_directions(canonical_signs(directions))
        self.explained_variance_ratio_ = torch.from_numpy(pca.explained_variance_ratio_).float()
        self.layer_ = name

    def _reads_latents(self) -> bool:
        return self.layer in (None, LATENTS)

    def _latent_dim(self, inputs: FitInputs) -> int:
        """M: from the constructor, the latents or the generator's attribute (`FitInputs`), else, at a layer, read
        from the generator (`latent_width`); checked against K."""
        dim = inputs.latent_dim
        if dim is None and not self._reads_latents() and isinstance(inputs.generator, nn.Module):
            dim = latent_width(inputs.generator)
        dim = dim if dim is not None else inputs.require_latent_dim()
        check_count(self.title, self.n_directions, dim)
        return dim

    def _layer_name(self, generator: Network | None, dim: int) -> str:
        """The layer the PCA reads: "latents", the first linear layer on z (`latent_linear`), or ``layer``."""
        if self._reads_latents():
            return LATENTS
        assert self.layer is not None  # None reads the latents (`_reads_latents`)
        if self.layer != FIRST_LINEAR:
            return self.layer
        if not isinstance(generator, nn.Module):
            got = "None" if generator is None else type(generator).__name__
            raise MethodError(f"{self.title}: generator expected a torch module (layer {FIRST_LINEAR!r}), got {got}")
        return latent_linear(generator, dim)

    def _features(self, generator: Network | None, name: str) -> Network:
        """latents (B, M) -> float64 (B, D): the latents themselves, or the activations of the layer ``name``."""
        if name == LATENTS:
            return lambda z: z.to(torch.float64)
        layer = named_layer(self.title, generator, name)
        assert generator is not None  # named_layer refuses anything but a torch module
        return lambda z: layer_activations(generator, layer, name, z)

    def _latents(self, inputs: FitInputs, count: int, seed: int, dim: int) -> torch.Tensor:
        """The given latents, or ``count`` draws from N(0, I_M) seeded by ``seed``."""
        if inputs.latents is not None:
            return inputs.latents.detach().cpu()
        return standard_normal_draws(self.title, count, dim, torch.Generator().manual_seed(seed))

    def _principal_components(self, latents: torch.Tensor, features: Network, name: str) -> IncrementalPCA:
        """The authors' IPCA estimator: IncrementalPCA of the ``features`` of ``latents``, one ``partial_fit`` per
        batch, its rank checked."""
        from sklearn.decomposition import IncrementalPCA  # imported here: `import latentspectra` stays light

        pca = IncrementalPCA(n_components=self.n_directions)
        for batch in latent_batches(latents, self.batch_size):
            activations = features(batch)
            if activations.shape[1] < self.n_directions:
                raise MethodError(
                    f"{self.title}: n_directions expected <= the width {activations.shape[1]} of layer "
                    f"{name!r}, got {self.n_directions}"
                )
            pca.partial_fit(activations.numpy())
        self._check_rank(pca, name)
        return pca

    def _check_rank(self, pca: IncrementalPCA, name: str) -> None:
        variances = pca.explained_variance_
        rank = int((variances > RANK_TOLERANCE * variances.max()).sum()) if variances.max() > 0 else 0
        if rank < self.n_directions:
            where = "the latents" if name == LATENTS else f"layer {name!r}"
            raise MethodError(
                f"{self.title}: n_directions expected <= the rank {rank} of the activations of {where}, "
                f"got {self.n_directions}"
            )


def _whitened_coordinates(pca: IncrementalPCA, activations: torch.Tensor) -> np.ndarray:
    """(B, K): the PCA coordinates of ``activations`` (B, D), each divided by its component's standard deviation."""
    centred = activations.numpy() - pca.mean_
    return centred @ pca.components_.T / np.sqrt(pca.explained_variance_)


def regress_latents(pca: IncrementalPCA, latents: torch.Tensor, features: Network, batch_size: int) -> torch.Tensor:
    """(K, M) float64: V minimising sum |x V - z|^2 over the ``latents`` z and the whitened PCA coordinates x of their
    ``features``, by least squares (the authors' `linreg_lstsq`); row k is principal component k in latent space."""
    coordinates = np.concatenate(
        [_whitened_coordinates(pca, features(batch)) for batch in latent_batches(latents, batch_size)]
    )
    return torch.linalg.lstsq(torch.from_numpy(coordinates), latents.to(torch.float64), driver="gelsd").solution
