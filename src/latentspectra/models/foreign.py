"""Networks a user brings: TorchScript archives and `torch.export` programs read from files, and the adapters
that let the package call them as it calls its own networks.

Inside the package images are in [-1, 1] (the shipped generator's tanh range). A user's networks may take and
make images in another range, [0, 1] most often; `ForeignNetwork` converts at the boundary, so a foreign
generator's images reach the classifier, the figures and the studies in [-1, 1], and images given to a foreign
classifier or encoder arrive in the range it was trained on. A foreign encoder may return the mean code alone
(a deterministic encoder) or (mean, log-variance).

Nothing is unpickled: a file written by ``torch.save(model)`` (a pickle) is refused with a line that says how
to export the network instead.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LatentspectraError

PICKLE_HINT = ("export it instead: torch.export.save(torch.export.export(model.eval(), (example,)), 'NAME.pt2') "
               "or torch.jit.save(torch.jit.script(model.eval()), 'NAME.pt')")


class NetworkError(LatentspectraError, ValueError):
    """A network that cannot be read or does not do what its role needs; the message names the file or spec."""


def describe_failure(failure: BaseException) -> str:
    """``Type: first line of the message``: one line about an exception raised by a user's code or by torch."""
    lines = str(failure).strip().splitlines()
    return f"{type(failure).__name__}: {lines[0]}" if lines else type(failure).__name__


def _archive_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except zipfile.BadZipFile:
        return []


def network_file_kind(path: Path) -> str:
    """What ``path`` holds, by its content: "export" (a `torch.export` program, .pt2), "torchscript", "pickle"
    (``torch.save`` of anything: never loaded) or "unknown"."""
    names = _archive_names(path)
    if any(name.endswith("/archive_format") or name == "archive_format" for name in names):
        return "export"
    if any("/code/" in name for name in names) and any(name.endswith("constants.pkl") for name in names):
        return "torchscript"
    if any(name.endswith("data.pkl") for name in names):
        return "pickle"
    with open(path, "rb") as handle:
        return "pickle" if handle.read(1) == b"\x80" else "unknown"


def load_network_file(path: str | Path, role: str) -> nn.Module:
    """The network in ``path``, a TorchScript archive or a `torch.export` program, on the CPU in eval mode.

    Raises:
        NetworkError: a missing file, a pickle (with how to export instead), or a file of neither format.
    """
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"{path}: {role} file not found")
    try:
        kind = network_file_kind(path)
    except OSError as failure:
        raise NetworkError(f"{path}: cannot read ({failure.strerror or failure})") from None
    if kind == "pickle":
        raise NetworkError(f"{path}: a pickled {role} (torch.save), which latentspectra never loads; {PICKLE_HINT}")
    if kind == "unknown":
        raise NetworkError(f"{path}: not a {role} network file; expected a torch.export program (.pt2), a TorchScript "
                           "archive (.pt) or latentspectra's NAME.safetensors + NAME.json")
    try:
        if kind == "export":  # an exported program keeps the mode it was exported in
            return torch.export.load(str(path)).module()
        with warnings.catch_warnings():  # torch deprecates TorchScript; the archives users have still load
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as failure:  # noqa: BLE001 - torch's loaders raise many types for a damaged archive
        raise NetworkError(f"{path}: cannot load the {role} ({describe_failure(failure)})") from None


def exported_input_width(module: nn.Module) -> int | None:
    """The width of the single input of a `torch.export` program's module, (N, M) -> M; None when it cannot be
    read (TorchScript keeps no input shapes)."""
    graph = getattr(module, "graph", None)
    placeholders = [node for node in getattr(graph, "nodes", []) if node.op == "placeholder"]
    inputs = [node for node in placeholders if not node.name.startswith(("p_", "b_", "c_"))]
    if len(inputs) != 1:
        return None
    value = inputs[0].meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    try:
        return int(shape[1])
    except TypeError:  # a symbolic width
        return None


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

    def _own_features_and_head(self) -> bool:
        return callable(getattr(self.network, "features", None)) and callable(getattr(self.network, "head", None))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The network's own ``features`` where it has them with a ``head`` (a classifier's penultimate layer),
        else its outputs (a classifier's logits): what the Fréchet distances compare."""
        return self.network.features(self.to_network_range(images)) if self._own_features_and_head() else self(images)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """`features` -> logits: the network's own head, or the identity where the features are the logits."""
        return self.network.head(features) if self._own_features_and_head() else features


class ForeignEncoder(ForeignNetwork):
    """A user's encoder as the package's Gaussian encoder: images in [-1, 1] -> (mu, logvar). An encoder that
    returns the mean alone is deterministic: its log-variance is -inf and `sample` returns the mean."""

    def __init__(self, network: Any, latent_dim: int, pixel_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__(network, pixel_range, "input")
        self.latent_dim = latent_dim

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
