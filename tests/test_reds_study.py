"""`latentspectra reds` on the shipped MNIST networks with a few latents and steps; the compared paths; on a
user's networks without parameters (an exported program whose weights are a buffer and a constant, a factory's
plain functions), where compare's REDs adapter gives the directions of the `reds` path."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_traces_hardware, run_cli
from latentspectra.compute import Compute
from latentspectra.config import RedsConfig
from latentspectra.experiments.compare import fit_inputs
from latentspectra.experiments.networks import load_networks
from latentspectra.experiments.reds import (
    build_feature,
    example_name,
    lsd_rotation_path,
    reds_networks,
    run_reds,
    straight_path,
)
from latentspectra.latent import QuasiEigenBasis, save_basis
from latentspectra.methods import feature_jacobians, get, rayleigh_path

SMALL = ["--latents", "2", "--steps", "2", "--step-size", "0.5", "--quiet"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded torch: these few small Jacobians gain nothing from threads, and on a CPU shared
    with other processes threaded kernels wait on each other (30x slower measured here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_basis(dim: int = 100, labels: int = 10, seed: int = 7) -> QuasiEigenBasis:
    """A valid basis (Gram-Schmidt of random etas) in the layout of the shipped networks' basis; its seed
    differs from the tests' global seed 0, so that the test latents are not its etas."""
    etas = torch.randn(dim, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return QuasiEigenBasis.from_etas(etas, torch.arange(dim) % labels, torch.arange(dim) // labels + 1)


@pytest.fixture(scope="module")
def basis_file(tmp_path_factory):
    return save_basis(random_basis(), tmp_path_factory.mktemp("basis") / "basis.safetensors")


@pytest.mark.slow
def test_cli_writes_reds_json_and_path_images(capsys, tmp_path, basis_file):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys,
        "reds",
        "--change",
        "identity",
        "--hold",
        "thickness+ink",
        "--out",
        str(out),
        "--basis",
        str(basis_file),
        "--seed",
        "3",
        "--json",
        *SMALL,
    )
    assert code == 0
    record = json.loads(stdout)
    assert json.loads((out / "reds.json").read_text()) == record
    assert_traces_hardware(record)
    assert record["compute"]["precision"] == "float32"  # the encoder's; G and C are float64 copies for REDs
    assert record["seed"] == 3 and record["latents"] == 2 and record["versions"]["torch"] == torch.__version__
    assert record["basis"] == {"file": str(basis_file)} and record["config"]["steps"] == 2
    example = record["examples"][example_name("identity", "thickness+ink")]
    assert (out / example["figure"]).stat().st_size > 1000
    assert set(example["paths"]) == {"reds", "straight", "random", "lsd"}
    for kind, changes in example["paths"].items():  # every compared path has the same length
        assert changes["path_length"]["mean"] == pytest.approx(1.0, rel=1e-9), kind
        assert changes["delta_f"]["mean"] > 0, kind  # every path changes the identity it is asked to change
        assert changes["label_changed"] * 2 == pytest.approx(round(changes["label_changed"] * 2)), kind  # of 2
    fd = example["finite_differences"]
    assert fd["steps"] == [1.0, 0.1, 0.01] and fd["latents"] == 2
    assert fd["relative_error_f"][2]["median"] < fd["relative_error_f"][0]["median"]
    # smaller steps give the exact Jacobians' direction more closely
    assert fd["angle_degrees"][2]["median"] < fd["angle_degrees"][0]["median"]
    assert example["seconds_per_direction"]["total"] > 0 and example["path_seconds_per_direction"] > 0
    assert "nullspace_dims" not in example  # generalized by default
    assert example["jacobian_dtype"] == "float64"  # the package's own networks
    assert set(record["seconds"]) >= {"load", "basis", "total"}


@pytest.mark.slow
def test_study_is_deterministic_and_reds_holds_g_better_than_a_random_direction(tmp_path):
    config = RedsConfig(
        latents=2,
        steps=2,
        step_size=0.5,
        examples=(("upper", "lower"),),
        fd_steps=(0.1,),
        fd_latents=1,
        seed=1,
        method="nullspace",
    )
    first, second = (  # the second without figures: the same paths
        run_reds(tmp_path / name, replace(config, figures=drawn), progress=False)
        for name, drawn in (("a", True), ("b", False))
    )
    example = first["examples"][example_name("upper", "lower")]
    assert example["paths"] == second["examples"][example_name("upper", "lower")]["paths"]
    assert first["basis"] is None and set(example["paths"]) == {"reds", "straight", "random"}
    assert example["paths"]["reds"]["ratio_of_means"] > example["paths"]["random"]["ratio_of_means"]
    assert 1 <= example["nullspace_dims"]["held"]["mean"] < 100


def test_straight_and_lsd_paths_have_steps_of_the_given_length():
    z = torch.randn(5, 100, dtype=torch.float64)
    direction = torch.nn.functional.normalize(torch.randn(5, 100, dtype=torch.float64), dim=1)
    line = straight_path(z, direction, 3, 0.7)
    assert line.shape == (4, 5, 100) and torch.equal(line[0], z)
    torch.testing.assert_close((line[1:] - line[:-1]).norm(dim=-1), torch.full((3, 5), 0.7, dtype=torch.float64))
    basis = random_basis()
    labels = torch.tensor([0, 3, 9, 4, 4])
    path, short = lsd_rotation_path(z, labels, basis, 3, 0.7)
    assert short == 0 and path.shape == (4, 5, 100)
    torch.testing.assert_close((path[1:] - path[:-1]).norm(dim=-1), torch.full((3, 5), 0.7, dtype=torch.float64))
    torch.testing.assert_close(path.norm(dim=-1), z.norm(dim=-1).expand(4, 5))  # a rotation keeps |z|
    c = basis.decompose(path.flatten(0, 1)).unflatten(0, (4, 5))  # rotates from xi_label to xi_(label + 1)
    for index, label in enumerate(labels.tolist()):
        i, j = basis.index_of(label), basis.index_of((label + 1) % 10)
        angles = torch.atan2(c[:, index, j], c[:, index, i])
        turns = torch.remainder(angles[1:] - angles[:-1] + math.pi, 2 * math.pi) - math.pi
        assert (turns > 0).all()


def test_feature_specs():
    classifier = torch.nn.Identity()
    images = torch.randn(2, 1, 28, 28)
    assert build_feature("upper+lower", classifier, (28, 28), "--change")(images).shape == (2, 784)
    assert build_feature("box:0:4:0:5", classifier, (28, 28), "--change")(images).shape == (2, 20)
    assert build_feature("outside:0:4:0:5", classifier, (28, 28), "--hold")(images).shape == (2, 784 - 20)
    assert build_feature("thickness + ink", classifier, (28, 28), "--hold")(images).shape == (2, 2)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["reds", "--change", "identity"], "--change and --hold together"),
        (["reds", "--change", "nose", "--hold", "lower", "--out", "{empty}"], "--change nose"),
        (["reds", "--change", "upper", "--hold", "box:0:40:0:28", "--out", "{empty}"], "--hold box:0:40:0:28"),
        (["reds", "--change", "upper", "--hold", "box:a:b:c:d", "--out", "{empty}"], "--hold box:a:b:c:d"),
        (
            [
                "reds",
                "--change",
                "identity",
                "--hold",
                "ink",
                "--basis",
                "/no/such/basis.safetensors",
                "--out",
                "{empty}",
            ],
            "/no/such/basis",
        ),
        (["reds", "--latents", "0"], "--latents"),
        (["reds", "--latents", "20000", "--out", "{empty}"], "--latents 20000"),
        (["reds", "--step-size", "0"], "--step-size"),
        (["reds", "--method", "svd"], "--method"),
        (["reds", "--out", "{file}"], "not a directory"),
        (["reds", "--models", "/no/such/models", "--out", "{empty}"], "/no/such/models"),
    ],
)
@pytest.mark.slow
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, args, expected):
    (tmp_path / "file").write_text("x")
    args = [a.format(empty=tmp_path / "empty", file=tmp_path / "file") for a in args]
    code, _, err = run_cli(capsys, *args, "--quiet")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err


# --- A user's networks without parameters --------------------------------------------------------------

SIDE, LATENT, LABELS = 8, 6, 3
OUTPUTS = {"generator": (1, SIDE, SIDE), "classifier": (LABELS,), "encoder": (LATENT,)}


def user_weights() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """float32 weights and shifts of G (z -> 8 x 8 grey images), C (3 labels) and E (the pseudo-inverse of G's)."""
    rng = torch.Generator().manual_seed(0)
    generator = torch.randn(SIDE * SIDE, LATENT, generator=rng) / math.sqrt(LATENT)
    weights = {
        "generator": generator,
        "classifier": torch.randn(LABELS, SIDE * SIDE, generator=rng) / SIDE,
        "encoder": torch.linalg.pinv(generator),
    }
    return {piece: (weight, torch.full((len(weight),), 0.01)) for piece, weight in weights.items()}


def user_layer(piece: str, weight: torch.Tensor, shift: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """One affine map of the flattened inputs, tanh for the generator (images in [-1, 1]), shaped as ``piece``."""
    outputs = inputs.flatten(1) @ weight.T + shift
    return (torch.tanh(outputs) if piece == "generator" else outputs).reshape(-1, *OUTPUTS[piece])


class BufferNetwork(nn.Module):
    """`user_layer` with its weight a buffer and its shift a plain tensor attribute (torch.export makes it a
    constant): no nn.Parameter."""

    def __init__(self, piece: str, weight: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.piece = piece
        self.register_buffer("weight", weight)
        self.shift = shift

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return user_layer(self.piece, self.weight, self.shift, inputs)


def plain_networks() -> dict:
    """The factory: the same networks as plain functions over float32 tensors."""
    pieces = {piece: partial(user_layer, piece, *weights) for piece, weights in user_weights().items()}
    return {**pieces, "latent_dim": LATENT}


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Path:
    """A networks.json directory of the exported networks, the factory module and a dataset of their images."""
    root = tmp_path_factory.mktemp("users")
    batch = torch.export.Dim("batch", min=1)
    for piece, weights in user_weights().items():
        example = torch.zeros(2, LATENT) if piece == "generator" else torch.zeros(2, 1, SIDE, SIDE)
        program = torch.export.export(BufferNetwork(piece, *weights), (example,), dynamic_shapes=({0: batch},))
        assert not list(program.module().parameters())
        torch.export.save(program, str(root / f"{piece}.pt2"))
    (root / "networks.json").write_text(json.dumps({piece: f"{piece}.pt2" for piece in OUTPUTS}))
    (root / "plain_reds_networks.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_reds_study import plain_networks
    """)
    )
    networks = plain_networks()
    with torch.no_grad():
        images = networks["generator"](torch.randn(12, LATENT, generator=torch.Generator().manual_seed(1)))
        labels = networks["classifier"](images).argmax(1).numpy()
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
    np.savez(root / "images.npz", x_train=pixels[:8], y_train=labels[:8], x_test=pixels[8:], y_test=labels[8:])
    return root


USER_SPECS = {"exported": lambda root: str(root), "factory": lambda root: "plain_reds_networks:plain_networks"}


@pytest.mark.parametrize("kind", USER_SPECS)
def test_cli_runs_on_networks_without_parameters(users, tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(users)
    code, out, err = run_cli(
        capsys,
        "reds",
        "--networks",
        USER_SPECS[kind](users),
        "--dataset",
        f"npz:{users / 'images.npz'}",
        "--device",
        "cpu",
        "--change",
        "upper",
        "--hold",
        "lower+identity",
        "--latents",
        "2",
        "--steps",
        "2",
        "--step-size",
        "0.5",
        "--out",
        str(tmp_path / "reds"),
        "--json",
        "--quiet",
        "--no-figures",
    )
    assert code == 0, err
    example = json.loads(out)["examples"][example_name("upper", "lower+identity")]
    assert example["figure"] is None and not list((tmp_path / "reds").rglob("*.png"))  # asked for none
    assert example["jacobian_dtype"] == "float32"
    for kind_of_path, changes in example["paths"].items():
        assert changes["path_length"]["mean"] == pytest.approx(1.0, rel=1e-6), kind_of_path
        assert math.isfinite(changes["ratio_median"]), kind_of_path


@pytest.mark.parametrize("kind", ["shipped", *USER_SPECS])
@pytest.mark.slow
def test_compares_reds_adapter_gives_the_directions_of_the_reds_path(users, monkeypatch, kind):
    """One code path: the adapter fitted as compare fits it (`fit_inputs`) at one latent starts where the `reds`
    command's path does, from networks in the same dtype (float64 for the package's own, float32 for a user's)."""
    monkeypatch.chdir(users)
    spec = None if kind == "shipped" else USER_SPECS[kind](users)
    exact = reds_networks(RedsConfig(networks=spec))
    z = torch.randn(1, 100 if kind == "shipped" else LATENT)
    change, hold = "upper", "lower+identity"
    f, g = (
        build_feature(feature, exact.classifier, exact.image_shape, argument)
        for feature, argument in ((change, "--change"), (hold, "--hold"))
    )
    dtype = torch.float64 if kind == "shipped" else torch.float32
    assert feature_jacobians(exact.generator, f, g, z)[0].dtype == dtype
    path = rayleigh_path(exact.generator, f, g, z, 1, 1.0)
    adapter = get("reds", n_directions=2, change=change, hold=hold)
    adapter.fit(**fit_inputs(adapter, load_networks(spec), None, z))
    torch.testing.assert_close(adapter.directions_[0], (path[1, 0] - path[0, 0]).float())


def test_the_identity_basis_can_be_drawn_until_stable(monkeypatch):
    """`--basis-per-set auto` reaches `basis_study` as "auto", and the record names the V the basis settled at."""
    from latentspectra.experiments import reds
    from latentspectra.experiments.basis import BasisBuild

    asked = []

    def settled(config, **_):
        asked.append(config)
        return BasisBuild(random_basis(), None, {"per_set": 500})

    monkeypatch.setattr(reds, "basis_study", settled)
    compute = Compute()
    basis, source = reds._lsd_basis(None, None, RedsConfig(basis_per_set="auto"), 100, False, compute)
    assert asked[0].per_set == "auto" and source == {"per_set": 500, "seed": 0} and basis.dim == 100
