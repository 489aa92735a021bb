"""One description of the networks of a latent space, whoever made them: `LatentNetworks`.

A latent space is read through a generator G (z -> image) and, where a command needs them, a classifier C
(image -> logits over l labels) and an encoder E (image -> mean code, optionally with a log-variance); the
fragmentation study's autoencoders are read by name from a models directory of the package's format. The
description adds what the networks cannot say themselves: the
latent size M, the image shape (C, H, W), the pixel range the networks take and make, the label names and
the prior z is drawn from (the standard normal N(0, I_M)).

It is built from (`resolve_networks`):

1. a models directory in the package's format: ``NAME.safetensors`` + ``NAME.json`` per network, written by
   `latentspectra train` (the shipped networks are one);
2. a directory with a manifest ``networks.json`` naming the user's files (TorchScript archives or
   `torch.export` programs, `foreign.load_network_file`) and the facts above;
3. a factory ``package.module:function`` that returns a `LatentNetworks` or a dict of its fields: this runs
   the user's code, so it is taken only when named explicitly;

with per-network files (``--generator FILE`` ...) replacing pieces. Every piece is checked on a batch of two
before any work: G's images have the declared shape, C's logits one column per label, E's codes width M.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compute import check_fits_memory
from ..io import read_record
from .files import load_model
from .foreign import (
    ForeignEncoder,
    ForeignNetwork,
    LogProbabilities,
    NetworkError,
    describe_failure,
    exported_input_width,
    load_network_file,
)
from .layers import Configured, is_image_shape, is_size

PIECES = ("generator", "classifier", "encoder")
MANIFEST = "networks.json"
PRIORS = ("normal",)
CLASSIFIER_OUTPUTS = ("logits", "probabilities")
PROBABILITY_TOLERANCE = 1e-4  # rows >= 0 whose sums are this close to 1 are taken for probabilities
PACKAGE_RANGE = (-1.0, 1.0)  # the pixel range of the package's own networks (tanh)


@dataclass(frozen=True)
class LatentNetworks:
    """The networks of a latent space and the facts about it that a command needs.

    Attributes:
        latent_dim: M.
        image_shape: (C, H, W) of the generator's images and the classifier's and encoder's inputs.
        labels: the names of the classifier's l outputs, in order.
        generator, classifier, encoder: the networks (None where absent); the package's own, or
            `foreign.ForeignNetwork` adapters around a user's modules.
        pixel_range: (low, high) of the images the networks take and make.
        prior: what z is drawn from: "normal" (N(0, I_M)).
        classifier_outputs: what the classifier returns: "logits" (any scores whose softmax gives the label
            probabilities, log-probabilities included) or "probabilities" (it ends in a softmax; the package
            then reads log p as its logits, `foreign.LogProbabilities`).
        source: where they came from, for records and messages.
        directory: the package-format models directory they were read from, if any (the fragmentation study
            reads its autoencoders by name from it).
    """

    latent_dim: int
    image_shape: tuple[int, int, int]
    labels: tuple[str, ...] = ()
    generator: nn.Module | None = None
    classifier: nn.Module | None = None
    encoder: nn.Module | None = None
    pixel_range: tuple[float, float] = PACKAGE_RANGE
    prior: str = "normal"
    classifier_outputs: str = "logits"
    source: str = "python"
    directory: Path | None = None

    def __post_init__(self) -> None:
        where = f"networks of {self.source}"
        _latent_size(self.latent_dim, where)
        if not is_image_shape(self.image_shape):
            raise NetworkError(
                f"{where}: image_shape must be three whole numbers >= 1 (C, H, W), got {self.image_shape!r}"
            )
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        low, high = _pixel_range(self.pixel_range, where)
        object.__setattr__(self, "pixel_range", (low, high))
        if self.prior not in PRIORS:
            raise NetworkError(f"{where}: prior must be one of {PRIORS}, got {self.prior!r}")
        if self.classifier_outputs not in CLASSIFIER_OUTPUTS:
            raise NetworkError(
                f"{where}: classifier_outputs must be one of {CLASSIFIER_OUTPUTS}, got {self.classifier_outputs!r}"
            )
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def require(self, command: str, *pieces: str) -> None:
        """Raise `NetworkError` naming ``command`` and the first of ``pieces`` these networks lack."""
        for piece in pieces:
            if getattr(self, piece) is None:
                article = "an" if piece[0] in "aeiou" else "a"
                raise NetworkError(
                    f"{command} needs {article} {piece}, and the networks of {self.source} have none; "
                    f"give one with --{piece} FILE or in {MANIFEST}"
                )


def _latent_size(value: Any, where: str) -> int:
    """M as given by a manifest or a factory: a whole number >= 1.

    Raises:
        NetworkError: naming ``where`` and the value.
    """
    if not is_size(value):
        raise NetworkError(f"{where}: latent_dim must be a whole number >= 1, got {value!r}")
    return value


def _label_names(value: Any, where: str) -> tuple[str, ...]:
    """Label names as given by a manifest or a factory: a list of strings (or none).

    Raises:
        NetworkError: naming ``where`` and the value.
    """
    if not (isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value)):
        raise NetworkError(f"{where}: labels must be a list of names, got {value!r}")
    return tuple(value)


def _pixel_range(value: Any, where: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise NetworkError(f"{where}: pixel_range must be two numbers [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise NetworkError(f"{where}: pixel_range must be two finite numbers with low < high, got {value!r}")
    return low, high


# ------------------------------------------------------------------ the checks every description passes


def _probe_batch(shape: tuple[int, ...], what: str, source: str) -> torch.Tensor:
    """Zeros of ``shape`` (a batch of two of ``what``), after checking that they fit in memory: a latent size or
    image shape too large for this machine is one line naming it, not an allocator's traceback.

    Raises:
        ComputeError: "networks of SOURCE: two WHAT of shape ...: needs about X GiB, Y GiB are available".
    """
    check_fits_memory(math.prod(shape) * 4, f"networks of {source}: two {what} of shape {shape[1:]}")
    return torch.zeros(shape)


def _probe(network: nn.Module, inputs: torch.Tensor, piece: str, source: str) -> Any:
    try:
        with torch.inference_mode():
            return network(inputs)
    except Exception as failure:
        raise NetworkError(
            f"{piece} of {source}: fails on a batch of 2 inputs of shape {tuple(inputs.shape[1:])} "
            f"({describe_failure(failure)})"
        ) from None


def _expect(condition: bool, piece: str, source: str, expected: str, found: Any) -> None:
    if not condition:
        raise NetworkError(f"{piece} of {source}: expected {expected}, found {found}")


def _shape(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {[_shape(item) for item in value]}"
    return type(value).__name__


def check_networks(networks: LatentNetworks) -> LatentNetworks:
    """``networks`` with its labels filled in (from the classifier's width where none were given), after running
    every piece on a batch of two on the CPU: G maps (2, M) latents to (2, C, H, W) images, C maps those and two
    blank images to (4, l) logits (probabilities only where ``classifier_outputs`` says so: the classifier is
    then read through `LogProbabilities`), E maps the blank images to (2, M) codes (or a pair of such).

    Raises:
        NetworkError: naming the piece, where it came from, what was expected and what was found.
    """
    source, shape, width = networks.source, networks.image_shape, networks.latent_dim
    images = _probe_batch((2, *shape), "images", source)
    if networks.generator is not None:
        made = _probe(networks.generator, _probe_batch((2, width), "latents", source), "generator", source)
        _expect(
            isinstance(made, torch.Tensor) and tuple(made.shape) == (2, *shape),
            "generator",
            source,
            f"images of shape (N, {', '.join(map(str, shape))}) for latents of shape (N, {width})",
            _shape(made),
        )
    labels, classifier = networks.labels, networks.classifier
    if classifier is not None:
        probe = images if networks.generator is None else torch.cat([images, made.float()])
        outputs = _probe(classifier, probe, "classifier", source)
        _expect(
            isinstance(outputs, torch.Tensor)
            and outputs.ndim == 2
            and outputs.shape[0] == len(probe)
            and outputs.shape[1] >= 2,
            "classifier",
            source,
            "logits of shape (N, l) with l >= 2 labels",
            _shape(outputs),
        )
        if labels and outputs.shape[1] != len(labels):
            raise NetworkError(
                f"classifier of {source}: expected {len(labels)} outputs, one per label {list(labels)}, "
                f"found {outputs.shape[1]}"
            )
        labels = labels or tuple(str(index) for index in range(outputs.shape[1]))
        classifier = _as_logits(classifier, outputs, networks.classifier_outputs, source)
    if networks.encoder is not None:
        codes = _probe(networks.encoder, images, "encoder", source)
        means = codes[0] if isinstance(codes, (tuple, list)) and codes else codes
        _expect(
            isinstance(means, torch.Tensor) and tuple(means.shape) == (2, width),
            "encoder",
            source,
            f"codes of shape (N, {width}) (or a pair of them: mean, log-variance)",
            _shape(codes),
        )
    return replace(networks, labels=labels, classifier=classifier)


def _are_probabilities(outputs: torch.Tensor) -> bool:
    """Every row >= 0 and summing to 1 (to `PROBABILITY_TOLERANCE`): the outputs of a final softmax."""
    rows = outputs.double()
    return bool((rows >= 0).all() and ((rows.sum(1) - 1).abs() <= PROBABILITY_TOLERANCE).all())


def _as_logits(classifier: nn.Module, outputs: torch.Tensor, declared: str, source: str) -> nn.Module:
    """The classifier as one that returns logits, given its ``outputs`` on the probe batch and what the
    description ``declared`` they are: probabilities are refused unless declared (every number would be wrong
    silently: a softmax of probabilities is nearly uniform), and read through `LogProbabilities` when declared.

    Raises:
        NetworkError: outputs that are probabilities where logits were declared, or the other way round.
    """
    if isinstance(classifier, LogProbabilities):
        return classifier
    probabilities = _are_probabilities(outputs)
    if declared == "probabilities":
        if not probabilities:
            raise NetworkError(
                f'classifier of {source}: declared "classifier_outputs": "probabilities", but its '
                "outputs on the probe batch are not (rows >= 0 summing to 1); drop that entry"
            )
        return LogProbabilities(classifier)
    if probabilities:
        raise NetworkError(
            f"classifier of {source}: its outputs on the probe batch are probabilities (rows >= 0 "
            "summing to 1), expected logits; return the scores before the softmax, or declare "
            f'"classifier_outputs": "probabilities" in {MANIFEST} (or the factory\'s dict)'
        )
    return classifier


# ------------------------------------------------------------------ the package's own models directory


def _from_models_directory(directory: Path) -> LatentNetworks:
    """The generator, classifier and encoder of a package-format directory (each where its JSON is there)."""
    pieces = {
        name: load_model(directory, name, name)[0]
        for name in ("generator", "classifier", "encoder")
        if (directory / f"{name}.json").exists()
    }
    if not pieces:
        raise NetworkError(
            f"{directory}: no networks there; expected generator, classifier and encoder as "
            f"NAME.safetensors + NAME.json, or a {MANIFEST}"
        )
    first = next(iter(pieces.values()))
    latent = next((int(model.config["latent_dim"]) for model in pieces.values() if "latent_dim" in model.config), None)
    if latent is None:
        raise NetworkError(f"{directory}: a generator or an encoder is needed to know the latent size")
    classifier = pieces.get("classifier")
    labels = tuple(str(index) for index in range(classifier.config["num_classes"])) if classifier is not None else ()
    return LatentNetworks(
        latent,
        tuple(first.config["image_shape"]),
        labels,
        pieces.get("generator"),
        classifier,
        pieces.get("encoder"),
        source=str(directory),
        directory=directory,
    )


# ------------------------------------------------------------------ a user's files and manifest

MANIFEST_KEYS = {*PIECES, "latent_dim", "image_shape", "labels", "pixel_range", "prior", "classifier_outputs"}


def _foreign(module: nn.Module, piece: str, latent_dim: int, pixel_range: tuple[float, float]) -> nn.Module:
    """``module`` in the package's conventions for its ``piece``."""
    if piece == "encoder":
        return ForeignEncoder(module, latent_dim, pixel_range)
    return ForeignNetwork(module, pixel_range, "output" if piece == "generator" else "input")


def _latent_width(modules: dict[str, nn.Module], source: str) -> int:
    """M from the generator's exported input shape or a ``latent_dim`` attribute of the generator or encoder."""
    for piece in ("generator", "encoder"):
        module = modules.get(piece)
        width = getattr(module, "latent_dim", None)
        if isinstance(width, int) and not isinstance(width, bool):
            return width
    width = exported_input_width(modules["generator"]) if "generator" in modules else None
    if width is None:
        raise NetworkError(
            f"{source}: cannot tell the latent size M from the generator (a TorchScript archive keeps "
            "no input shapes; an exported program's input must be (N, M) with M fixed); give "
            f'"latent_dim" in {MANIFEST}'
        )
    return width


def _image_shape(generator: nn.Module | None, latent_dim: int, source: str) -> tuple[int, int, int]:
    if generator is None:
        raise NetworkError(
            f'{source}: cannot tell the image shape without a generator; give "image_shape" in {MANIFEST}'
        )
    made = _probe(generator, _probe_batch((2, latent_dim), "latents", source), "generator", source)
    if not (isinstance(made, torch.Tensor) and made.ndim == 4):
        raise NetworkError(f"generator of {source}: expected images of shape (N, C, H, W), found {_shape(made)}")
    channels, height, width = (int(side) for side in made.shape[1:])
    return channels, height, width


def _from_files(files: dict[str, Path], facts: dict[str, Any], source: str) -> LatentNetworks:
    """A description from network files (package .safetensors pairs, TorchScript, torch.export) and the facts
    given; M and the image shape are read from the networks where not given."""
    modules: dict[str, nn.Module] = {}
    native: dict[str, Configured] = {}
    for piece, path in files.items():
        if path.suffix in (".safetensors", ".json"):
            native[piece] = load_model(path.parent, path.stem, piece)[0]
        else:
            modules[piece] = load_network_file(path, piece)
    latent_dim = _latent_size(
        facts["latent_dim"]
        if "latent_dim" in facts
        else next((int(model.config["latent_dim"]) for model in native.values() if "latent_dim" in model.config), None)
        or _latent_width(modules, source),
        f"networks of {source}",
    )
    pixel_range = _pixel_range(facts.get("pixel_range", PACKAGE_RANGE), f"networks of {source}")
    pieces = {piece: _foreign(module, piece, latent_dim, pixel_range) for piece, module in modules.items()}
    pieces.update(native)
    image_shape = (
        facts["image_shape"]
        if "image_shape" in facts
        else next((tuple(model.config["image_shape"]) for model in native.values()), None)
        or _image_shape(pieces.get("generator"), latent_dim, source)
    )
    return _described(latent_dim, image_shape, pieces, pixel_range, facts, source, f"networks of {source}")


def _described(
    latent_dim: int,
    image_shape: tuple[int, int, int],
    pieces: dict[str, Any],
    pixel_range: tuple[float, float],
    facts: dict[str, Any],
    source: str,
    where: str,
) -> LatentNetworks:
    """The description of ``pieces`` (piece -> network), with the labels, prior and classifier outputs ``facts``
    give (the label names checked, errors naming ``where``)."""
    return LatentNetworks(
        latent_dim,
        image_shape,
        _label_names(facts.get("labels", ()), where),
        pieces.get("generator"),
        pieces.get("classifier"),
        pieces.get("encoder"),
        pixel_range,
        facts.get("prior", "normal"),
        facts.get("classifier_outputs", "logits"),
        source,
    )


def _from_manifest(directory: Path) -> LatentNetworks:
    manifest = directory / MANIFEST
    record = read_record(manifest, NetworkError, "networks manifest")
    unknown = set(record) - MANIFEST_KEYS
    if unknown:
        raise NetworkError(f"{manifest}: unknown entries {sorted(unknown)}; expected some of {sorted(MANIFEST_KEYS)}")
    files = {}
    for piece in PIECES:
        if piece in record:
            if not isinstance(record[piece], str):
                raise NetworkError(f"{manifest}: {piece!r} must name a file, got {record[piece]!r}")
            files[piece] = directory / record[piece]
    facts = {key: value for key, value in record.items() if key not in PIECES}
    return _from_files(files, facts, str(manifest))


# ------------------------------------------------------------------ a factory


def _import_factory(spec: str) -> Any:
    """The callable named by ``spec`` ("package.module:function"), imported with the current directory first on
    the import path."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise NetworkError(f"--networks {spec}: expected a directory or package.module:function")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as failure:
        raise NetworkError(f"--networks {spec}: cannot import {module_name} ({describe_failure(failure)})") from None
    finally:
        sys.path.remove(str(Path.cwd()))
    function = getattr(module, function_name, None)
    if not callable(function):
        raise NetworkError(f"--networks {spec}: {module_name} has no function {function_name!r}")
    return function


def networks_from_factory(spec: str) -> LatentNetworks:
    """Call the factory ``spec`` names; it returns a `LatentNetworks`, or a dict of its fields whose networks are
    plain modules in the user's own conventions (``pixel_range`` saying theirs).

    Raises:
        NetworkError: the factory cannot be imported, raises, or returns something else.
    """
    function = _import_factory(spec)
    try:
        made = function()
    except Exception as failure:
        raise NetworkError(f"--networks {spec}: the factory raised {describe_failure(failure)}") from None
    if isinstance(made, LatentNetworks):
        return replace(made, source=spec) if made.source == "python" else made
    if not isinstance(made, dict):
        raise NetworkError(
            f"--networks {spec}: the factory returned a {type(made).__name__}, expected a "
            "LatentNetworks or a dict of its fields"
        )
    allowed = {item.name for item in fields(LatentNetworks)} - {"source", "directory"}
    unknown = set(made) - allowed
    if unknown or "latent_dim" not in made:
        raise NetworkError(
            f"--networks {spec}: the factory's dict must hold latent_dim and some of {sorted(allowed)}; "
            f"found {sorted(made)}"
        )
    pixel_range = _pixel_range(made.get("pixel_range", PACKAGE_RANGE), f"networks of {spec}")
    latent_dim = _latent_size(made["latent_dim"], f"--networks {spec}")
    pieces = {
        piece: _foreign(made[piece], piece, latent_dim, pixel_range) for piece in PIECES if made.get(piece) is not None
    }
    for piece, network in pieces.items():
        if not callable(network.network):
            raise NetworkError(
                f"--networks {spec}: the factory's {piece} is a {type(network.network).__name__}, "
                "expected a callable network"
            )
    image_shape = (
        made["image_shape"] if "image_shape" in made else _image_shape(pieces.get("generator"), latent_dim, spec)
    )
    return _described(latent_dim, image_shape, pieces, pixel_range, made, spec, f"--networks {spec}")


# ------------------------------------------------------------------ resolving what a command was given


def resolve_networks(
    networks: str | Path | LatentNetworks, *, overrides: Mapping[str, str | Path | None] | None = None
) -> LatentNetworks:
    """The checked description of ``networks``: a `LatentNetworks`, a directory (package format, or with a
    manifest) or a ``package.module:function`` factory; each of ``overrides`` (piece -> file) replacing that
    piece.

    Raises:
        NetworkError, CheckpointError: one line naming the directory, file or spec and what is wrong.
    """
    if isinstance(networks, LatentNetworks):
        described = networks
    else:
        spec = str(networks)
        path = Path(spec)
        if path.is_dir():
            described = _from_manifest(path) if (path / MANIFEST).is_file() else _from_models_directory(path)
        elif ":" in spec and not path.exists() and not spec.startswith(("/", ".")):
            described = networks_from_factory(spec)
        else:
            raise NetworkError(
                f"--networks {spec}: not a directory, expected a models directory or package.module:function"
            )
    replacements = {piece: Path(file) for piece, file in (overrides or {}).items() if file is not None}
    if replacements:
        replaced = _from_files(
            replacements,
            {
                "latent_dim": described.latent_dim,
                "image_shape": described.image_shape,
                "pixel_range": described.pixel_range,
            },
            described.source,
        )
        described = replace(
            described,
            **{piece: getattr(replaced, piece) for piece in replacements},
            source=f"{described.source} with {', '.join(f'{p} {f}' for p, f in replacements.items())}",
        )
    return check_networks(described)
