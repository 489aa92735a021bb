"""Rayleigh EigenDirections (methods/reds.py) and the image features (methods/features.py).

Closed forms on a linear generator G(z) = W z with linear features, the eps regularisation of a singular
J_g, a curved generator on which a path can hold g, exact Jacobians, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from latentspectra import methods
from latentspectra.latent import LatentError
from latentspectra.methods import (
    FeatureError,
    RedsError,
    all_pixels,
    box_mask,
    central_difference_jacobians,
    classifier_logits,
    concat_features,
    feature_jacobians,
    rayleigh_directions,
    rayleigh_path,
    region_pixels,
    solve_rayleigh,
    stroke_thickness,
    total_ink,
)
from latentspectra.methods.features import (
    GENERIC_FEATURES,
    NAMED_FEATURES,
    STROKE_FEATURES,
    feature_from_spec,
    features_for_shape,
    unfit_features,
)
from latentspectra.methods.reds_jacobians import input_dtype, jacobian_networks
from latentspectra.models import build_model
from latentspectra.models.foreign import ForeignNetwork

M = 6


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded torch: these tiny problems gain nothing from threads, and on a CPU shared with
    other processes threaded kernels wait on each other (30x slower measured here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def angle_degrees(a, b) -> float:
    """Angle between the lines of two vectors, sign-insensitive."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    cosine = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, cosine)))


@pytest.fixture
def linear():
    """G(z) = W z (outputs of size 12), f = the first 5 outputs, g = the last 7 (J_g of full column rank)."""
    weights = torch.randn(12, M, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return (lambda z: z @ weights.T), (lambda x: x[:, :5]), (lambda x: x[:, 5:]), weights


def test_generalized_directions_are_the_closed_form_generalized_eigenvectors(linear):
    generator, f, g, weights = linear
    eps = 1e-3
    z = torch.randn(4, M, dtype=torch.float64)
    result = rayleigh_directions(generator, f, g, z, k=3, eps=eps)
    gram_f, gram_g = (weights[:5].T @ weights[:5]).numpy(), (weights[5:].T @ weights[5:]).numpy()
    scale = np.linalg.eigvalsh(gram_g)[-1]  # eps is relative to the largest eigenvalue of J_g^T J_g
    values, vectors = scipy.linalg.eigh(gram_f, gram_g + eps * scale * np.eye(M))
    values, vectors = values[::-1], vectors[:, ::-1]
    assert result.directions.shape == (4, 3, M) and result.eigenvalues.shape == (4, 3)
    assert result.held_dims is None and result.change_dims is None
    for latent in range(4):  # linear: the same at every z
        np.testing.assert_allclose(result.eigenvalues[latent].numpy(), values[:3], rtol=1e-6)
        for i in range(3):
            assert angle_degrees(result.directions[latent, i], vectors[:, i]) < 1e-3
    np.testing.assert_allclose(result.directions.norm(dim=-1).numpy(), 1.0, rtol=1e-12)
    # the top direction maximises the Rayleigh quotient: no random direction beats it
    quotient = lambda v: (v @ gram_f @ v) / (v @ gram_g @ v + eps * scale * v @ v)  # noqa: E731
    best = quotient(result.directions[0, 0].numpy())
    assert math.isclose(best, values[0], rel_tol=1e-6)
    assert all(quotient(v) <= best for v in np.random.default_rng(0).standard_normal((200, M)))


def test_one_latent_gives_unbatched_shapes_and_deterministic_signs(linear):
    generator, f, g, _ = linear
    z = torch.randn(M, dtype=torch.float64)
    one = rayleigh_directions(generator, f, g, z, k=2)
    assert one.directions.shape == (2, M) and one.eigenvalues.shape == (2,)
    again = rayleigh_directions(generator, f, g, z.clone(), k=2)
    assert torch.equal(one.directions, again.directions)
    largest = one.directions.gather(1, one.directions.abs().argmax(1, keepdim=True))
    assert (largest > 0).all()


def test_nullspace_method_projects_into_the_complement_of_the_held_subspace():
    """d_g = 2 < M rows of equal weight: both are held (the 99% rule), the direction is the top
    eigenvector of J_f^T J_f restricted to the null space of J_g."""
    rng = torch.Generator().manual_seed(2)
    j_f = torch.randn(4, M, dtype=torch.float64, generator=rng)
    q, _ = torch.linalg.qr(torch.randn(M, 2, dtype=torch.float64, generator=rng))
    j_g = 3.0 * q.T  # two orthogonal rows, equal singular values
    result = solve_rayleigh(j_f, j_g, k=2, method="nullspace")
    null = scipy.linalg.null_space(j_g.numpy())  # (M, M - 2)
    values, vectors = np.linalg.eigh(null.T @ (j_f.T @ j_f).numpy() @ null)
    expected = null @ vectors[:, ::-1]
    assert int(result.held_dims) == 2 and 1 <= int(result.change_dims) <= M - 2
    for i in range(2):
        assert angle_degrees(result.directions[i], expected[:, i]) < 1e-6
    np.testing.assert_allclose(result.eigenvalues.numpy(), values[::-1][:2], rtol=1e-9)
    assert (j_g @ result.directions.T).abs().max() < 1e-10


def test_eps_regularises_a_singular_held_jacobian():
    rng = torch.Generator().manual_seed(3)
    j_f, j_g = (torch.randn(rows, M, dtype=torch.float64, generator=rng) for rows in (3, 2))
    with pytest.raises(RedsError, match="not positive definite"):
        solve_rayleigh(j_f, j_g, eps=0.0)
    small = solve_rayleigh(j_f, j_g, eps=1e-9).directions[0]
    # the direction leaves g (almost) unchanged and agrees with the authors' null-space variant
    assert (j_g @ small).norm() < 1e-3 * j_g.norm()
    assert angle_degrees(small, solve_rayleigh(j_f, j_g, method="nullspace").directions[0]) < 0.1
    # a large eps lets g change for more change of f: toward the top eigenvector of J_f^T J_f alone
    large = solve_rayleigh(j_f, j_g, eps=1e6).directions[0]
    top_f = torch.linalg.eigh(j_f.T @ j_f).eigenvectors[:, -1]
    assert angle_degrees(large, top_f) < 0.1 < angle_degrees(small, top_f)


def circle():
    """G(z) = z in R^3; g = x0^2 + x1^2 (radius^2) to hold, f = x0 to change: the best direction is the
    tangent of the circle, and only a curved path can keep the radius."""
    return (lambda z: z * 1.0), (lambda x: x[:, :1]), (lambda x: (x[:, :2] ** 2).sum(1, keepdim=True))


@pytest.mark.parametrize("method", ["generalized", "nullspace"])
def test_path_holds_g_where_a_straight_line_cannot(method):
    generator, f, g = circle()
    z = torch.tensor([[0.0, 1.0, 0.3]], dtype=torch.float64)
    steps, step_size = 20, 0.05
    path = rayleigh_path(generator, f, g, z, steps, step_size, method=method)
    assert path.shape == (steps + 1, 1, 3) and torch.equal(path[0], z)
    np.testing.assert_allclose((path[1:] - path[:-1]).norm(dim=-1).numpy(), step_size, rtol=1e-12)
    radius = g(path[:, 0])[:, 0]
    first = (path[1] - path[0]) / step_size
    line = z + torch.arange(steps + 1, dtype=torch.float64)[:, None] * step_size * first
    assert (radius - 1).abs().max() < 0.06  # each step adds at most step_size^2 to the radius^2
    assert g(line)[-1, 0] - 1 > 0.9  # the straight line leaves the circle: 1 + (steps * step_size)^2
    assert abs(f(path[-1])[0, 0] - f(z)[0, 0]) > 0.8  # and f changed, |x0| -> sin(1) on the circle
    steps_taken = path[1:] - path[:-1]
    assert ((steps_taken[1:] * steps_taken[:-1]).sum(-1) > 0).all()  # the sign is kept along the path


def test_negative_step_size_walks_the_other_way_and_unbatched_shapes():
    generator, f, g = circle()
    z = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64)
    forward, backward = (rayleigh_path(generator, f, g, z, 3, size) for size in (0.1, -0.1))
    assert forward.shape == (4, 3)
    torch.testing.assert_close(forward[1] - z, -(backward[1] - z))


def test_jacobians_are_exact_and_finite_differences_approach_them():
    rng = torch.Generator().manual_seed(4)
    weights = torch.randn(8, M, dtype=torch.float64, generator=rng)
    generator = lambda z: torch.tanh(z @ weights.T)  # noqa: E731
    f, g = (lambda x: x[:, :3] ** 2), (lambda x: x[:, 3:].sin())
    z = torch.randn(2, M, dtype=torch.float64, generator=rng)
    j_f, j_g = feature_jacobians(generator, f, g, z)
    full = torch.autograd.functional.jacobian(
        lambda latent: torch.cat([f(generator(latent[None])), g(generator(latent[None]))], 1)[0], z[1]
    )
    torch.testing.assert_close(torch.cat([j_f[1], j_g[1]]), full, rtol=1e-12, atol=1e-12)
    errors = []
    for step in (1e-1, 1e-3):
        fd_f, fd_g = central_difference_jacobians(generator, f, g, z, step)
        assert fd_f.shape == j_f.shape and fd_g.shape == j_g.shape
        errors.append(float((fd_f - j_f).norm() / j_f.norm()))
    assert errors[1] < 1e-5 < errors[0] < 0.1  # central differences: error ~ step^2


def test_jacobians_through_a_conv_generator_and_every_feature():
    """The repository's generator and classifier (tiny, float64) with every feature: torch.func runs
    through batch norm, transposed convolutions, pooling and the index-based region pixels."""
    generator = build_model("generator", {"latent_dim": 4, "width": 2, "hidden": 8}).double().eval()
    classifier = build_model("classifier", {"num_classes": 3, "width": 2, "hidden": 4}).double().eval()
    upper = box_mask(28, 28, 0, 14, 0, 28)
    f = concat_features(region_pixels(upper), total_ink, stroke_thickness)
    g = concat_features(region_pixels(upper, outside=True), classifier_logits(classifier))
    z = torch.randn(3, 4, dtype=torch.float64)
    j_f, j_g = feature_jacobians(generator, f, g, z, batch_size=2)
    assert j_f.shape == (3, 392 + 2, 4) and j_g.shape == (3, 392 + 3, 4)
    reverse = torch.func.jacrev(lambda latent: g(generator(latent[None]))[0])(z[2])  # reverse mode
    torch.testing.assert_close(j_g[2], reverse)
    assert rayleigh_directions(generator, f, g, z, k=2).directions.shape == (3, 2, 4)


class BufferGenerator(torch.nn.Module):
    """G(z) = tanh(W z) with W a float32 buffer: a network without parameters."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.weights.T)


def test_jacobians_take_the_dtype_the_networks_take():
    """float32 for a float32 network whatever holds its weights (a buffer, a plain function's tensor), float64
    for a float64 one; the float32 Jacobians are the float64 ones to float32's rounding."""
    weights = torch.randn(8, M, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    single = weights.float()
    generators = {
        torch.float32: (BufferGenerator(weights), lambda z: torch.tanh(z @ single.T)),
        torch.float64: (lambda z: torch.tanh(z @ weights.T),),
    }
    f, g = (lambda x: x[:, :3]), (lambda x: x[:, 3:])
    z = torch.randn(3, M, dtype=torch.float64)
    exact = feature_jacobians(generators[torch.float64][0], f, g, z)
    for dtype, made in generators.items():
        for generator in made:
            assert input_dtype(z, generator, f, g) == dtype and input_dtype(z.float(), generator) == dtype
            j_f, j_g = feature_jacobians(generator, f, g, z)
            assert j_f.dtype == j_g.dtype == dtype
            torch.testing.assert_close(torch.cat([j_f, j_g], 1).double(), torch.cat(exact, 1), rtol=1e-5, atol=1e-6)
            assert central_difference_jacobians(generator, f, g, z, 0.1)[0].dtype == dtype
    directions = [rayleigh_path(generator, f, g, z, 2, 0.5) for generator in generators[torch.float32]]
    torch.testing.assert_close(directions[0], directions[1])  # a buffer or a function: the same path
    with pytest.raises(RedsError, match=r"fail on latents of each of float64, float32 \(expected m1 and m2"):
        feature_jacobians(lambda latents: latents @ weights.half().T, f, g, z)


def test_jacobian_networks_cast_only_the_packages_own_networks():
    """The package's own networks as float64 copies (the originals untouched); beside a user's network, float32
    copies, and the user's network itself."""
    generator = build_model("generator", {"latent_dim": 4, "width": 2, "hidden": 8}).eval()
    classifier = build_model("classifier", {"num_classes": 3, "width": 2, "hidden": 4}).eval()
    own = jacobian_networks(generator, classifier)
    assert all(parameter.dtype == torch.float64 for network in own for parameter in network.parameters())
    assert all(parameter.dtype == torch.float32 for parameter in generator.parameters())
    users = ForeignNetwork(lambda images: images.flatten(1)[:, :3])
    mixed = jacobian_networks(generator, users)
    assert mixed[1] is users and all(parameter.dtype == torch.float32 for parameter in mixed[0].parameters())
    z = torch.randn(2, 4, dtype=torch.float64)
    f, g = region_pixels(box_mask(28, 28, 0, 14, 0, 28)), classifier_logits(own[1])
    assert feature_jacobians(own[0], f, g, z)[0].dtype == torch.float64
    assert feature_jacobians(mixed[0], f, mixed[1], z)[0].dtype == torch.float32


@pytest.mark.parametrize(
    "z, message",
    [
        (
            [0.0] * M,
            "rayleigh_directions: z must be a finite floating-point tensor of shape \\(N, M\\) or \\(M,\\), got list",
        ),
        (torch.zeros(2, 2, M), r"got shape \(2, 2, 6\)"),
        (torch.zeros(M, dtype=torch.long), "got torch.int64"),
        (torch.full((M,), float("inf")), "got NaN or infinite values"),
    ],
)
def test_bad_latents_are_the_one_latent_error(linear, z, message):
    generator, f, g, _ = linear
    with pytest.raises(LatentError, match=message):
        rayleigh_directions(lambda latents: generator(latents.double()), f, g, z)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda G, f, g: rayleigh_directions(G, f, g, torch.zeros(M), k=0), "k must be"),
        (lambda G, f, g: rayleigh_directions(G, f, g, torch.zeros(M), method="svd"), "method must be one of"),
        (lambda G, f, g: rayleigh_directions(G, f, g, torch.zeros(M), eps=-1.0), "eps must be"),
        (
            lambda G, f, g: rayleigh_directions(G, f, g, torch.zeros(M), method="nullspace", held_share=0.0),
            "held_share",
        ),
        (lambda G, f, g: rayleigh_directions(G, "f", g, torch.zeros(M)), "f must be callable"),
        (lambda G, f, g: rayleigh_directions(G, lambda x: x[:, 0], g, torch.zeros(M)), "feature f must map"),
        (lambda G, f, g: rayleigh_directions(G, f, lambda x: x[:1].repeat(2, 1), torch.zeros(M)), "feature g must map"),
        (lambda G, f, g: rayleigh_directions(G, f, lambda x: x / 0, torch.zeros(M)), "non-finite"),
        (lambda G, f, g: rayleigh_directions(G, f, lambda x: x.long(), torch.zeros(M)), "floating-point values"),
        (
            lambda G, f, g: rayleigh_directions(G, lambda x: x * x.sum().item(), g, torch.zeros(M)),
            "cannot differentiate",
        ),
        (lambda G, f, g: rayleigh_path(G, f, g, torch.zeros(M), 0, 0.1), "steps must be"),
        (lambda G, f, g: rayleigh_path(G, f, g, torch.zeros(M), 2, 0.0), "step_size"),
        (lambda G, f, g: rayleigh_path(G, f, g, torch.zeros(M), 2, 0.1, index=M), "index"),
        (lambda G, f, g: central_difference_jacobians(G, f, g, torch.zeros(M), 0.0), "step must be"),
        (lambda G, f, g: solve_rayleigh(torch.zeros(2, M), torch.zeros(3, M + 1)), "must share"),
    ],
)
def test_bad_input_is_a_clear_error(linear, call, message):
    generator, f, g, _ = linear
    with pytest.raises(RedsError, match=message):
        call(lambda z: generator(z.double()), f, g)


# --- Features ----------------------------------------------------------------------------------------


def stroke(width: int, length: int = 16) -> torch.Tensor:
    """A (1, 1, 28, 28) image in [-1, 1]: background -1, one vertical bar of ink +1."""
    image = -torch.ones(1, 1, 28, 28, dtype=torch.float64)
    image[..., 6 : 6 + length, 10 : 10 + width] = 1.0
    return image


def test_region_and_outside_partition_the_pixels():
    images = torch.randn(2, 1, 28, 28)
    mask = box_mask(28, 28, 3, 10, 5, 20)
    inside, outside = region_pixels(mask)(images), region_pixels(mask, outside=True)(images)
    assert inside.shape == (2, 7 * 15) and outside.shape == (2, 28 * 28 - 7 * 15)
    torch.testing.assert_close(inside, images[:, 0, 3:10, 5:20].flatten(1))
    assert torch.equal(torch.cat([inside, outside], 1).sort(1).values, all_pixels(images).sort(1).values)


def test_ink_and_thickness_measure_strokes():
    assert total_ink(stroke(3)).item() == pytest.approx(48.0)
    assert total_ink(-torch.ones(1, 1, 28, 28)).item() == 0.0
    widths = [stroke_thickness(stroke(w)).item() for w in (2, 4)]
    for width, measured in zip((2, 4), widths):
        assert measured == pytest.approx(width * 16 / (width + 16), rel=0.1)  # w l / (w + l)
    assert 1.6 < widths[1] / widths[0] < 2.1
    blurred = torch.nn.functional.avg_pool2d(stroke(4), 3, stride=1, padding=1, count_include_pad=False)
    assert stroke_thickness(blurred).item() == pytest.approx(widths[1], rel=0.15)  # blur keeps the measure


def test_classifier_logits_and_concatenation():
    classifier = build_model("classifier", {"num_classes": 10, "width": 2, "hidden": 4}).eval()
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    both = concat_features(classifier_logits(classifier), total_ink, stroke_thickness)(images)
    assert both.shape == (3, 12)
    torch.testing.assert_close(both[:, :10], classifier(images))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: box_mask(28, 28, 10, 10, 0, 28), "non-empty box"),
        (lambda: box_mask(28, 28, 0, 29, 0, 28), "non-empty box"),
        (lambda: region_pixels(torch.ones(28, 28)), "boolean"),
        (lambda: region_pixels(torch.ones(28, 28, dtype=torch.bool), outside=True), "no pixel"),
        (lambda: region_pixels(box_mask(28, 28, 0, 5, 0, 5))(torch.zeros(1, 1, 14, 14)), "mask is 28 x 28"),
        (lambda: total_ink(torch.zeros(28, 28)), r"\(B, C, H, W\)"),
        (lambda: concat_features(), "at least one"),
        (lambda: concat_features(total_ink, "ink"), "feature 1"),
    ],
)
def test_bad_feature_definitions_are_clear_errors(call, message):
    with pytest.raises(FeatureError, match=message):
        call()


def first_logits(images: torch.Tensor) -> torch.Tensor:
    """A stand-in classifier of 4 labels: the first 4 pixels."""
    return images.flatten(1)[:, :4]


@pytest.mark.parametrize(
    "spec, width",
    [
        ("upper", 3 * 16 * 32),
        ("lower", 3 * 16 * 32),
        ("left", 3 * 32 * 16),
        ("right", 3 * 32 * 16),
        ("box:0:8:4:12", 3 * 8 * 8),
        ("outside:0:8:4:12", 3 * (32 * 32 - 8 * 8)),
        ("all", 3 * 32 * 32),
        ("identity", 4),
        ("upper+identity", 3 * 16 * 32 + 4),
    ],
)
def test_generic_features_fit_rgb_images_of_any_size(spec, width):
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert feature_from_spec(spec, first_logits, (3, 32, 32))(images).shape == (2, width)


def test_halves_follow_the_height_and_width_given():
    images = torch.rand(2, 3, 31, 17) * 2 - 1
    halves = {name: feature_from_spec(name, first_logits, (3, 31, 17))(images) for name in ("upper", "left", "right")}
    torch.testing.assert_close(halves["upper"], images[:, :, :15].flatten(1))
    torch.testing.assert_close(halves["left"], images[..., :8].flatten(1))
    torch.testing.assert_close(halves["right"], images[..., 8:].flatten(1))


@pytest.mark.parametrize(
    "spec, refused", [("thickness", "thickness"), ("upper + ink", "ink"), ("identity+thickness+ink", "thickness")]
)
def test_stroke_features_are_refused_on_rgb_images(spec, refused):
    message = (
        f"^{refused} is a stroke feature: it only applies to single-channel \\(grey stroke\\) images, "
        "not to images of 3 channels$"
    )
    with pytest.raises(FeatureError, match=message):
        feature_from_spec(spec, first_logits, (3, 32, 32))
    with pytest.raises(FeatureError, match="ink is a stroke feature"):
        stroke_thickness(torch.zeros(1, 3, 32, 32))


def test_features_for_shape_names_what_fits():
    assert set(STROKE_FEATURES) == {"ink", "thickness"} and set(NAMED_FEATURES) == {*GENERIC_FEATURES, *STROKE_FEATURES}
    assert features_for_shape((1, 28, 28)) == features_for_shape((28, 28)) == NAMED_FEATURES
    assert features_for_shape((3, 32, 32)) == GENERIC_FEATURES
    assert unfit_features("identity + thickness+box:0:2:0:2+ink", (3, 32, 32)) == ("thickness", "ink")
    assert unfit_features("identity+thickness+ink", (1, 32, 32)) == ()
    with pytest.raises(FeatureError, match=r"image shape \(C, H, W\) or \(H, W\)"):
        features_for_shape((2, 3, 28, 28))
    with pytest.raises(FeatureError, match="expected names from upper, lower, left, right, identity, all or box"):
        feature_from_spec("nose", first_logits, (3, 32, 32))


def test_every_named_feature_on_grey_28_x_28_images_as_before():
    classifier = build_model("classifier", {"num_classes": 10, "width": 2, "hidden": 4}).eval()
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    widths = {
        "upper": 392,
        "lower": 392,
        "left": 392,
        "right": 392,
        "identity": 10,
        "ink": 1,
        "thickness": 1,
        "all": 784,
        "box:0:4:0:5": 20,
        "outside:0:4:0:5": 764,
    }
    assert set(NAMED_FEATURES) <= set(widths)
    for spec, width in widths.items():
        grey = feature_from_spec(spec, classifier, (1, 28, 28))(images)
        assert grey.shape == (2, width)
        torch.testing.assert_close(grey, feature_from_spec(spec, classifier, (28, 28))(images))
    torch.testing.assert_close(feature_from_spec("ink", classifier, (1, 28, 28))(images), total_ink(images))
    torch.testing.assert_close(
        feature_from_spec("upper", classifier, (1, 28, 28))(images), images[:, :, :14].flatten(1)
    )


def test_public_api():
    import latentspectra

    for name in ("rayleigh_directions", "rayleigh_path", "RayleighDirections", "RedsError"):
        assert getattr(latentspectra, name) is getattr(methods, name)
