"""One busy core for `conftest.busy_cores`: a module that imports nothing heavy, so that a spawned process spins
within a fraction of a second instead of first importing what conftest.py imports."""

from __future__ import annotations

from typing import Any


def spin(ready: Any, stop: Any) -> None:
    """Wait at the ``ready`` barrier (every spinner and the caller), then keep this core busy until ``stop`` is set."""
    ready.wait()
    while not stop.is_set():
        sum(range(10_000))
