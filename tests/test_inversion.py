"""GAN inversion by optimisation (latent/inversion.py), the one chooser of how images become latents
(experiments/image_latents.py) and `latentspectra invert`: known latents recovered by a tiny injective generator,
the hybrid never worse than its encoder, noise flagged and finite, a seed's determinism, one-line errors."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import one_error_line, run_cli
from latentspectra.config import InversionSettings, InvertConfig, option_value_problem
from latentspectra.errors import LatentspectraError
from latentspectra.experiments.image_latents import latents_of_images, resolve_inversion
from latentspectra.experiments.networks import load_networks
from latentspectra.latent import LatentError, load_latents, save_latents
from latentspectra.latent.inversion import InversionError, inversion_terms, invert
from latentspectra.models.files import shipped_models_dir
from latentspectra.models.foreign import NetworkError
from latentspectra.models.spec import LatentNetworks
from latentspectra.threads import single_thread

M, SIDE, LABELS = 3, 6, 3  # the tiny generator: 3 latents -> 6 x 6 grey images; its classifier: 3 labels
QUICK = InversionSettings(steps=60, restarts=2, learning_rate=0.1, patience=10)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny networks are many small operations: on a shared 2-core CPU two threads wait on each other."""
    with single_thread():
        yield


class LinearTanh(nn.Module):
    """G(z) = tanh(A z) as (N, 1, 6, 6) images, A (36 x 3) of full column rank: injective, so an image it makes
    has one latent."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(SIDE * SIDE, M, generator=rng) / math.sqrt(M))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.weight.T).view(-1, 1, SIDE, SIDE)

    def pseudo_inverse(self, images: torch.Tensor) -> torch.Tensor:
        """The latents of images G made: A^+ atanh(x)."""
        return torch.atanh(images.flatten(1).clamp(-0.999999, 0.999999)) @ torch.linalg.pinv(self.weight).T


class PixelClassifier(nn.Module):
    """Logits of 3 labels from the pixels; ``features`` (the penultimate layer) are 8 tanh units."""

    def __init__(self) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(1)
        self.hidden = nn.Linear(SIDE * SIDE, 8)
        self.head = nn.Linear(8, LABELS)
        with torch.no_grad():
            for layer in (self.hidden, self.head):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=rng))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.hidden(images.flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class OffsetEncoder(nn.Module):
    """The generator's exact inverse plus a fixed offset: a biased guess, as an encoder's means are."""

    def __init__(self, generator: LinearTanh, offset: float = 0.4) -> None:
        super().__init__()
        self.generator, self.offset, self.latent_dim = generator, offset, M

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means = self.encode_mean(images)
        return means, torch.zeros_like(means)

    def encode_mean(self, images: torch.Tensor) -> torch.Tensor:
        return self.generator.pseudo_inverse(images) + self.offset


def _known(count: int = 8, seed: int = 5) -> tuple[LinearTanh, torch.Tensor, torch.Tensor]:
    generator = LinearTanh()
    z = torch.randn(count, M, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator, z, generator(z)


def test_known_latents_are_recovered():
    """Images made from known z: the inversion finds those z (the generator is injective) and their images."""
    generator, z, images = _known()
    found = invert(generator, images, M, settings=replace(QUICK, steps=300, patience=30, prior_weight=0.0), seed=0)
    assert (found.latents - z).norm(dim=1).max() < 0.05
    assert (generator(found.latents) - images).abs().max() < 0.01
    assert bool(found.reached.all()) and bool(found.finite.all())
    assert found.start == "prior" and found.feature_distance is None


def test_the_hybrid_is_never_worse_than_its_encoder():
    """Started from the encoder's means, the descent keeps the start where it cannot improve on it: every image's
    loss and (without the prior and feature terms) pixel MSE is at most the encoder's, and on average lower."""
    generator, _, images = _known()
    encoder = OffsetEncoder(generator)
    settings = replace(QUICK, prior_weight=0.0)
    found = invert(generator, images, M, encoder=encoder, settings=settings, seed=0)
    means = encoder(images)[0]
    with torch.no_grad():
        alone = inversion_terms(means, generator(means), images, None, None, settings)
    assert found.start == "encoder"
    assert bool((found.loss <= alone.loss).all()) and bool((found.pixel_mse <= alone.pixel_mse).all())
    assert found.pixel_mse.mean() < 0.1 * alone.pixel_mse.mean()


def test_noise_ends_finite_and_flagged_as_not_reached():
    generator, _, made = _known(4)
    noise = torch.rand(4, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    found = invert(generator, torch.cat([noise, made]), M, settings=QUICK, seed=0)
    assert bool(torch.isfinite(found.loss).all()) and bool(found.finite.all())
    assert found.reached.tolist() == [False] * 4 + [True] * 4
    assert torch.isfinite(found.latents).all() and found.latents.norm(dim=1).max() < 10


class Brittle(LinearTanh):
    """NaN images outside |z| < 5 (where no prior draw of 3 components goes): a generator that overflows."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z) * torch.sqrt(25 - z.pow(2).sum(1)).view(-1, 1, 1, 1) / 5


def test_a_loss_that_turns_nan_stops_the_image_at_its_best_finite_latent():
    _, _, images = _known(4)
    found = invert(Brittle(), images, M, settings=replace(QUICK, learning_rate=20.0), seed=0)
    assert not bool(found.finite.any())  # every descent jumped out of |z| < 5 at its first step
    assert bool(torch.isfinite(found.loss).all()) and bool((found.latents.norm(dim=1) < 5).all())
    assert bool(found.stopped_early.all()) and found.steps.tolist() == [2] * 4  # one step per start


def test_determinism_for_a_seed_whatever_the_batch():
    generator, _, images = _known(6)
    first = invert(generator, images, M, settings=QUICK, seed=3)
    again = invert(generator, images, M, settings=QUICK, seed=3, batch_size=4)
    other = invert(generator, images, M, settings=QUICK, seed=4)
    assert torch.allclose(first.latents, again.latents, atol=1e-5) and torch.equal(first.steps, again.steps)
    assert torch.equal(first.latents, invert(generator, images, M, settings=QUICK, seed=3).latents)
    assert not torch.allclose(first.latents, other.latents)


def test_early_stop_and_progress():
    """Converged images stop before the step budget (and pass no more through the networks); the progress sink
    counts every image's every start."""

    class Sink:
        total, done = None, 0

        def reset(self, total=None):
            self.total = total

        def update(self, n=1):
            self.done += n

    generator, _, images = _known(5)
    sink = Sink()
    found = invert(generator, images, M, settings=replace(QUICK, steps=2000), seed=0, progress=sink)
    assert bool(found.stopped_early.all()) and int(found.steps.max()) < 2 * 2000
    assert sink.total == sink.done == 5 * QUICK.restarts


def test_the_loss_by_hand():
    """Each term against its formula, computed by hand in numpy on small arrays."""
    rng = np.random.default_rng(0)
    z, made, images = rng.normal(size=(2, 3)), rng.normal(size=(2, 1, 2, 2)), rng.normal(size=(2, 1, 2, 2))
    made_features, image_features = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    settings = InversionSettings(feature_weight=0.3, prior_weight=0.2)
    terms = inversion_terms(*map(torch.tensor, (z, made, images, made_features, image_features)), settings)
    for row in range(2):
        pixels = sum((made[row].ravel() - images[row].ravel()) ** 2) / 4
        features = sum((made_features[row] - image_features[row]) ** 2) / sum(image_features[row] ** 2)
        prior = sum(z[row] ** 2) / (2 * 3)
        assert terms.pixel_mse[row].item() == pytest.approx(pixels, rel=1e-5)
        assert terms.feature_distance[row].item() == pytest.approx(features, rel=1e-5)
        assert terms.loss[row].item() == pytest.approx(pixels + 0.3 * features + 0.2 * prior, rel=1e-5)


def test_bfloat16_network_passes_keep_z_and_the_loss_in_float32():
    generator, _, images = _known(4)
    found = invert(generator, images, M, settings=QUICK, seed=0, precision="bfloat16")
    assert found.latents.dtype == torch.float32 and found.loss.dtype == torch.float32
    assert bool(found.finite.all()) and bool(found.reached.all())


class Detached(LinearTanh):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z).detach()


class NoGradGenerator(nn.Module):
    """A generator that runs without autograd, as TorchScript scripts it (module level: TorchScript reads the
    source)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(M, SIDE * SIDE)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.tanh(self.layer(z)).view(-1, 1, 6, 6)  # SIDE x SIDE (TorchScript reads no globals)


def _scripted_without_gradients() -> nn.Module:
    with warnings.catch_warnings():  # torch deprecates TorchScript; users still have such modules
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(NoGradGenerator().eval())


def _raises(z: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore detail")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"images": torch.zeros(2, 1, 5, 5)}, "images are (1, 5, 5) (C, H, W), but the generator makes images of"),
        ({"images": torch.zeros(2, 36)}, "images must be a finite floating-point tensor of shape (N, C, H, W), got"),
        ({"images": torch.zeros(2, 1, 6, 6, dtype=torch.uint8)}, "got torch.uint8"),
        ({"images": torch.full((2, 1, 6, 6), math.nan)}, "got NaN or infinite pixels"),
        ({"generator": Detached()}, "without a gradient with respect to z"),
        ({"generator": "scripted without gradients"}, "without a gradient with respect to z"),
        ({"generator": _raises}, "fails (RuntimeError: mat1 and mat2 shapes cannot be multiplied)"),
        ({"generator": lambda z: [z]}, "returns a list, expected images (a tensor)"),
        ({"latent_dim": 0}, "latent_dim must be a whole number >= 1, got 0"),
        ({"start": "encoder"}, 'start "encoder" needs an encoder'),
        ({"start": "mean"}, "start must be one of encoder, prior, got 'mean'"),
        ({"precision": "auto"}, "precision must be one of float32, bfloat16, got 'auto'"),
        ({"settings": InversionSettings(steps=0)}, "settings steps 0: expected a whole number >= 1"),
        ({"settings": InversionSettings(learning_rate=-1.0)}, "learning_rate -1.0: expected a finite number > 0"),
        ({"encoder": lambda x: torch.zeros(len(x), M + 1)}, "the encoder's means must be a finite floating-point"),
    ],
)
def test_bad_inputs_are_one_line(change, message):
    generator, _, images = _known(2)
    arguments = {"generator": generator, "images": images, "latent_dim": M, **change}
    if arguments["generator"] == "scripted without gradients":
        arguments["generator"] = _scripted_without_gradients()
    with pytest.raises((InversionError, LatentError)) as raised:
        invert(arguments.pop("generator"), arguments.pop("images"), arguments.pop("latent_dim"), **arguments)
    assert message in str(raised.value) and "\n" not in str(raised.value), raised.value


def test_settings_from_a_config_are_checked_as_the_command_line_checks_them():
    assert option_value_problem(InvertConfig()) is None
    assert option_value_problem(InvertConfig(count=0)) == "count 0: expected a whole number >= 1"
    assert option_value_problem(InvertConfig(start="both")) == "start 'both': expected one of auto, encoder, prior"
    assert InvertConfig(steps=7).inversion_settings() == InversionSettings(steps=7)


def test_latents_files_keep_the_latents_their_measures_and_record(tmp_path):
    latents, loss = torch.randn(4, M), torch.rand(4)
    path = save_latents(tmp_path / "z.safetensors", latents, {"inversion": "optimize"}, {"loss": loss})
    read, per_image, record = load_latents(path)
    assert torch.equal(read, latents) and torch.equal(per_image["loss"], loss)
    assert record["inversion"] == "optimize" and (record["count"], record["dim"]) == (4, M)
    with pytest.raises(LatentError, match="per-image 'loss' must have 4 rows, got 3"):
        save_latents(tmp_path / "bad.safetensors", latents, {}, {"loss": loss[:3]})
    with pytest.raises(LatentError, match="finite floating-point tensor"):
        save_latents(tmp_path / "bad.safetensors", latents * math.nan, {})
    assert not (tmp_path / "bad.safetensors").exists()


# --- the chooser: one way for every command ------------------------------------------------------------------


def _networks(encoder: bool = True):
    generator = LinearTanh()
    return load_networks(
        LatentNetworks(
            M,
            (1, SIDE, SIDE),
            ("a", "b", "c"),
            generator,
            PixelClassifier().eval(),
            OffsetEncoder(generator) if encoder else None,
        )
    )


def test_auto_is_hybrid_with_an_encoder_and_optimize_without():
    with_encoder, without = _networks(), _networks(encoder=False)
    assert resolve_inversion("auto", with_encoder) == "hybrid"
    assert resolve_inversion("auto", without) == "optimize"
    for asked in ("encoder", "hybrid"):
        with pytest.raises(NetworkError) as raised:
            resolve_inversion(asked, without)
        assert str(raised.value).startswith(f"--inversion {asked} needs an encoder, and the networks of python")
    with pytest.raises(LatentspectraError, match="--inversion best: expected one of auto, encoder, optimize, hybrid"):
        resolve_inversion("best", with_encoder)


def test_latents_of_images_records_what_it_chose():
    networks = _networks()
    _, z, images = _known(4)
    encoded = latents_of_images(images, networks, "encoder")
    assert torch.allclose(encoded.latents, z + 0.4, atol=1e-3) and encoded.record() == {
        "inversion": "encoder",
        "requested": "encoder",
    }
    hybrid = latents_of_images(images, networks, "auto", QUICK)
    record = hybrid.record()
    assert record["inversion"] == "hybrid" and record["requested"] == "auto"
    assert record["features"] == "penultimate layer" and record["settings"] == asdict(QUICK)
    assert record["optimisation"]["start"] == "encoder" and record["optimisation"]["images"] == 4
    assert (hybrid.latents - z).norm(dim=1).mean() < (encoded.latents - z).norm(dim=1).mean()


# --- the command ---------------------------------------------------------------------------------------------

FAST = ("--restarts", "2", "--device", "cpu", "--precision", "float32", "--quiet")


def test_invert_on_the_shipped_networks(tmp_path, capsys):
    """From the encoder's means: the record holds both methods' measures and the latents file the inverted
    latents; five steps already reconstruct better than the encoder alone."""
    code, out, err = run_cli(
        capsys, "invert", "--count", "3", "--steps", "5", "--out", str(tmp_path / "out"), *FAST, "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record == json.loads((tmp_path / "out" / "invert.json").read_text())
    assert set(record["reconstruction"]) == {"encoder", "hybrid"} and record["inversion"]["requested"] == "auto"
    for measures in record["reconstruction"].values():
        assert set(measures) == {"pixel_mse", "feature_distance", "label_kept", "true_label_kept"}
        assert all(math.isfinite(value) for value in measures.values())
    assert record["reconstruction"]["hybrid"]["pixel_mse"] < record["reconstruction"]["encoder"]["pixel_mse"]
    assert record["feature_layer"] == "penultimate layer" and record["images"] == 3
    latents, per_image, saved = load_latents(tmp_path / "out" / "latents.safetensors")
    assert latents.shape == (3, 100) and saved["inversion"] == "hybrid" and per_image["reached"].dtype == torch.bool
    assert per_image["pixel_mse"].mean().item() == pytest.approx(
        record["reconstruction"]["hybrid"]["pixel_mse"], rel=1e-3
    )


@pytest.fixture
def without_encoder(tmp_path):
    """A manifest naming the shipped generator and classifier only."""
    shipped = shipped_models_dir("mnist")
    directory = tmp_path / "no-encoder"
    directory.mkdir()
    (directory / "networks.json").write_text(
        json.dumps(
            {
                "generator": str(shipped / "generator.safetensors"),
                "classifier": str(shipped / "classifier.safetensors"),
            }
        )
    )
    return directory


def test_invert_on_networks_without_an_encoder(tmp_path, capsys, without_encoder):
    out = tmp_path / "out"
    code, printed, err = run_cli(
        capsys, "invert", "--networks", str(without_encoder), "--count", "2", "--steps", "5", "--out", str(out), *FAST
    )
    assert code == 0, err
    record = json.loads((out / "invert.json").read_text())
    assert list(record["reconstruction"]) == ["optimize"] and record["inversion"]["optimisation"]["start"] == "prior"
    assert "optimize: pixel MSE" in printed and "images per second" in printed
    code, _, err = run_cli(
        capsys, "invert", "--networks", str(without_encoder), "--start", "encoder", "--out", str(tmp_path / "x"), *FAST
    )
    assert code == 2 and "invert --start encoder needs an encoder, and the networks of" in one_error_line(err)
    assert not (tmp_path / "x").exists()


@pytest.fixture
def users_networks(tmp_path, monkeypatch):
    """A factory module with the tiny generator and classifier (no encoder), one whose generator has no
    gradient, and a dataset of the generator's images."""
    generator, classifier = LinearTanh(), PixelClassifier().eval()
    with torch.no_grad():
        images = generator(torch.randn(30, M, generator=torch.Generator().manual_seed(0)))
        labels = classifier(images).argmax(1).numpy()
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
    np.savez(
        tmp_path / "made.npz",
        x_train=pixels[:20],
        y_train=labels[:20],
        x_test=pixels[20:],
        y_test=labels[20:],
        classes=np.array(["a", "b", "c"]),
    )
    (tmp_path / "tiny_networks.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_inversion import LinearTanh, NoGradGenerator, PixelClassifier

        def networks():
            return {{"generator": LinearTanh(), "classifier": PixelClassifier().eval(), "latent_dim": {M}}}

        def frozen():
            return {{"generator": NoGradGenerator().eval(), "classifier": PixelClassifier().eval(), "latent_dim": {M}}}
    """)
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_invert_on_a_factory_without_an_encoder(users_networks, capsys):
    dataset = f"npz:{users_networks / 'made.npz'}"
    out = users_networks / "out"
    code, printed, err = run_cli(
        capsys,
        "invert",
        "--networks",
        "tiny_networks:networks",
        "--dataset",
        dataset,
        "--out",
        str(out),
        *FAST,
        "--json",
    )
    assert code == 0, err
    record = json.loads(printed)
    assert record["reconstruction"]["optimize"]["pixel_mse"] < 1e-3  # the images are the generator's (to 8 bits)
    assert record["reconstruction"]["optimize"]["label_kept"] == 1.0 and record["images"] == 10


@pytest.mark.parametrize(
    "networks, dataset, message",
    [
        ("tiny_networks:frozen", "made", "the generator on latents of shape (2, 3) gives images without a gradient"),
        ("tiny_networks:networks", "mnist", "dataset mnist: images are (1, 28, 28) (C, H, W), but the networks in"),
    ],
)
def test_networks_that_cannot_invert_are_one_line_with_exit_2(users_networks, capsys, networks, dataset, message):
    dataset = f"npz:{users_networks / 'made.npz'}" if dataset == "made" else dataset
    code, _, err = run_cli(
        capsys, "invert", "--networks", networks, "--dataset", dataset, "--out", str(users_networks / "out"), *FAST
    )
    assert code == 2 and message in one_error_line(err)


@pytest.mark.parametrize(
    "args, message",
    [(("--count", "0"), "--count"), (("--start", "middle"), "--start"), (("--learning-rate", "0"), "--learning-rate")],
)
def test_bad_options_are_one_line_with_exit_2(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "invert", *args, "--out", str(tmp_path / "out"))
    assert code == 2 and message in one_error_line(err)
