"""What the page may say about the server's files: names, never paths. A server on a non-loopback ``--host`` would
otherwise tell every visitor where its networks, dataset and cache lie; so the page and every API answer name the
networks ("shipped mnist networks", a directory's name, a factory's ``module:function``) and replace each private
path that a message could carry (`PublicNames.scrub`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..experiments.networks import Networks, NetworksSpec
from ..models.spec import LatentNetworks

PATH_TOKEN = re.compile(r"[^\s,;]*[/\\][^\s,;]*")  # a run of text holding a path separator
SEPARATORS = re.compile(r"[/\\]")
PATH_KINDS = ("idx", "npz")  # dataset specs "idx:DIR" and "npz:FILE" (data.catalog.load_dataset)
CACHE_WORDS = "<cache>"  # what a message says for the cache directory: "cannot write <cache>/sefa.safetensors"


@dataclass(frozen=True)
class PublicNames:
    """The networks' public name, and each private path (as text) with the words said instead, longest first so
    that a path is replaced before any directory above it."""

    networks: str
    hidden: tuple[tuple[str, str], ...] = ()

    def scrub(self, text: str) -> str:
        """``text`` with every private path replaced by its public words."""
        for private, public in self.hidden:
            text = text.replace(private, public)
        return text

    def provenance(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A basis' provenance record without paths: every string scrubbed, then any path left in it (a basis file
        built on another machine names that machine's networks) cut to its last component."""
        return {key: self._public(value) for key, value in record.items()}

    def _public(self, value: Any) -> Any:
        if isinstance(value, str):
            return without_paths(self.scrub(value))
        if isinstance(value, Mapping):
            return {key: self._public(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._public(item) for item in value]
        return value


def without_paths(text: str) -> str:
    """``text`` with each run holding a path separator cut to its last component: "/a/b/mnist" -> "mnist"."""
    return PATH_TOKEN.sub(lambda run: last_component(run.group()), text)


def last_component(path: str) -> str:
    """The last non-empty component of a path written with / or \\ ("/a/b/" -> "b")."""
    parts = [part for part in SEPARATORS.split(path) if part]
    return parts[-1] if parts else path


def networks_name(spec: NetworksSpec, dataset: str, overrides: Mapping[str, str | Path | None] | None = None) -> str:
    """The networks ``spec`` names, without a path: "shipped DATASET networks" (None), a directory's own name, a
    factory's ``module:function``, a `LatentNetworks`' source; each override named by its file's name."""
    if spec is None:
        base = f"shipped {dataset} networks"
    elif isinstance(spec, LatentNetworks):
        base = without_paths(spec.source)
    else:
        path = Path(spec)
        base = path.resolve().name if path.is_dir() else without_paths(str(spec))
    replaced = [f"{piece} {Path(file).name}" for piece, file in (overrides or {}).items() if file is not None]
    return f"{base} with {', '.join(replaced)}" if replaced else base


def dataset_path(spec: str) -> Path | None:
    """The file or directory of an "idx:DIR" or "npz:FILE" dataset spec, else None."""
    kind, separator, rest = spec.partition(":")
    return Path(rest).expanduser() if separator and kind in PATH_KINDS and rest else None


def path_texts(path: str | Path) -> set[str]:
    """``path`` as given, absolute and resolved: the texts a message may name it by; only those holding a separator
    below a root (a bare relative name tells nothing, and replacing it, or "/", would mangle ordinary words)."""
    given = Path(path).expanduser()
    texts = {str(path), str(given.absolute()), str(given.resolve())}
    return {text for text in texts if SEPARATORS.search(text) and Path(text).name}


def hidden_paths(pairs: Iterable[tuple[str | Path, str]]) -> tuple[tuple[str, str], ...]:
    """(private text, public words) for every text of each path in ``pairs`` (`path_texts`), longest first."""
    hidden = {text: public for path, public in pairs for text in path_texts(path)}
    return tuple(sorted(hidden.items(), key=lambda pair: (-len(pair[0]), pair[0])))


def public_names(
    spec: NetworksSpec,
    networks: Networks,
    dataset: str,
    cache: Path,
    *,
    overrides: Mapping[str, str | Path | None] | None = None,
    basis_file: Path | None = None,
) -> PublicNames:
    """The public name of a server's networks (``spec``, loaded as ``networks``), with the private paths to hide:
    the networks' source and directory, the override files, the file of the ``dataset`` spec, the basis file, and
    the ``cache`` directory and its root."""
    name = networks_name(spec, dataset, overrides)
    pairs: list[tuple[str | Path, str]] = [(networks.source, name), (cache, CACHE_WORDS), (cache.parent, CACHE_WORDS)]
    pairs += [(path, name) for path in (networks.description.directory, spec) if isinstance(path, (str, Path))]
    pairs += [(Path(file), Path(file).name) for file in (overrides or {}).values() if file is not None]
    pairs += [(path, path.name) for path in (dataset_path(dataset), basis_file) if path is not None]
    return PublicNames(name, hidden_paths(pairs))
