"""What the host machine has, read without torch (the data loaders and the command line use it before any
network runs)."""

from __future__ import annotations

import os
import re
from pathlib import Path


def available_host_memory() -> int | None:
    """Bytes of the host's memory free for new work: the kernel's MemAvailable, or free physical pages; None
    where the platform does not say, and then nothing is refused on size."""
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except (OSError, UnicodeDecodeError):
        match = None
    if match:
        return int(match.group(1)) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
