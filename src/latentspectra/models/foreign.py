"""Networks a user brings: TorchScript archives and `torch.export` programs read from files, and the adapters
that let the package call them as it calls its own networks.

Inside the package images are in [-1, 1] (the shipped generator's tanh range). A user's networks may take and
make images in another range, [0, 1] most often; `ForeignNetwork` converts at the boundary, so a foreign
generator's images reach the classifier, the figures and the studies in [-1, 1], and images given to a foreign
classifier or encoder arrive in the range it was trained on. A foreign encoder may return the mean code alone
(a deterministic encoder) or (mean, log-variance).

Nothing is unpickled without restriction: a file written by ``torch.save(model)`` (a pickle) is refused with a
line that says how to export the network instead, and a `torch.export` archive reaches ``torch.export.load``
only after `archive.check_export_archive` has refused everything in it that torch would unpickle, evaluate or
load as native code (its sample inputs are read by ``torch.load(weights_only=True)`` alone). A TorchScript
archive is not checked: ``torch.jit.load`` reads it with TorchScript's own restricted unpickler and then runs
the archive's TorchScript code, which can call any operator torch has, including ones that read and write
files, so a TorchScript archive is as trustworthy as its source.

An exported program keeps the shape of its input. One exported with a fixed batch (no ``dynamic_shapes``) runs
in chunks of that batch (`ExportedNetwork`); one given inputs whose other sizes differ from those it was
exported with is refused with a line that says how to export it instead.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LatentspectraError

ZIP_START = b"PK\x03\x04"
DYNAMIC_HINT = (
    "export it for the inputs it takes, with a dynamic batch: torch.export.export(model, (example,), "
    'dynamic_shapes=({0: torch.export.Dim("batch")},))'
)
PICKLE_HINT = (
    "export it instead: torch.export.save(torch.export.export(model.eval(), (example,)), 'NAME.pt2') "
    "or torch.jit.save(torch.jit.script(model.eval()), 'NAME.pt')"
)


class NetworkError(LatentspectraError, ValueError):
    """A network that cannot be read or does not do what its role needs; the message names the file or spec."""


def describe_failure(failure: BaseException) -> str:
    """``Type: first line of the message``: one line about an exception raised by a user's code or by torch."""
    lines = str(failure).strip().splitlines()
    return f"{type(failure).__name__}: {lines[0]}" if lines else type(failure).__name__


def _archive_names(path: Path) -> list[str] | None:
    """The member names of the zip ``path``: [] for a file that is not a zip, None for a damaged one (a zip's
    start whose directory is missing, or a directory that belongs to a zip stored inside the file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            return None if handle.read(len(ZIP_START)) == ZIP_START else []
    if infos and min(info.header_offset for info in infos) != 0:
        return None
    return [info.filename for info in infos]


def network_file_kind(path: Path) -> str:
    """What ``path`` holds, by its content: "export" (a `torch.export` program, .pt2), "torchscript", "pickle"
    (``torch.save`` of anything: never loaded), "damaged" (a truncated or damaged archive) or "unknown"."""
    names = _archive_names(path)
    if names is None:
        return "damaged"
    if any(name.rpartition("/")[2] in ("archive_format", "serialized_exported_program.json") for name in names):
        return "export"  # the .pt2 format, or torch's older one (which `archive.check_export_archive` refuses)
    if any("/code/" in name for name in names) and any(name.endswith("constants.pkl") for name in names):
        return "torchscript"
    if any(name.endswith("data.pkl") for name in names):
        return "pickle"
    with open(path, "rb") as handle:
        return "pickle" if handle.read(1) == b"\x80" else "unknown"


def load_network_file(path: str | Path, role: str) -> nn.Module:
    """The network in ``path``, a TorchScript archive or a `torch.export` program, on the CPU in eval mode.

    Raises:
        NetworkError: a missing file or one that is not a regular file, a pickle (with how to export instead), a
            damaged archive, an exported program with something torch would run on loading
            (`archive.check_export_archive`), or a file of neither format.
    """
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{path}: {role} file not found")
    if not path.is_file():
        raise NetworkError(f"{path}: not a regular file; expected a {role} network file")
    try:
        kind = network_file_kind(path)
    except OSError as failure:
        raise NetworkError(f"{path}: cannot read ({failure.strerror or failure})") from None
    if kind == "pickle":
        raise NetworkError(f"{path}: a pickled {role} (torch.save), which latentspectra never loads; {PICKLE_HINT}")
    if kind == "damaged":
        raise NetworkError(
            f"{path}: a damaged or truncated archive; expected a complete torch.export program (.pt2) "
            "or TorchScript archive (.pt)"
        )
    if kind == "unknown":
        raise NetworkError(
            f"{path}: not a {role} network file; expected a torch.export program (.pt2), a TorchScript "
            "archive (.pt) or latentspectra's NAME.safetensors + NAME.json"
        )
    if kind == "export":
        return _load_checked_export(path, role)
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; the archives users have still load
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as failure:
        raise NetworkError(f"{path}: cannot load the {role} ({describe_failure(failure)})") from None


def _load_checked_export(path: Path, role: str) -> ExportedNetwork:
    """The `torch.export` program in ``path``, read once into memory, checked (`archive.check_export_archive`)
    and loaded from those very bytes: a file swapped after the check is never what is loaded."""
    from .archive import check_export_archive  # archive.py imports NetworkError from here

    try:
        data = path.read_bytes()
    except OSError as failure:
        raise NetworkError(f"{path}: cannot read ({failure.strerror or failure})") from None
    check_export_archive(path, data)
    try:  # an exported program keeps the mode it was exported in
        module = torch.export.load(io.BytesIO(data)).module()
    except Exception as failure:
        raise NetworkError(f"{path}: cannot load the {role} ({describe_failure(failure)})") from None
    return ExportedNetwork(module, f"{role} {path}", exported_input_shape(module))


def exported_input_shape(program: torch.fx.GraphModule) -> tuple[int | None, ...] | None:
    """The shape of the single input of the module of a `torch.export` program (``.module()``, whose graph's
    placeholders are the inputs), each size an int where the program was exported for that size alone and None
    where it is dynamic; None when it has several inputs or keeps no shape."""
    inputs = [node for node in program.graph.nodes if node.op == "placeholder"]
    shape = getattr(inputs[0].meta.get("val"), "shape", None) if len(inputs) == 1 else None
    return None if shape is None else tuple(size if isinstance(size, int) else None for size in shape)


def exported_input_width(module: nn.Module) -> int | None:
    """The width M of the single (N, M) input of an `ExportedNetwork`; None when it cannot be read: a TorchScript
    archive keeps no input shapes, and an exported program's may be of another rank or of a dynamic width."""
    shape = module.input_shape if isinstance(module, ExportedNetwork) else None
    return shape[1] if shape is not None and len(shape) == 2 else None


def _shape_text(shape: tuple[int | None, ...]) -> str:
    """(2, 24) for fixed sizes, (N, 24) where a size is dynamic."""
    return f"({', '.join('N' if size is None else str(size) for size in shape)}{',' if len(shape) == 1 else ''})"


def _outputs_joined(parts: list[Any], count: int) -> Any:
    """The outputs of the chunks as the outputs of all rows: tensors concatenated along the batch and trimmed
    to ``count`` rows, element by element for a tuple or list (an encoder's (mean, log-variance))."""
    if isinstance(parts[0], (tuple, list)):
        joined = [_outputs_joined([part[index] for part in parts], count) for index in range(len(parts[0]))]
        return joined if isinstance(parts[0], list) else tuple(joined)
    return torch.cat(parts)[:count]


def run_in_fixed_batches(network: Any, inputs: torch.Tensor, batch: int) -> Any:
    """``network(inputs)`` for a network that takes exactly ``batch`` rows at a time: the rows in chunks of
    ``batch``, the last one padded by repeating its last row, the outputs concatenated and trimmed to the rows
    given (differentiable in ``inputs``)."""
    count = inputs.shape[0]
    if count == 0:
        return _outputs_joined([network(inputs.new_zeros((batch, *inputs.shape[1:])))], 0)
    parts = []
    for start in range(0, count, batch):
        chunk = inputs[start : start + batch]
        missing = batch - chunk.shape[0]
        if missing:
            chunk = torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])
        parts.append(network(chunk))
    return _outputs_joined(parts, count)


class ForeignNetwork(nn.Module):
    """A user's network in the package's conventions: images in [-1, 1] in and out, whatever ``pixel_range`` the
    network itself uses. ``converts`` says which side holds images: "output" (a generator), "input" (a
    classifier) or "both"."""

    def __init__(self, network: Any, pixel_range: tuple[float, float] = (-1.0, 1.0), converts: str = "input"):
        super().__init__()
        self.network = network
        self.low, self.high = (float(value) for value in pixel_range)
        self.converts = converts

    def train(self, mode: bool = True) -> ForeignNetwork:
        """Only this wrapper's flag: the user's network keeps the mode it was exported, scripted or made in
        (an exported program refuses `eval`)."""
        self.training = mode
        return self

    @property
    def identity_range(self) -> bool:
        return (self.low, self.high) == (-1.0, 1.0)

    def to_network_range(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> the network's pixel range."""
        return images if self.identity_range else self.low + (images + 1) * ((self.high - self.low) / 2)

    def from_network_range(self, images: torch.Tensor) -> torch.Tensor:
        """The network's pixel range -> [-1, 1]."""
        return images if self.identity_range else (images - self.low) * (2 / (self.high - self.low)) - 1

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.converts in ("input", "both"):
            inputs = self.to_network_range(inputs)
        outputs = self.network(inputs)
        return self.from_network_range(outputs) if self.converts in ("output", "both") else outputs

    @property
    def has_own_features(self) -> bool:
        """Whether the user's network has ``features`` (a classifier's penultimate layer) and a ``head``."""
        return callable(getattr(self.network, "features", None)) and callable(getattr(self.network, "head", None))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The network's own ``features`` where it has them with a ``head`` (a classifier's penultimate layer),
        else its outputs (a classifier's logits): what the Fréchet distances compare."""
        return self.network.features(self.to_network_range(images)) if self.has_own_features else self(images)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """`features` -> logits: the network's own head, or the identity where the features are the logits."""
        return self.network.head(features) if self.has_own_features else features


def has_penultimate_features(classifier: nn.Module) -> bool:
    """Whether ``classifier`` (the package's, or a user's in its `ForeignNetwork` adapter; not an inference copy)
    has a penultimate layer of its own: ``features`` (a user's: with a ``head``). Without one, what the
    package compares as a classifier's features is its logits."""
    if isinstance(classifier, ForeignNetwork):
        return classifier.has_own_features
    return callable(getattr(classifier, "features", None))


class ExportedNetwork(ForeignNetwork):
    """The module of a `torch.export` program, called as a network of any batch: one exported with a fixed
    batch runs in chunks of that batch (`run_in_fixed_batches`), and inputs whose other sizes differ from the
    fixed ones it was exported with are refused with one line instead of torch's guard failure. A
    `ForeignNetwork` that converts nothing, so that what reaches a user's own layers through ``network``
    (`methods.directions.layer_root`) and leaves them as they are (`inference.frozen`) treats it as the user's.

    Attributes:
        network: the program's module.
        source: what to call it in messages ("generator FILE").
        input_shape: its input's shape, an int per fixed size and None per dynamic one; None when unknown.
    """

    def __init__(self, program: nn.Module, source: str, input_shape: tuple[int | None, ...] | None):
        super().__init__(program, converts="neither")
        self.source = source
        self.input_shape = input_shape

    @property
    def fixed_batch(self) -> int | None:
        """The one batch the program takes, where it was exported without a dynamic batch."""
        return self.input_shape[0] if self.input_shape else None

    def check_inputs(self, inputs: torch.Tensor) -> None:
        """Raise `NetworkError` for inputs whose rank or fixed non-batch sizes differ from the program's."""
        shape = self.input_shape
        if shape is None:
            return
        given = tuple(inputs.shape)
        if len(given) != len(shape) or any(fixed not in (None, size) for fixed, size in zip(shape[1:], given[1:])):
            raise NetworkError(
                f"{self.source}: exported for inputs of shape {_shape_text(shape)}, given "
                f"{_shape_text(given)}; {DYNAMIC_HINT}"
            )

    def forward(self, inputs: torch.Tensor) -> Any:
        self.check_inputs(inputs)
        batch = self.fixed_batch
        if batch is None or inputs.shape[0] == batch:
            return self.network(inputs)
        return run_in_fixed_batches(self.network, inputs, batch)


class ForeignEncoder(ForeignNetwork):
    """A user's encoder as the package's Gaussian encoder: images in [-1, 1] -> (mu, logvar). An encoder that
    returns the mean alone is deterministic: its log-variance is -inf and `sample` returns the mean."""

    def __init__(self, network: Any, latent_dim: int, pixel_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__(network, pixel_range, "input")
        self.latent_dim = latent_dim

    # an encoder's forward gives (mu, logvar) where ForeignNetwork's gives one tensor
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        outputs = self.network(self.to_network_range(images))
        if isinstance(outputs, (tuple, list)):
            return outputs[0], outputs[1]
        return outputs, torch.full_like(outputs, float("-inf"))

    def encode_mean(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)[0]

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mu + sigma * eps, eps from ``generator``; the mean itself for a deterministic encoder."""
        mu, logvar = self(images)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return torch.where(torch.isinf(logvar), mu, mu + torch.exp(0.5 * logvar) * noise)


class LogProbabilities(ForeignNetwork):
    """A classifier that returns probabilities (rows >= 0 summing to 1, its last layer a softmax) as one that
    returns logits: log p, whose softmax is p again. Taken only where the networks' description says so
    (``"classifier_outputs": "probabilities"``); every computation of the package reads logits. Its features,
    where it has no penultimate layer of its own, are its probabilities: the classifier-feature Fréchet distance
    is then measured on them, not on logits."""

    def __init__(self, classifier: Any):
        super().__init__(classifier, converts="neither")

    @staticmethod
    def _log(probabilities: torch.Tensor) -> torch.Tensor:
        return torch.log(probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._log(self.network(images))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """`features` -> logits: log of the classifier's own head, or the identity where features are logits."""
        return self._log(self.network.head(features)) if self.has_own_features else features
