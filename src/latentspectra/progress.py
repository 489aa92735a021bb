"""Progress of long computations: the math reports to a sink it is given (anything with tqdm's ``reset``
and ``update``); the commands decide whether and how to show it (`progress_bar`)."""

from __future__ import annotations

from typing import Protocol

from tqdm.auto import tqdm


class Progress(Protocol):
    """Where a computation reports how far it is: its total once, then steps done."""

    def reset(self, total: int | None = None) -> object: ...

    def update(self, n: int = 1) -> object: ...


def progress_bar(description: str, shown: bool, unit: str = "it") -> tqdm:
    """A tqdm bar for a command's progress (a disabled one when not ``shown``); use it as a context."""
    return tqdm(desc=description, unit=unit, disable=not shown)
