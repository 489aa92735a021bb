"""A user's network files as they come: a generator, classifier and encoder exported with a fixed batch (no
dynamic_shapes) run a command to the end and give what their dynamic exports give (they run in chunks of that
batch); inputs whose other sizes differ from the export's are one line saying how to export instead; a file
that is not a regular file, a truncated archive and an exported generator whose latent size cannot be read are
each one line that says so."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_cli
from latentspectra.latent import load_basis
from latentspectra.methods.directions import layer_root
from latentspectra.models.foreign import ForeignNetwork, NetworkError, load_network_file, run_in_fixed_batches
from latentspectra.threads import single_thread
from test_own_networks import LABELS, LATENT, SHAPE, _networks

EXAMPLES = {
    "generator": torch.zeros(2, LATENT),
    "classifier": torch.zeros(2, *SHAPE),
    "encoder": torch.zeros(2, *SHAPE),
}


def _save(module: nn.Module, example: torch.Tensor, path, dynamic: bool) -> None:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(module, (example,), dynamic_shapes=shapes), str(path))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The same three networks exported with a fixed batch of 2 ("static") and a dynamic batch ("dynamic"), each
    directory with its manifest, and a dataset of the generator's images."""
    root = tmp_path_factory.mktemp("exports")
    networks = dict(zip(("generator", "classifier", "encoder"), _networks(), strict=True))
    for kind in ("static", "dynamic"):
        (root / kind).mkdir()
        for piece, module in networks.items():
            _save(module, EXAMPLES[piece], root / kind / f"{piece}.pt2", kind == "dynamic")
        (root / kind / "networks.json").write_text(
            json.dumps(
                {
                    "generator": "generator.pt2",
                    "classifier": "classifier.pt2",
                    "encoder": "encoder.pt2",
                    "pixel_range": [0, 1],
                    "labels": list(LABELS),
                }
            )
        )
    with torch.no_grad():
        images = networks["generator"](torch.randn(120, LATENT, generator=torch.Generator().manual_seed(1)))
        labels = networks["classifier"](images).argmax(1)
    pixels = (images * 255).round().to(torch.uint8).numpy()
    np.savez(
        root / "shapes.npz",
        x_train=pixels[:80],
        y_train=labels[:80].numpy(),
        x_test=pixels[80:],
        y_test=labels[80:].numpy(),
        classes=np.array(LABELS),
    )
    return root


def _outputs(outputs) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


@pytest.mark.parametrize("piece", ["generator", "classifier", "encoder"])
def test_a_fixed_batch_export_gives_what_the_dynamic_one_gives(exports, piece):
    static = load_network_file(exports / "static" / f"{piece}.pt2", piece)
    dynamic = load_network_file(exports / "dynamic" / f"{piece}.pt2", piece)
    assert static.fixed_batch == 2 and dynamic.fixed_batch is None
    for rows in (0, 1, 2, 3, 5):
        inputs = torch.rand(rows, *EXAMPLES[piece].shape[1:], generator=torch.Generator().manual_seed(rows))
        for got, expected in zip(_outputs(static(inputs)), _outputs(dynamic(inputs)), strict=True):
            assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-6)


def test_fixed_batches_keep_the_gradient(exports):
    static = load_network_file(exports / "static" / "generator.pt2", "generator")
    dynamic = load_network_file(exports / "dynamic" / "generator.pt2", "generator")
    gradients = []
    for network in (static, dynamic):
        z = torch.randn(5, LATENT, generator=torch.Generator().manual_seed(0)).requires_grad_()
        network(z).square().sum().backward()
        gradients.append(z.grad)
    assert torch.allclose(*gradients, atol=1e-6)


def test_the_users_layers_keep_their_names(exports):
    """A layer named with --param (SeFa, GANSpace) is the program's own submodule name, as for a module."""
    generator = ForeignNetwork(load_network_file(exports / "static" / "generator.pt2", "generator"), (0, 1), "output")
    assert {"mix", "texture"} <= dict(layer_root(generator).named_modules()).keys()


def test_run_in_fixed_batches_pads_with_the_last_row_and_trims():
    seen = []

    def network(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(rows.clone())
        return rows * 2, rows.sum(1)

    doubled, sums = run_in_fixed_batches(network, torch.arange(10.0).view(5, 2), 2)
    assert torch.equal(doubled, torch.arange(10.0).view(5, 2) * 2) and sums.shape == (5,)
    assert [chunk.shape[0] for chunk in seen] == [2, 2, 2] and torch.equal(seen[-1], torch.tensor([[8.0, 9], [8, 9]]))


@pytest.mark.slow
def test_a_command_runs_to_the_end_on_fixed_batch_exports(exports, tmp_path, capsys):
    bases = {}
    for kind in ("static", "dynamic"):
        out = tmp_path / f"{kind}.safetensors"
        with single_thread():  # hundreds of batches of two: a 2-thread pool on shared cores would wait on itself
            code, _, err = run_cli(
                capsys,
                "basis",
                "--per-set",
                "10",
                "--out",
                str(out),
                "--networks",
                str(exports / kind),
                "--dataset",
                f"npz:{exports / 'shapes.npz'}",
                "--device",
                "cpu",
                "--quiet",
            )
        assert code == 0, err
        bases[kind] = load_basis(out)
    assert torch.allclose(bases["static"].vectors, bases["dynamic"].vectors, atol=1e-5)
    assert torch.equal(bases["static"].labels, bases["dynamic"].labels)


def test_inputs_of_other_fixed_sizes_are_one_line_saying_how_to_export(exports, tmp_path, capsys):
    classifier = load_network_file(exports / "static" / "classifier.pt2", "classifier")
    with pytest.raises(
        NetworkError,
        match=r"exported for inputs of shape \(2, 3, 32, 32\), given \(2, 3, 28, 28\); "
        r".*dynamic_shapes=\(\{0: torch.export.Dim\(\"batch\"\)\},\)",
    ):
        classifier(torch.zeros(2, 3, 28, 28))
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "networks.json").write_text(
        json.dumps(
            {
                "generator": str(exports / "static" / "generator.pt2"),
                "classifier": str(exports / "static" / "classifier.pt2"),
                "latent_dim": LATENT + 1,
                "pixel_range": [0, 1],
            }
        )
    )
    code, _, err = run_cli(
        capsys,
        "basis",
        "--networks",
        str(wide),
        "--out",
        str(tmp_path / "out" / "b.safetensors"),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"exported for inputs of shape (2, {LATENT}), given (2, {LATENT + 1})" in err and "dynamic_shapes" in err


def test_a_file_that_is_not_a_regular_file_says_so(tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "basis",
        "--generator",
        "/dev/zero",
        "--out",
        str(tmp_path / "out" / "b.safetensors"),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 2 and "/dev/zero: not a regular file; expected a generator network file" in err, err
    with pytest.raises(NetworkError, match="not a regular file; expected a generator network file"):
        load_network_file(tmp_path, "generator")
    with pytest.raises(NetworkError, match="generator file not found"):
        load_network_file(tmp_path / "absent.pt2", "generator")


def test_a_truncated_archive_is_called_damaged_never_pickled(exports, tmp_path):
    data = (exports / "dynamic" / "generator.pt2").read_bytes()
    inner_end = data.rindex(b"PK\x05\x06", 0, len(data) - 22) + 22  # where the sample inputs' own zip ends
    for cut in sorted({inner_end, *range(4, len(data) - 1, max(1, len(data) // 97))}):
        path = tmp_path / "generator.pt2"
        path.write_bytes(data[:cut])
        with pytest.raises(NetworkError) as failure:
            load_network_file(path, "generator")
        assert "damaged or truncated archive" in str(failure.value) and "pickled" not in str(failure.value), cut


class FlatGenerator(nn.Module):
    """A generator that takes latents of shape (N, M, 1, 1), as DCGAN's do."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = _networks()[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z.flatten(1))


def _scripted(generator: nn.Module, path) -> None:
    with warnings.catch_warnings():  # torch deprecates TorchScript; users still have such archives
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(generator), str(path))


@pytest.mark.parametrize(
    "name, save",
    [
        ("generator.pt2", lambda path: _save(FlatGenerator().eval(), torch.zeros(2, LATENT, 1, 1), path, dynamic=True)),
        (
            "generator.pt",
            lambda path: _scripted(nn.Sequential(nn.Linear(LATENT, 12), nn.Unflatten(1, (3, 2, 2))), path),
        ),
    ],
    ids=["exported-4d", "torchscript"],
)
def test_a_generator_whose_latent_size_cannot_be_read_says_why(tmp_path, capsys, name, save):
    directory = tmp_path / "mine"
    directory.mkdir()
    save(directory / name)
    (directory / "networks.json").write_text(json.dumps({"generator": name}))
    code, _, err = run_cli(
        capsys,
        "basis",
        "--networks",
        str(directory),
        "--out",
        str(tmp_path / "b.safetensors"),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot tell the latent size M from the generator" in err and "(N, M) with M fixed" in err
    assert 'give "latent_dim"' in err
