"""The latent sets an interrupted `latentspectra basis` finished, kept so that a rerun resumes after them.

Every set has its own random streams (keyed by seed, set and block, `latent.sets.block_generator`), so a set
finished by one run is the set a rerun would build: after each set rank 0 writes the finished sets' means
to OUT.sets.safetensors (with its JSON record, atomically), a rerun of the same command reads them, hands
them to every rank and builds only the others, and the file is removed once the basis is written. The
record names what the sets depend on (the networks, their outputs on a probe, dataset, seed, V, block
size, cap, device and precision); a file made with anything else is not used, and is replaced.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

from ..distributed import World
from ..errors import LatentspectraError
from ..io import json_text, load_tensors_with_record, record_path, save_tensors_with_record
from ..latent.sets import LabelMeans, Network

FORMAT = "latentspectra-finished-latent-sets"


def finished_sets_path(out: Path) -> Path:
    """Where a basis build for ``out`` keeps its finished sets: runs/b.safetensors -> runs/b.sets.safetensors."""
    return out.with_name(f"{out.stem}.sets.safetensors")


def probe_digest(generator: Network, classifier: Network, latent_dim: int, device: torch.device) -> str:
    """SHA-256 of the classifier's logits on the generator's images of four fixed latents, to 1e-3: the
    networks' function, whatever files or factory they came from."""
    z = torch.randn(4, latent_dim, generator=torch.Generator(device="cpu").manual_seed(0), device="cpu").to(device)
    with torch.inference_mode():
        logits = classifier(generator(z)).float().cpu()
    return hashlib.sha256(json_text(torch.round(logits * 1000).tolist(), indent=None).encode()).hexdigest()


class FinishedSets:
    """The finished sets of one basis build at ``path``, for the ``settings`` (JSON-ready) that determine
    them, shared by the ranks of ``world``: `load` them on every rank, `save` after each set (rank 0 writes),
    `discard` once the basis is written."""

    def __init__(self, path: Path, settings: dict[str, Any], world: World):
        self.path, self.settings, self.world = Path(path), settings, world
        self.sets: list[LabelMeans] = []

    def load(self) -> list[LabelMeans]:
        """The sets rank 0 finds at ``path`` made with these settings, on every rank ([] if none)."""
        found = self._read() if self.world.is_writer else []
        if self.world.size > 1:
            found = self._from_rank_zero(found)
        self.sets = list(found)
        return found

    def _from_rank_zero(self, found: list[LabelMeans]) -> list[LabelMeans]:
        """Rank 0's ``found`` on every rank: sums to which the other ranks, who found nothing, add zeros."""
        header = torch.tensor(
            [len(found), *(found[0].means.shape if found else (0, 0))], dtype=torch.float64, device="cpu"
        )
        count, labels, dim = (int(value) for value in self.world.sum(header, "the finished sets' shape"))
        if count == 0:
            return []
        means = torch.stack([done.means for done in found]) if found else torch.zeros(count, labels, dim, device="cpu")
        counts = torch.stack([done.counts for done in found]) if found else torch.zeros(count, labels, device="cpu")
        squares = torch.stack([done.square_sums for done in found]) if found else torch.zeros(count, labels)
        draws = torch.tensor([float(done.draws) for done in found]) if found else torch.zeros(count, device="cpu")
        means, counts, squares, draws = (
            self.world.sum(tensor, "the finished sets") for tensor in (means, counts, squares, draws)
        )
        return [
            LabelMeans(means[index], counts[index].long(), int(draws[index]), 0.0, squares[index])
            for index in range(count)
        ]

    def save(self, index: int, result: LabelMeans) -> None:
        """Add set ``index`` (the next one) and, on rank 0, write all finished sets."""
        if index != len(self.sets) + 1:
            raise ValueError(f"FinishedSets.save: set {index} after {len(self.sets)} finished sets")
        self.sets.append(result)
        if not self.world.is_writer:
            return
        tensors = {
            "means": torch.stack([done.means for done in self.sets]),
            "counts": torch.stack([done.counts for done in self.sets]),
            "square_sums": torch.stack([done.square_sums for done in self.sets]),
        }
        record = {"format": FORMAT, "settings": self.settings, "draws": [done.draws for done in self.sets]}
        save_tensors_with_record(self.path, tensors, record, LatentspectraError)

    def discard(self) -> None:
        """Remove the file (rank 0), once the basis it was for is written."""
        if self.world.is_writer:
            self.path.unlink(missing_ok=True)
            record_path(self.path).unlink(missing_ok=True)

    def _read(self) -> list[LabelMeans]:
        if not self.path.is_file():
            return []
        try:
            tensors, record = load_tensors_with_record(self.path, LatentspectraError, "finished latent sets", FORMAT)
        except LatentspectraError as failure:
            print(f"latentspectra: not resuming from {self.path}: {failure}", file=sys.stderr)
            return []
        if record.get("settings") != self.settings:
            print(f"latentspectra: not resuming from {self.path}: made with other settings", file=sys.stderr)
            return []
        if "square_sums" not in tensors:
            print(f"latentspectra: not resuming from {self.path}: written by an older version", file=sys.stderr)
            return []
        found = [
            LabelMeans(means, counts, int(draws), 0.0, squares)
            for means, counts, squares, draws in zip(
                tensors["means"], tensors["counts"], tensors["square_sums"], record["draws"]
            )
        ]
        print(f"latentspectra: resuming the basis after {len(found)} finished set(s) ({self.path})", file=sys.stderr)
        return found
