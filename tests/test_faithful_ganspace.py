"""GANSpace as its authors run it (Härkönen et al. 2020; github.com/harskish/ganspace): a port, written here, of
their procedure (`decomposition.compute` with `estimators.IPCAEstimator`, then `linreg_lstsq` and the row
normalisation) against `methods.ganspace.GANSpace`, and the default layer found on the shipped generator."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.decomposition import IncrementalPCA
from torch import nn

from latentspectra.compute import Compute
from latentspectra.methods import GANSpace, MethodError, get
from latentspectra.models.files import load_model, shipped_models_dir
from latentspectra.models.inference import InferenceNetwork

M, HIDDEN, OUT, K = 8, 32, 24, 5
N_SAMPLES = 4_000  # two IPCA batches of the authors' NB = 2,000
SEED_SAMPLING, SEED_LINREG = 1, 3  # the authors' seeds of the PCA's latents and of the regression's
# |cos| per direction with the port: the issue asks for 0.999; other regression samples alone give 0.997-0.9999,
# the same procedure on the same samples differs by rounding only (float32 against float64)
AGREEMENT = 0.99999


def small_generator() -> nn.Sequential:
    """Linear -> ReLU -> Linear with fixed weights, without a ``latent_dim`` attribute (M is read from it)."""
    torch.manual_seed(7)
    return nn.Sequential(OrderedDict(first=nn.Linear(M, HIDDEN), relu=nn.ReLU(), second=nn.Linear(HIDDEN, OUT))).eval()


def activations_at(generator: nn.Module, layer: str, z: np.ndarray) -> np.ndarray:
    """The authors' `partial_forward` + `retained_features`: the output of ``layer`` for latents ``z``, float32."""
    kept = {}
    handle = generator.get_submodule(layer).register_forward_hook(lambda module, args, output: kept.update(out=output))
    with torch.no_grad():
        generator(torch.from_numpy(z))
    handle.remove()
    return kept["out"].reshape(len(z), -1).numpy()


def authors_ganspace(
    generator: nn.Module,
    layer: str,
    pca_latents: np.ndarray,
    regression_latents: np.ndarray,
    components: int,
    nb: int = 2_000,
) -> np.ndarray:
    """Their procedure on float32 latents: IncrementalPCA (not whitened, their estimator's batch_size) fed one
    ``partial_fit`` per NB activations; the PCA coordinates of the regression's activations, centred on the PCA
    mean and divided by sqrt(explained_variance_); ``scipy.linalg.lstsq(A, Z, lapack_driver="gelsd")``; the first
    K rows of the solution, each normalised."""
    ipca = IncrementalPCA(components, whiten=False, batch_size=max(100, 2 * components))
    for start in range(0, len(pca_latents), nb):
        ipca.partial_fit(activations_at(generator, layer, pca_latents[start : start + nb]))
    comp = ipca.components_.astype(np.float32)
    mean = ipca.mean_.astype(np.float32)
    stdev = np.sqrt(ipca.explained_variance_).astype(np.float32)
    coords = (activations_at(generator, layer, regression_latents) - mean) @ comp.T / stdev
    solution = scipy.linalg.lstsq(coords, regression_latents, lapack_driver="gelsd")[0]
    directions = solution[:components]
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def normal_latents(count: int, seed: int) -> np.ndarray:
    """``count`` z ~ N(0, I_M) as GANSpace draws them for ``seed``."""
    return torch.randn(count, M, generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("layer", [None, "second"])  # None: the default, the first linear layer on z
def test_ganspace_gives_the_authors_directions(layer):
    generator = small_generator()
    params = {} if layer is None else {"layer": layer}
    ours = get("ganspace", n_directions=K, n_samples=N_SAMPLES, seed=SEED_SAMPLING, **params).fit(generator=generator)
    assert ours.layer_ == (layer or "first")
    # the same samples and seeds: N_SAMPLES for the PCA, max(10 000, N_SAMPLES) fresh ones for the regression
    theirs = authors_ganspace(
        generator,
        ours.layer_,
        normal_latents(N_SAMPLES, SEED_SAMPLING),
        normal_latents(max(10_000, N_SAMPLES), SEED_LINREG),
        K,
    )
    cosines = (ours.directions_.double() * torch.from_numpy(theirs).double()).sum(1).abs()
    assert bool((cosines >= AGREEMENT).all()), cosines


def test_given_latents_are_the_pca_and_the_regression_samples():
    generator = small_generator()
    latents = torch.from_numpy(normal_latents(N_SAMPLES, 11))
    ours = GANSpace(K, layer="second", seed=SEED_SAMPLING).fit(generator=generator, latents=latents)
    theirs = authors_ganspace(generator, "second", latents.numpy(), latents.numpy(), K)
    cosines = (ours.directions_.double() * torch.from_numpy(theirs).double()).sum(1).abs()
    assert bool((cosines >= AGREEMENT).all()), cosines


class Reordered(nn.Module):
    """A generator whose modules are registered in another order than its forward pass runs them, with a linear
    layer that never sees z first in module order."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Linear(HIDDEN, OUT)
        self.early = nn.Linear(M, HIDDEN)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.late(torch.tanh(self.early(z)))


def test_the_default_layer_is_the_first_linear_the_forward_pass_runs_on_z():
    method = GANSpace(2, n_samples=2_000, latent_dim=M).fit(generator=Reordered())
    assert method.layer_ == "early"


def test_the_default_layer_needs_a_linear_on_z():
    class Doubling(nn.Module):  # its only Linear takes 2 z, not z
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(M, OUT)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.linear(2 * z)

    with pytest.raises(MethodError, match="GANSpace: layer expected .*runs no nn.Linear on the latent z"):
        GANSpace(2, n_samples=100, batch_size=50).fit(generator=Doubling())
    with pytest.raises(MethodError, match=r"GANSpace: generator expected a torch module \(layer 'first_linear'\)"):
        GANSpace(2, n_samples=100, batch_size=50, latent_dim=M).fit(generator=lambda z: z)


@pytest.mark.slow
def test_default_on_the_shipped_generator():
    """``get("ganspace", n_directions=5).fit(generator=G)`` with nothing else (a smaller sample, for time): the
    first linear layer on z is ``project.0``, Linear(100, 512), found through the package's inference copy too
    (where batch norm is folded into it)."""
    generator, _ = load_model(shipped_models_dir("mnist"), "generator")
    method = get("ganspace", n_directions=5, n_samples=2_000).fit(generator=generator)
    assert method.layer_ == "project.0" and method.directions_.shape == (5, 100)
    assert torch.allclose(method.directions_.norm(dim=1), torch.ones(5))
    folded = get("ganspace", n_directions=5, n_samples=2_000).fit(
        generator=InferenceNetwork(generator, Compute.select("cpu", "float32"))
    )
    assert folded.layer_ == "project.0"
