"""Direction finders behind one contract (methods/directions.py): known answers of SeFa, GANSpace and
InterFaceGAN on linear generators and separable latents, the contract every registered method keeps, the
registry and the files."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import scipy.linalg
import torch
from torch import nn

from conftest import rewrite_pair
from latentspectra.latent import LatentError
from latentspectra.methods import GANSpace, InterFaceGAN, MethodError, SeFa, available, get, load_method, save_method
from latentspectra.methods.interfacegan import classifier_scores
from latentspectra.models.gan import Generator

M, OUT = 8, 16
SINGULAR_VALUES = torch.tensor([8.0, 6.0, 4.5, 3.5, 2.5, 1.8, 1.2, 0.8], dtype=torch.float64)


def linear_generator(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """G(z) = W z as 1 x 4 x 4 images, W = U S V^T (OUT x M), and V (M, M), whose columns are W's right-singular
    vectors by decreasing singular value. U is made of columns of a normalised Hadamard matrix, so that every row
    of W has the same norm: SeFa's row normalisation (the authors') then scales A^T A without turning it."""
    rng = torch.Generator().manual_seed(seed)
    left = torch.from_numpy(scipy.linalg.hadamard(OUT)[:, :M]).double() / OUT**0.5
    right = torch.linalg.qr(torch.randn(M, M, generator=rng, dtype=torch.float64))[0]
    generator = nn.Sequential(OrderedDict(linear=nn.Linear(M, OUT, bias=False), image=nn.Unflatten(1, (1, 4, 4))))
    with torch.no_grad():
        generator.linear.weight.copy_(left * SINGULAR_VALUES @ right.T)
    return generator, right


def assert_recovers(directions: torch.Tensor, expected_columns: torch.Tensor) -> None:
    """Row k of ``directions`` is column k of ``expected_columns`` up to sign (|cos| > 0.99)."""
    cosines = (directions.double() * expected_columns[:, : len(directions)].T).sum(1).abs()
    assert bool((cosines > 0.99).all()), cosines


# --- Known answers ------------------------------------------------------------------------------------


def test_sefa_finds_the_top_right_singular_vectors_of_the_first_layer():
    generator, right = linear_generator()
    method = SeFa(3).fit(generator=generator)
    assert method.layer_ == "linear"
    assert_recovers(method.directions_, right)
    assert bool((method.eigenvalues_[:-1] > method.eigenvalues_[1:]).all())
    named = SeFa(3, layer="linear", latent_dim=M).fit(generator=generator)
    assert torch.equal(named.directions_, method.directions_)


def test_sefa_normalises_each_output_unit_as_the_authors_code():
    """On a weight whose rows differ in norm: the eigenvectors of w w^T, w = weight^T with unit columns (the
    authors' `factorize_weight`), sorted by eigenvalue."""
    generator, _ = linear_generator()
    with torch.no_grad():
        generator.linear.weight.mul_(torch.linspace(0.2, 3.0, OUT)[:, None])
    w = generator.linear.weight.detach().double().T
    w = w / w.norm(dim=0, keepdim=True)
    values, vectors = torch.linalg.eigh(w @ w.T)
    method = SeFa(M).fit(generator=generator)
    assert torch.allclose(method.eigenvalues_.double(), values.flip(0), rtol=1e-5)
    assert_recovers(method.directions_, vectors.flip(1))


def test_sefa_finds_the_packages_generator_layer_and_refuses_bad_layers():
    generator = Generator(latent_dim=M, width=2, hidden=16)
    method = SeFa(2).fit(generator=generator)
    assert method.layer_ == "project.0"
    with pytest.raises(MethodError, match="SeFa: layer expected the name of a submodule of the generator, got 'nope'"):
        SeFa(2, layer="nope").fit(generator=generator)
    with pytest.raises(MethodError, match="SeFa: layer expected one that takes latent_dim 8 inputs, got 'project.3'"):
        SeFa(2, layer="project.3").fit(generator=generator)
    with pytest.raises(MethodError, match="SeFa: layer expected a module with a 2-D weight"):
        SeFa(2, layer="project.2").fit(generator=generator)


def test_ganspace_at_a_layer_recovers_the_right_singular_vectors():
    generator, right = linear_generator()
    method = GANSpace(3, layer="linear", n_samples=2000, batch_size=500, latent_dim=M).fit(generator=generator)
    assert_recovers(method.directions_, right)
    expected = SINGULAR_VALUES[:3] ** 2 / (SINGULAR_VALUES**2).sum()
    assert torch.allclose(method.explained_variance_ratio_.double(), expected, atol=0.05)


@pytest.mark.parametrize("layer", ["latents", None])  # None: the name files and configs written before use
def test_ganspace_on_the_latents_takes_their_principal_axes(layer):
    """Latents w = W^T e, e ~ N(0, I) (a linear mapping network, as StyleGAN's w): covariance W^T W = V S^2 V^T."""
    generator, right = linear_generator()
    noise = torch.randn(2000, OUT, generator=torch.Generator().manual_seed(1))
    latents = noise @ generator.linear.weight.detach()
    method = GANSpace(3, layer=layer, batch_size=500).fit(latents=latents)
    assert_recovers(method.directions_, right)
    assert method.layer_ == "latents"


def test_ganspace_refuses_a_layer_it_cannot_use():
    generator, _ = linear_generator()
    with pytest.raises(MethodError, match="GANSpace: layer expected the name of a submodule"):
        GANSpace(2, layer="nope", n_samples=50, batch_size=10, latent_dim=M).fit(generator=generator)
    with pytest.raises(MethodError, match="GANSpace: generator expected a torch module"):
        GANSpace(2, layer="linear", n_samples=50, batch_size=10, latent_dim=M).fit(generator=lambda z: z)
    with pytest.raises(MethodError, match="GANSpace: batch_size expected an integer >= 3"):
        get("ganspace", n_directions=3, batch_size=2)


def separable_scores(count: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents (count, M), three unit normals (3, M) (the second at 60 degrees from the first) and scores
    z . n_a + small noise (count, 3)."""
    rng = torch.Generator().manual_seed(seed)
    normals = torch.linalg.qr(torch.randn(M, 3, generator=rng, dtype=torch.float64))[0].T
    normals[1] = 0.5 * normals[0] + 0.75**0.5 * normals[1]
    latents = torch.randn(count, M, generator=rng, dtype=torch.float64)
    scores = latents @ normals.T + 0.01 * torch.randn(count, 3, generator=rng, dtype=torch.float64)
    return latents.float(), normals, scores.float()


def test_interfacegan_recovers_the_boundary_normals():
    latents, normals, scores = separable_scores()
    method = InterFaceGAN().fit(latents=latents, scores=scores)
    cosines = (method.directions_.double() * normals).sum(1)
    assert bool((cosines > 0.95).all()), cosines  # pointing to higher scores, not only up to sign
    assert bool((method.validation_accuracy_ > 0.95).all())
    distances = latents @ method.directions_[0] + method.intercepts_[0]
    top = scores[:, 0].argsort(descending=True)[:60]
    assert bool((distances[top] > 0).all())


def test_conditional_direction_is_orthogonal_to_its_conditions():
    latents, _, scores = separable_scores()
    method = InterFaceGAN().fit(latents=latents, scores=scores)
    n0, n1, n2 = method.directions_.double()
    one = method.conditional_direction(0, [1]).double()
    assert torch.allclose(one, (n0 - (n0 @ n1) * n1) / (n0 - (n0 @ n1) * n1).norm(), atol=1e-6)  # the authors' formula
    two = method.conditional_direction(0, [1, 2]).double()
    assert abs(one @ n1) < 1e-6 and abs(two @ n1) < 1e-6 and abs(two @ n2) < 1e-6
    assert abs(one.norm() - 1) < 1e-6 and abs(two.norm() - 1) < 1e-6
    assert torch.equal(method.conditional_direction(2, []), method.directions_[2])
    with pytest.raises(MethodError, match="others expected boundaries whose span leaves part of boundary 0"):
        method.conditional_direction(0, [0])
    with pytest.raises(MethodError, match="others expected integers in 0..2, got \\[3\\]"):
        method.conditional_direction(0, [3])


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_interfacegan_scores_a_classifiers_labels(score):
    """A classifier whose logits are 4 z . n_l on G(z): ranked by logit, label l's boundary is n_l; ranked by
    probability (label l against the rest), it is n_l - mean(n), the direction that raises l above the others."""
    latents, normals, _ = separable_scores()
    generator, _ = linear_generator()
    readout = torch.linalg.pinv(generator.linear.weight.detach().double()).T @ normals.T  # pixels -> z . n_l

    def classifier(images: torch.Tensor) -> torch.Tensor:
        return 4 * images.flatten(1).double() @ readout

    method = InterFaceGAN(score=score, batch_size=1000).fit(generator=generator, classifier=classifier, latents=latents)
    expected = normals if score == "logit" else normals - normals.mean(0)
    cosines = (method.directions_.double() * expected).sum(1) / expected.norm(dim=1)
    assert method.directions_.shape == (3, M) and bool((cosines > 0.95).all()), cosines
    assert bool((method.validation_accuracy_ > 0.95).all())


def test_interfacegan_fitted_on_the_scores_of_its_own_draws_is_the_fit_that_draws_them():
    """Scores without latents are those of the latents fit draws (`sampled_latents`, scored elsewhere as a sharded
    compare does): the same latents and the same shuffles after them, the same boundaries bit for bit."""
    generator, _ = linear_generator()
    classifier = nn.Linear(generator.linear.out_features, 3).double()

    def logits(images: torch.Tensor) -> torch.Tensor:
        return classifier(images.flatten(1).double())

    method = InterFaceGAN(n_samples=600, ratio=0.1, batch_size=250, latent_dim=M, seed=4)
    drawn = InterFaceGAN(**method.get_params()).fit(generator=generator, classifier=logits)
    scores = classifier_scores(generator, logits, method.sampled_latents(M), method.batch_size, method.score)
    given = method.fit(scores=scores)
    assert torch.equal(given.directions_, drawn.directions_)
    assert torch.equal(given.validation_accuracy_, drawn.validation_accuracy_)


def test_interfacegan_refuses_bad_scores():
    latents, _, scores = separable_scores(count=200)
    with pytest.raises(MethodError, match=r"scores expected a finite floating-point tensor of shape \(200,\)"):
        InterFaceGAN().fit(latents=latents, scores=scores[:100])
    with pytest.raises(MethodError, match="latents expected enough rows for ratio 0.02"):
        InterFaceGAN().fit(latents=latents[:50], scores=scores[:50])
    with pytest.raises(MethodError, match="scores expected the top and bottom 4 of attribute 0 to differ"):
        InterFaceGAN().fit(latents=latents, scores=torch.zeros(200))
    with pytest.raises(MethodError, match="InterFaceGAN: generator expected"):
        InterFaceGAN().fit(latents=latents)


# --- The contract, over every registered method --------------------------------------------------------


def contract_recipes() -> dict[str, tuple[dict, dict]]:
    """(constructor parameters, fit inputs) for each registered method, on the same tiny problem."""
    generator, _ = linear_generator()
    latents, _, scores = separable_scores(count=1000)
    return {
        "random": ({"n_directions": 3, "latent_dim": M, "seed": 3}, {}),
        "axes": ({"n_directions": 3, "latent_dim": M}, {}),
        "sefa": ({"n_directions": 3}, {"generator": generator}),
        "ganspace": (
            {"n_directions": 3, "layer": "linear", "n_samples": 400, "batch_size": 100, "latent_dim": M, "seed": 3},
            {"generator": generator},
        ),
        "interfacegan": ({"n_directions": 2, "seed": 3}, {"latents": latents, "scores": scores}),
        "learned": (
            {"n_directions": 3, "steps": 5, "batch_size": 8, "n_validation": 16, "latent_dim": M, "seed": 3},
            {"generator": generator},
        ),
        "lsd": (
            {"n_directions": 3, "latent_dim": M, "per_set": 20, "batch_size": 100, "seed": 3},
            {"generator": generator, "classifier": lambda images: images.flatten(1)[:, :M]},
        ),
        "reds": ({"n_directions": 3}, {"generator": generator, "latents": latents}),
        "sfvq": ({"n_directions": 3, "epochs_per_stage": 1, "batch_size": 100, "seed": 3}, {"latents": latents}),
    }


def test_every_registered_method_has_a_contract_recipe():
    assert sorted(contract_recipes()) == available()


def assert_same_learned(first, second) -> None:
    one, other = first.learned_attributes(), second.learned_attributes()
    assert one.keys() == other.keys()
    for name, value in one.items():
        assert torch.equal(value, other[name]) if isinstance(value, torch.Tensor) else value == other[name], name


@pytest.mark.parametrize("name", sorted(contract_recipes()))
def test_contract(name, tmp_path):
    params, inputs = contract_recipes()[name]
    method = get(name, **params)
    z = torch.randn(5, M, generator=torch.Generator().manual_seed(9))
    # use before fit: one clear error
    with pytest.raises(MethodError, match="not fitted yet"):
        method.edit(z, 0, 1.0)
    with pytest.raises(MethodError, match="not fitted yet"):
        save_method(method, tmp_path / "early.safetensors")
    # fit returns self; the same seed gives the same directions bit for bit
    assert method.fit(**inputs) is method
    assert_same_learned(method, get(name, **params).fit(**inputs))
    if "seed" in params:  # and the seed is the one used
        assert not torch.equal(get(name, **{**params, "seed": 4}).fit(**inputs).directions_, method.directions_)
    count = params["n_directions"]
    directions = method.directions_
    assert directions.shape == (count, M) and directions.dtype == torch.float32
    assert torch.allclose(directions.norm(dim=1), torch.ones(count), atol=1e-6)
    # edits: t = 0 is the identity, t moves along direction k by t (one t, or one per row)
    assert torch.equal(method.edit(z, count - 1, 0.0), z)
    assert torch.allclose(method.edit(z, 1, 0.5) - z, 0.5 * directions[1].expand(5, M), atol=1e-6)
    amounts = torch.linspace(-2, 2, 5)
    moved = method.transform(method.edit(z, 1, amounts)) - method.transform(z)
    assert torch.allclose(moved[:, 1], amounts, atol=1e-5)
    assert torch.allclose(method.transform(z), z @ directions.T)
    with pytest.raises(MethodError, match=f"{method.title}: k expected an integer in 0..{count - 1}, got {count}"):
        method.edit(z, count, 1.0)
    # files: the same parameters and learned attributes come back
    loaded = load_method(save_method(method, tmp_path / "method.safetensors"))
    assert type(loaded) is type(method) and loaded.get_params() == method.get_params()
    assert params.items() <= method.get_params().items()
    assert_same_learned(loaded, method)
    # the rules a study reads off the method (DirectionMethod's class attributes and hooks)
    assert method.fit_latents in ("train", "test", None)
    assert not method.float64_jacobians or "generator" in method.inputs  # it differentiates the generator
    assert not method.float32_gradients or "generator" in method.inputs
    assert not method.scores_own_draws or {"scores", "classifier"} <= set(method.inputs)
    assert not method.one_per_label or method.count_from_data  # n_directions=None must mean one per label
    if method.count_from_data:
        assert get(name, **{**params, "n_directions": None}).n_directions is None
    edits = method.label_edits({0: torch.zeros(M, dtype=torch.float64), 1: torch.ones(M, dtype=torch.float64)}, 2)
    assert all(callable(found) for found in edits.values())
    if method.scores_own_draws:
        drawn, batch_size = method.draws_to_score(M)
        assert drawn.shape[1] == M and batch_size >= 1
        assert len(method.scores_from_logits(torch.randn(len(drawn), 3, dtype=torch.float64))) == len(drawn)
    else:
        with pytest.raises(MethodError, match=f"{method.title}: draws no latents to score"):
            method.draws_to_score(M)
    # K > M, an unknown parameter and an unknown name are one-line MethodErrors
    with pytest.raises(MethodError, match="n_directions expected <="):
        get(name, **{**params, "n_directions": M + 1}).fit(**inputs)
    with pytest.raises(MethodError, match=f"{method.title}: parameters expected among n_directions"):
        get(name, **params, colour="blue")
    with pytest.raises(MethodError, match="method: expected one of " + ", ".join(available())):
        get(name + "-nope")


def test_latent_dim_comes_from_the_constructor_the_latents_or_the_generator():
    generator = Generator(latent_dim=M, width=2, hidden=16)
    assert get("random", n_directions=2).fit(generator=generator).directions_.shape == (2, M)
    assert get("random", n_directions=2).fit(latents=torch.zeros(3, 5)).directions_.shape == (2, 5)
    with pytest.raises(MethodError, match="RandomDirections: latent_dim expected"):
        get("random", n_directions=2).fit()
    with pytest.raises(MethodError, match=r"generator.latent_dim expected 5 \(from latent_dim\), got 8"):
        get("random", n_directions=2, latent_dim=5).fit(generator=generator)
    with pytest.raises(LatentError, match=r"RandomDirections.fit: latents must be .* shape \(N, 5\)"):
        get("random", n_directions=2, latent_dim=5).fit(latents=torch.zeros(3, 4))


def test_edit_keeps_the_latents_dtype_and_refuses_bad_amounts():
    method = get("axes", n_directions=2, latent_dim=3).fit()
    z = torch.zeros(4, 3, dtype=torch.float64)
    moved = method.edit(z, 1, 2.0)
    assert moved.dtype == torch.float64 and torch.equal(moved[:, 1], torch.full((4,), 2.0, dtype=torch.float64))
    with pytest.raises(
        MethodError,
        match=r"CoordinateAxes: t expected a finite number or a floating-point tensor "
        r"of shape \(4,\), got \(3,\)",
    ):
        method.edit(z, 0, torch.ones(3))
    with pytest.raises(MethodError, match="CoordinateAxes: k expected an integer in 0..1, got True"):
        method.edit(z, True, 1.0)
    with pytest.raises(LatentError, match="CoordinateAxes.edit: z must be"):
        method.edit(torch.zeros(4, 5), 0, 1.0)


# --- Files --------------------------------------------------------------------------------------------


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(MethodError, match="not found"):
        load_method(tmp_path / "missing.safetensors")
    path = save_method(get("axes", n_directions=2, latent_dim=3).fit(), tmp_path / "axes.safetensors")
    rewrite_pair(path, lambda record: {**record, "method": "nope"})
    with pytest.raises(MethodError, match="axes.json: method: expected one of"):
        load_method(path)
    rewrite_pair(
        path, lambda record: {**record, "method": "axes"}, lambda tensors: {"directions_": 2 * tensors["directions_"]}
    )
    with pytest.raises(MethodError, match="axes.safetensors: directions_ expected unit rows"):
        load_method(path)
    rewrite_pair(path, lambda record: record, lambda tensors: {"directions_": torch.eye(3)})
    with pytest.raises(MethodError, match="axes.safetensors: directions_ expected n_directions = 2 rows"):
        load_method(path)
    path.with_suffix(".json").write_text("{}")
    with pytest.raises(MethodError, match="axes"):
        load_method(path)
    with pytest.raises(MethodError, match=".json"):
        save_method(get("axes", n_directions=2, latent_dim=3).fit(), tmp_path / "axes.json")
