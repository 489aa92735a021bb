"""The package's own methods behind the direction contract (methods/ours.py): each adapter gives the wrapped
code's numbers bit for bit on tiny toys (LSD: the basis of `build_basis`; SFVQ: `SFVQ.fit`'s codebook; REDs:
`rayleigh_directions` at the mean latent and `rayleigh_path`), LSD's label rotation moves the LSD
classification from the source label to the target, and errors are one-line MethodErrors. The registry-wide
contract (fit, edit, transform, files) runs in test_directions.py."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import linear_label_toy
from latentspectra.experiments.basis import build_basis
from latentspectra.methods import (
    SFVQ,
    LSDDirections,
    MethodError,
    REDsDirections,
    SFVQDirections,
    get,
    load_method,
    rayleigh_directions,
    rayleigh_path,
    save_method,
)
from latentspectra.methods.features import feature_from_spec

DIM, LABELS, PER_SET = 10, 4, 30  # n = 2 sets of 4 labels: 8 etas and 2 unlabelled directions


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded torch: these tiny problems gain nothing from threads on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lsd_toy(seed: int = 0):
    """`conftest.linear_label_toy` at M = DIM, l = LABELS: G and C only."""
    return linear_label_toy(seed, DIM, LABELS)[:2]


# --- LSD ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orthogonalisation", ["gram-schmidt", "symmetric"])
def test_lsd_builds_the_basis_of_build_basis_bit_for_bit(orthogonalisation, tmp_path):
    generator, classifier = lsd_toy()
    built = build_basis(
        generator,
        classifier,
        None,
        None,
        per_set=PER_SET,
        seed=5,
        batch_size=64,
        progress=False,
        latent_dim=DIM,
        num_labels=LABELS,
        orthogonalisation=orthogonalisation,
    ).basis
    method = LSDDirections(
        per_set=PER_SET, orthogonalisation=orthogonalisation, seed=5, batch_size=64, latent_dim=DIM
    ).fit(generator=generator, classifier=classifier)
    basis = method.basis_
    for name in ("vectors", "labels", "sets"):
        assert torch.equal(getattr(basis, name), getattr(built, name)), name
    assert basis.norm == built.norm == DIM and basis.provenance == built.provenance
    # directions: every basis row in order, scaled to unit length xi_k / sqrt(C)
    assert method.directions_.shape == (DIM, DIM) and method.directions_.dtype == torch.float32
    assert torch.allclose(method.directions_.double() * math.sqrt(DIM), built.vectors, atol=1e-6)
    first = LSDDirections(
        3, per_set=PER_SET, orthogonalisation=orthogonalisation, seed=5, batch_size=64, latent_dim=DIM
    ).fit(generator=generator, classifier=classifier)
    assert torch.equal(first.directions_, method.directions_[:3])
    # coefficients are Eq. 10's c_k (decompose); transform, the contract's z d_k, is sqrt(C) c_k
    z = torch.randn(6, DIM, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first.coefficients(z), built.decompose(z))
    assert torch.allclose(first.transform(z).double(), math.sqrt(DIM) * built.decompose(z)[:, :3], atol=1e-5)
    # the files keep the whole basis
    loaded = load_method(save_method(first, tmp_path / "lsd.safetensors"))
    assert torch.equal(loaded.basis_.vectors, built.vectors) and loaded.basis_.provenance == built.provenance
    # a basis built elsewhere gives the fitted method without sampling
    given = LSDDirections.from_basis(
        built, 3, per_set=PER_SET, orthogonalisation=orthogonalisation, seed=5, batch_size=64
    )
    assert given.get_params() == first.get_params() and torch.equal(given.directions_, first.directions_)
    assert torch.equal(given.basis_.vectors, built.vectors)
    with pytest.raises(MethodError, match="n_directions"):
        LSDDirections.from_basis(built, DIM + 1)


def test_lsd_label_edit_rotates_the_classification_from_source_to_target():
    """A latent whose largest LSD coefficient is on xi of the source label (set 1): a quarter turn towards xi of
    the target carries that coefficient to the target's quasi-eigenvector, so LSD classifies it as the target."""
    generator, classifier = lsd_toy()
    method = get("lsd", per_set=PER_SET, seed=5, batch_size=64, latent_dim=DIM).fit(
        generator=generator, classifier=classifier
    )
    basis, source, target = method.basis_, 1, 3
    i, j = basis.index_of(source), basis.index_of(target)
    noise = 0.2 * torch.randn(8, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = 3 * basis.vectors[i] / math.sqrt(DIM) + noise
    assert basis.classify(z)[:, 0].tolist() == [source] * 8
    turned = method.label_edit(z, source, target, math.pi / 2)
    assert basis.classify(turned)[:, 0].tolist() == [target] * 8
    assert torch.allclose(method.coefficients(turned)[:, j], method.coefficients(z)[:, i])
    assert torch.equal(turned, z @ basis.rotation(i, j, math.pi / 2, mode="plane").T)
    assert torch.allclose(turned.norm(dim=1), z.norm(dim=1))
    assert torch.equal(method.label_edit(z, source, target, 0.0), z)
    assert method.label_edit(z.float(), source, target, 0.3).dtype == torch.float32
    with pytest.raises(MethodError, match="LSDDirections: index_of: no unique quasi-eigenvector for label 7"):
        method.label_edit(z, source, 7, 1.0)
    with pytest.raises(MethodError, match="LSDDirections: rotation: i and j must differ"):
        method.label_edit(z, source, source, 1.0)
    with pytest.raises(MethodError, match="LSDDirections: t expected a finite number"):
        method.label_edit(z, source, target, math.inf)


# --- SFVQ ---------------------------------------------------------------------------------------------


def curve_latents(count: int = 400, dim: int = 4) -> torch.Tensor:
    """Points near a bent curve in ``dim`` dimensions."""
    rng = torch.Generator().manual_seed(0)
    s = torch.rand(count, 1, generator=rng) * 4
    curve = torch.cat([s, torch.sin(s), torch.cos(s), 0.5 * s**2][:dim], dim=1)
    return curve + 0.05 * torch.randn(count, dim, generator=rng)


def test_sfvq_fits_the_codebook_of_sfvq_and_moves_along_its_segments():
    latents = curve_latents()
    params = {"epochs_per_stage": 2, "batch_size": 50, "seed": 1, "candidates": "dithered"}
    method = SFVQDirections(3, **params).fit(latents=latents)  # 3 segments: 4 codewords
    reference = SFVQ(4, **params).fit(latents)
    assert torch.equal(method.codebook_, reference.codebook_) and method.history_ == reference.history_
    steps = reference.codebook_.double().diff(dim=0)
    assert torch.allclose(method.directions_.double(), steps / steps.norm(dim=1, keepdim=True), atol=1e-7)
    # the defaults are SFVQ's
    defaults = SFVQDirections(3).get_params()
    expected = {name: value for name, value in SFVQ(4).get_params().items() if name != "num_codewords"}
    assert {name: defaults[name] for name in expected} == expected
    # the curve coordinate is SFVQ's segment + position; edit moves straight along a segment
    quantized = reference.quantize(latents)
    assert torch.equal(method.curve_coordinate(latents), quantized.segments.float() + quantized.positions)
    start = method.codebook_[1:2]
    halfway = method.edit(start, 1, 0.5 * float(steps[1].norm()))
    assert torch.allclose(method.curve_coordinate(halfway), torch.tensor([1.5]), atol=1e-5)


# --- REDs ---------------------------------------------------------------------------------------------


def curved_generator(seed: int = 1):
    """G(z) = tanh(W z) as 1 x 4 x 3 images (M = 6): the upper half is the first 6 outputs, the lower the last 6."""
    weights = torch.randn(12, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def generator(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ weights.T.to(z.dtype) / 3).reshape(-1, 1, 4, 3)

    return generator


def test_reds_fits_rayleigh_directions_at_the_mean_latent_and_paths_follow_rayleigh_path():
    generator = curved_generator()
    latents = torch.randn(50, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    method = REDsDirections(3, path_steps=4).fit(generator=generator, latents=latents)
    f, g = (feature_from_spec(spec, None, (1, 4, 3)) for spec in ("upper", "lower"))
    reference = rayleigh_directions(generator, f, g, latents.mean(0), k=3)
    assert torch.equal(method.directions_, reference.directions.float())
    assert torch.equal(method.eigenvalues_, reference.eigenvalues)
    # path=True: the end of the curved REDs path, recomputed along the way from each latent
    z = latents[:5]
    walked = method.edit(z, 1, -0.8, path=True, generator=generator)
    assert torch.equal(walked, rayleigh_path(generator, f, g, z, 4, -0.2, index=1, k=3)[-1])
    assert not torch.allclose(walked, method.edit(z, 1, -0.8), atol=1e-3)  # curved, and from each z's own REDs
    assert torch.equal(method.edit(z, 1, 0.0, path=True, generator=generator), z)
    with pytest.raises(MethodError, match="REDsDirections: generator expected with path=True"):
        method.edit(z, 1, 0.5, path=True)
    with pytest.raises(MethodError, match="REDsDirections: t expected one finite number with path=True"):
        method.edit(z, 1, torch.ones(5), path=True, generator=generator)


def test_reds_features_come_from_their_specs():
    generator = curved_generator()
    latents = torch.randn(20, 6, generator=torch.Generator().manual_seed(2))
    with pytest.raises(MethodError, match="REDsDirections: classifier expected for the feature 'identity'"):
        REDsDirections(2, hold="identity").fit(generator=generator, latents=latents)
    with pytest.raises(MethodError, match="REDsDirections: change 'nope': expected names from"):
        REDsDirections(2, change="nope").fit(generator=generator, latents=latents)
    held = REDsDirections(2, hold="lower+identity").fit(
        generator=generator, latents=latents, classifier=lambda images: images.flatten(1)[:, :2]
    )
    assert held.directions_.shape == (2, 6)


# --- Errors -------------------------------------------------------------------------------------------


def test_bad_parameters_and_the_wrapped_codes_errors_are_one_line_method_errors():
    generator, classifier = lsd_toy()
    with pytest.raises(MethodError, match="LSDDirections: build_latent_sets: need M >= l"):
        LSDDirections(per_set=5, latent_dim=3).fit(generator=lambda z: torch.zeros(len(z), DIM), classifier=classifier)
    with pytest.raises(MethodError, match=r"LSDDirections: classifier expected logits of shape \(1, L\)"):
        LSDDirections(latent_dim=DIM).fit(generator=generator, classifier=lambda images: images.sum(1))
    with pytest.raises(MethodError, match="LSDDirections: orthogonalisation expected one of gram-schmidt, symmetric"):
        get("lsd", orthogonalisation="qr")
    with pytest.raises(MethodError, match="SFVQDirections: learning_rate: expected a finite number > 0"):
        get("sfvq", n_directions=2, learning_rate=-1.0)
    with pytest.raises(MethodError, match="SFVQDirections: latents: 3 rows, need at least num_codewords = 4"):
        SFVQDirections(3).fit(latents=curve_latents(3))
    with pytest.raises(MethodError, match="REDsDirections: method expected one of generalized, nullspace"):
        get("reds", n_directions=2, method="power")
    with pytest.raises(MethodError, match=r"REDsDirections: held_share expected a number in \(0, 1\]"):
        get("reds", n_directions=2, held_share=0.0)
