"""Every command on networks a user brings: a small GAN, classifier and encoder defined here, on synthetic RGB
images (3 x 32 x 32, 4 labels, latent size 24, pixels in [0, 1]), exported with torch.export and TorchScript
and named in a manifest, or returned by a module:function factory; and the one-line errors for what does not
fit."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import one_error_line, run_cli
from latentspectra.experiments.networks import load_networks
from latentspectra.latent import load_basis
from latentspectra.models.files import shipped_models_dir

LATENT, SHAPE, LABELS = 24, (3, 32, 32), ("red", "green", "blue", "white")


def _patterns() -> torch.Tensor:
    """One coloured shape per label: a red disc, a green square, a blue bar, a white ring, (4, 3, 32, 32)."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    radius = ((y - 15.5) ** 2 + (x - 15.5) ** 2).sqrt()
    shapes = [
        (radius < 9).float(),
        ((y - 15.5).abs() < 8).float() * ((x - 15.5).abs() < 8).float(),
        ((x - 15.5).abs() < 4).float(),
        ((radius > 8) & (radius < 12)).float(),
    ]
    colours = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0], [1.0, 1.0, 1.0]])
    return torch.stack([colours[k][:, None, None] * shapes[k] for k in range(4)])


class Generator(nn.Module):
    """z -> a mixture of the four coloured shapes, weighted by softmax(3 A z), plus a little texture; [0, 1]."""

    def __init__(self, latent: int = LATENT) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(0)
        self.mix = nn.Linear(latent, 4, bias=False)
        self.texture = nn.Linear(latent, math.prod(SHAPE))
        with torch.no_grad():
            self.mix.weight.copy_(torch.randn(4, latent, generator=rng))
            self.texture.weight.copy_(0.05 * torch.randn(math.prod(SHAPE), latent, generator=rng))
        self.register_buffer("patterns", _patterns().flatten(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(3 * self.mix(z), dim=1)
        image = 0.9 * weights @ self.patterns + 0.1 * torch.sigmoid(self.texture(z))
        return image.view(-1, *SHAPE)


class Classifier(nn.Module):
    """image in [0, 1] -> logits: the image's match with each centred pattern."""

    def __init__(self) -> None:
        super().__init__()
        patterns = _patterns().flatten(1)
        self.score = nn.Linear(math.prod(SHAPE), 4)
        with torch.no_grad():
            self.score.weight.copy_(patterns / patterns.norm(dim=1, keepdim=True) * 0.2)
            self.score.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score(images.flatten(1))


class Encoder(nn.Module):
    """image -> (mean, log-variance): the label evidence carried back into the directions that make it."""

    def __init__(self, generator: Generator, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.back = nn.Linear(4, generator.mix.in_features, bias=False)
        with torch.no_grad():
            self.back.weight.copy_(0.3 * generator.mix.weight.T)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.back(self.classifier(images))
        return mean, torch.full_like(mean, -4.0)


def _networks(latent: int = LATENT) -> tuple[Generator, Classifier, Encoder]:
    generator, classifier = Generator(latent).eval(), Classifier().eval()
    return generator, classifier, Encoder(generator, classifier).eval()


def _export(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), str(path))
    return path


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A directory of the user's exported networks with its manifest, a dataset of their images, and a factory
    module."""
    root = tmp_path_factory.mktemp("own")
    generator, classifier, encoder = _networks()
    _export(generator, torch.zeros(2, LATENT), root / "generator.pt2")
    with warnings.catch_warnings():  # torch deprecates TorchScript; users still have such archives
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(classifier), str(root / "classifier.pt"))
    _export(encoder, torch.zeros(2, *SHAPE), root / "encoder.pt2")
    (root / "networks.json").write_text(
        json.dumps(
            {
                "generator": "generator.pt2",
                "classifier": "classifier.pt",
                "encoder": "encoder.pt2",
                "pixel_range": [0, 1],
                "labels": list(LABELS),
            }
        )
    )
    with torch.no_grad():
        images = generator(torch.randn(300, LATENT, generator=torch.Generator().manual_seed(1)))
        labels = classifier(images).argmax(1)
    pixels = (images * 255).round().to(torch.uint8).numpy()
    np.savez(
        root / "shapes.npz",
        x_train=pixels[:200],
        y_train=labels[:200].numpy(),
        x_test=pixels[200:],
        y_test=labels[200:].numpy(),
        classes=np.array(LABELS),
    )
    (root / "user_networks.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_own_networks import _networks

        def networks():
            generator, classifier, encoder = _networks()
            return {{"generator": generator, "classifier": classifier, "encoder": encoder, "latent_dim": 24,
                     "pixel_range": (0, 1), "labels": {list(LABELS)!r}}}

        def odd():  # M = 25 for l = 4 labels: 6 sets per label and one direction without a label
            generator, classifier, encoder = _networks(25)
            return {{"generator": generator, "classifier": classifier, "encoder": encoder, "latent_dim": 25,
                     "pixel_range": (0, 1)}}

        def broken():
            raise RuntimeError("no weights here")

        def wrong():
            return 42
    """)
    )
    return root


def _finite_numbers(record) -> list[float]:
    if isinstance(record, dict):
        return [n for value in record.values() for n in _finite_numbers(value)]
    if isinstance(record, list):
        return [n for value in record for n in _finite_numbers(value)]
    return [record] if isinstance(record, float) else []


@pytest.mark.parametrize("networks", ["manifest", "factory"])
@pytest.mark.slow
def test_every_command_runs_on_the_users_networks(own, tmp_path, capsys, monkeypatch, networks):
    monkeypatch.chdir(own)
    spec = str(own) if networks == "manifest" else "user_networks:networks"
    common = ("--networks", spec, "--dataset", f"npz:{own / 'shapes.npz'}", "--device", "cpu", "--quiet")
    # The factory's runs are asked for their records alone (basis draws none); fragmentation's figures of colour
    # images with label names are test_report's, and the figures of its runs the README's and test_inversion_commands'
    drawn = networks == "manifest"
    commands = {
        "basis": ("basis", "--per-set", "10", "--out", str(tmp_path / "basis.safetensors")),
        "reproduce": ("reproduce", "--per-set", "10", "--trials", "1", "--out", str(tmp_path / "reproduce")),
        "sfvq": ("sfvq", "--codewords", "4", "--out", str(tmp_path / "sfvq")),
        "reds": ("reds", "--latents", "2", "--steps", "2", "--basis-per-set", "10", "--out", str(tmp_path / "reds")),
        "fragmentation": (
            "fragmentation",
            "--model",
            "encoder",
            "--samples",
            "60",
            "--mixture-components",
            "4",
            "--mixture-codes",
            "60",
            "--out",
            str(tmp_path / "fragmentation"),
        ),
    }
    for name, args in commands.items():
        figures = () if (drawn and name != "fragmentation") or name == "basis" else ("--no-figures",)
        code, out, err = run_cli(capsys, *args, *common, *figures, "--json")
        assert code == 0, (name, err)
        record = json.loads(out)
        assert all(math.isfinite(value) for value in _finite_numbers(record)), name
    basis = json.loads((tmp_path / "basis.json").read_text())
    assert basis["dim"] == LATENT
    metrics = json.loads((tmp_path / "reproduce" / "metrics.json").read_text())
    assert metrics["latent_dim"] == LATENT and len(metrics["lsd_topn_cumulative"]) == LATENT
    assert metrics["lsd_top1_accuracy"]["mean"] > 0.5  # the label evidence is carried into z by the encoder
    for figure in ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8"):
        assert (tmp_path / "reproduce" / "figures" / f"{figure}.png").is_file() == drawn
    reds = json.loads((tmp_path / "reds" / "reds.json").read_text())
    assert list(reds["examples"]) and all("thickness" in note for note in reds["skipped_examples"])
    assert len(reds["skipped_examples"]) == 2  # the stroke features of the documented examples
    assert (tmp_path / "sfvq" / "curve.safetensors").is_file()
    assert json.loads((tmp_path / "fragmentation" / "fragmentation.json").read_text())["models"]


@pytest.mark.slow
def test_a_latent_size_that_is_not_a_multiple_of_the_labels(own, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(own)
    common = ("--networks", "user_networks:odd", "--dataset", f"npz:{own / 'shapes.npz'}", "--device", "cpu", "--quiet")
    code, _, err = run_cli(capsys, "basis", "--per-set", "10", "--out", str(tmp_path / "b.safetensors"), *common)
    assert code == 0, err
    basis = load_basis(tmp_path / "b.safetensors")
    assert basis.labels.tolist()[-1] == -1 and basis.provenance["unlabelled_directions"] == 1
    code, _, err = run_cli(
        capsys, "reproduce", "--per-set", "10", "--trials", "1", "--out", str(tmp_path / "r"), *common
    )
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["latent_dim"] == 25


def test_the_shipped_networks_load_the_same_through_the_description(tmp_path):
    networks = load_networks(None)
    assert networks.labels == tuple(str(k) for k in range(10)) and networks.image_shape == (1, 28, 28)
    assert networks.source == str(shipped_models_dir("mnist"))
    z = torch.randn(5, 100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(networks.decode_classify(z), load_networks(shipped_models_dir("mnist")).decode_classify(z))


def test_a_generator_file_replaces_the_shipped_one(own, capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "basis",
        "--generator",
        str(own / "generator.pt2"),
        "--out",
        str(tmp_path / "b.safetensors"),
        "--device",
        "cpu",
    )
    assert code == 2 and err.count("\n") == 1
    assert "fails on a batch of 2 inputs" in err or "expected" in err


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (
            lambda root, own: torch.save(Classifier(), root / "pickled.pt"),
            ("--classifier", "{root}/pickled.pt"),
            "a pickled classifier (torch.save), which latentspectra never loads; export it instead",
        ),
        (
            lambda root, own: (root / "junk.pt2").write_bytes(b"not a network"),
            ("--generator", "{root}/junk.pt2"),
            "not a generator network file",
        ),
        (None, ("--networks", "user_networks:broken"), "the factory raised RuntimeError: no weights here"),
        (None, ("--networks", "user_networks:wrong"), "the factory returned a int, expected a LatentNetworks"),
        (None, ("--networks", "no_such_module:networks"), "cannot import no_such_module (ModuleNotFoundError"),
        (None, ("--networks", "user_networks:absent"), "user_networks has no function 'absent'"),
        (
            lambda root, own: (
                (root / "bad").mkdir()
                or (root / "bad" / "networks.json").write_text(
                    json.dumps(
                        {
                            "generator": str(own / "generator.pt2"),
                            "classifier": str(own / "classifier.pt"),
                            "image_shape": [3, 28, 28],
                        }
                    )
                )
            ),
            ("--networks", "{root}/bad"),
            "generator of",
        ),
        (
            lambda root, own: (
                (root / "wide").mkdir()
                or (root / "wide" / "networks.json").write_text(
                    json.dumps(
                        {
                            "generator": str(own / "generator.pt2"),
                            "classifier": str(own / "classifier.pt"),
                            "pixel_range": [0, 1],
                            "labels": ["a", "b", "c"],
                        }
                    )
                )
            ),
            ("--networks", "{root}/wide"),
            "expected 3 outputs, one per label",
        ),
    ],
)
def test_networks_that_do_not_fit_areone_error_line(own, tmp_path, capsys, monkeypatch, setup, args, message):
    monkeypatch.chdir(own)
    if setup is not None:
        setup(tmp_path, own)
    args = [arg.format(root=tmp_path) for arg in args]
    code, _, err = run_cli(
        capsys, "basis", *args, "--out", str(tmp_path / "out" / "b.safetensors"), "--device", "cpu", "--quiet"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


# --- careless and hostile descriptions: sizes, probabilities, datasets whose classes are not the labels ------


def _manifest(root, own_root, **entries) -> str:
    """A networks.json in ``root`` naming the user's generator, classifier and encoder in ``own_root``, with
    ``entries`` over them."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": str(own_root / "generator.pt2"),
        "classifier": str(own_root / "classifier.pt"),
        "encoder": str(own_root / "encoder.pt2"),
        "pixel_range": [0, 1],
        "labels": list(LABELS),
        **entries,
    }
    (root / "networks.json").write_text(json.dumps(manifest))
    return str(root)


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"latent_dim": 0}, "latent_dim must be a whole number >= 1, got 0"),
        ({"latent_dim": 10**12}, "two latents of shape (1000000000000,): needs about"),
        ({"image_shape": [3, 10**6, 10**6]}, "two images of shape (3, 1000000, 1000000): needs about"),
        ({"classifier_outputs": "odds"}, "classifier_outputs must be one of ('logits', 'probabilities'), got 'odds'"),
    ],
)
def test_a_manifest_size_no_machine_holds_isone_error_line(own, tmp_path, capsys, entries, message):
    networks = _manifest(tmp_path / "mine", own, **entries)
    code, _, err = run_cli(
        capsys,
        "basis",
        "--networks",
        networks,
        "--out",
        str(tmp_path / "out" / "b.safetensors"),
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 2 and message in one_error_line(err), err
    assert not (tmp_path / "out").exists()


def _probability_classifier(root) -> str:
    """The user's classifier with a softmax at its end, as TorchScript."""
    path = root / "softmax.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(nn.Sequential(Classifier().eval(), nn.Softmax(dim=1))), str(path))
    return str(path)


def test_a_classifier_returning_probabilities_is_refused_unless_declared(own, tmp_path, capsys):
    """Undeclared probabilities are refused before any work; declared, they give the label numbers of the same
    classifier's logits (sample confidence 0.0 instead of the logits' value was the silent failure). The
    classifier-feature Fréchet distance is not among them: its features are the probabilities then."""
    probabilities = _probability_classifier(tmp_path)
    refused = _manifest(tmp_path / "refused", own, classifier=probabilities)
    code, _, err = run_cli(
        capsys,
        "evaluate",
        "--networks",
        refused,
        "--dataset",
        f"npz:{own / 'shapes.npz'}",
        "--device",
        "cpu",
        "--precision",
        "float32",
    )
    assert code == 2 and "outputs on the probe batch are probabilities" in one_error_line(err)
    assert '"classifier_outputs": "probabilities"' in err

    def evaluated(networks: str) -> dict:
        code, out, err = run_cli(
            capsys,
            "evaluate",
            "--networks",
            networks,
            "--dataset",
            f"npz:{own / 'shapes.npz'}",
            "--device",
            "cpu",
            "--precision",
            "float32",
            "--json",
        )
        assert code == 0, err
        return json.loads(out)

    declared = evaluated(
        _manifest(tmp_path / "declared", own, classifier=probabilities, classifier_outputs="probabilities")
    )
    logits = evaluated(_manifest(tmp_path / "logits", own))
    for key in ("classifier_accuracy", "sample_confidence", "sample_label_entropy", "encode_decode_accuracy"):
        assert declared[key] == pytest.approx(logits[key], abs=1e-4), key
    assert logits["sample_confidence"] > 0.1


def test_declared_probabilities_that_are_not_are_refused(own, tmp_path, capsys):
    networks = _manifest(tmp_path / "mine", own, classifier_outputs="probabilities")
    code, _, err = run_cli(
        capsys, "basis", "--networks", networks, "--out", str(tmp_path / "b.safetensors"), "--device", "cpu", "--quiet"
    )
    assert code == 2 and 'declared "classifier_outputs": "probabilities", but' in one_error_line(err)


@pytest.mark.parametrize("classes", [3, 5])
@pytest.mark.parametrize("command", ["evaluate", "reproduce", "compare"])
def test_a_dataset_whose_classes_are_not_the_labels_is_refused_before_any_work(own, tmp_path, capsys, command, classes):
    """reproduce crashed at its figures after all the work with more classes, and evaluated without a word
    with fewer."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(20, 3, 32, 32), dtype=np.uint8)
    path = tmp_path / "other.npz"
    np.savez(path, x_train=images, y_train=np.arange(20) % classes, x_test=images[:10], y_test=np.arange(10) % classes)
    out = ["--out", str(tmp_path / "out")] if command != "evaluate" else []
    code, _, err = run_cli(
        capsys,
        command,
        "--networks",
        _manifest(tmp_path / "mine", own),
        "--dataset",
        f"npz:{path}",
        "--device",
        "cpu",
        *out,
    )
    assert code == 2 and f"{classes} classes, but the classifier of" in one_error_line(err) and "has 4 labels" in err
    assert not (tmp_path / "out").exists()


def test_a_classifier_without_a_penultimate_layer_is_compared_by_its_logits_everywhere(own):
    """compare's feature distances and the inversion's feature term read one rule (`has_penultimate_features`):
    the user's classifier here has no ``features``, so both compare its logits; the shipped one its penultimate
    layer."""
    from latentspectra.experiments.compare import feature_map
    from latentspectra.experiments.image_latents import LOGITS, PENULTIMATE, inversion_networks

    users, shipped = load_networks(own), load_networks(None)
    assert feature_map(users)[1] == "classifier logits" and inversion_networks(users).feature_layer == LOGITS
    assert feature_map(shipped)[1] == "classifier features (penultimate layer)"
    assert inversion_networks(shipped).feature_layer == PENULTIMATE
    images = torch.rand(3, *SHAPE)
    torch.testing.assert_close(feature_map(users)[0](images), users.exact_classifier(images))
