"""Errors that the CLI reports as one clear line (exit code 2) instead of a traceback, and the one warning it
prints as a line. Nothing here imports torch: the command line names them before any network runs."""


class LatentspectraError(Exception):
    """Base class for user-facing errors: bad input files, arguments or model directories."""


class DataError(LatentspectraError, ValueError):
    """A dataset file is missing, truncated, corrupt or inconsistent; the message names the file."""


class CheckpointError(LatentspectraError, ValueError):
    """A model directory or weights file is missing or does not match the expected model."""


class ComputeError(LatentspectraError, ValueError):
    """A device or precision this machine does not offer, or an unknown one; names the option."""


class DistributedError(LatentspectraError, RuntimeError):
    """The ranks of a sharded run cannot work together: no rendezvous, different arguments, a rank lost."""


class SlowPrecisionWarning(UserWarning):
    """bfloat16 was asked for on hardware that only emulates it (the command line prints it as one line)."""


class OutputError(LatentspectraError, OSError):
    """An output cannot be written: no space left, no permission, or another run is writing there; the
    message names the path and the cause, and nothing half-written is left behind."""
