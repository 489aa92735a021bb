"""What torchrun's environment says of this process (WORLD_SIZE, RANK), read without torch: the command line
refuses a command that does not shard and prefixes a sharded run's error lines with its rank before any
network runs (distributed.py joins the ranks)."""

from __future__ import annotations

import os

from .errors import DistributedError


def environment_int(name: str, default: int) -> int:
    """The whole number in environment variable ``name`` (``default`` when unset or empty)."""
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise DistributedError(f"${name}={value!r}: expected a whole number (torchrun sets it)") from None


def launched_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when this process was not started by torchrun)."""
    return environment_int("WORLD_SIZE", 1)


def rank_label() -> str:
    """ "rank R of W: " inside a sharded run (to prefix its error lines), "" otherwise."""
    try:
        size, rank = launched_size(), environment_int("RANK", 0)
    except DistributedError:
        return ""
    return f"rank {rank} of {size}: " if size > 1 else ""
