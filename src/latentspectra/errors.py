"""Errors that the CLI reports as one clear line (exit code 2) instead of a traceback."""


class LatentspectraError(Exception):
    """Base class for user-facing errors: bad input files, arguments or model directories."""


class DataError(LatentspectraError, ValueError):
    """A dataset file is missing, truncated, corrupt or inconsistent; the message names the file."""


class CheckpointError(LatentspectraError, ValueError):
    """A model directory or weights file is missing or does not match the expected model."""


class OutputError(LatentspectraError, OSError):
    """An output cannot be written: no space left, no permission, or another run is writing there; the
    message names the path and the cause, and nothing half-written is left behind."""
