"""Error hierarchy: every error a user can see carries the file it is about and a human sentence.

Only :func:`vidrestore.cli.main` turns these into exit codes; library code raises them.
"""
from __future__ import annotations

from os import PathLike


class VidRestoreError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(VidRestoreError):
    """The input file cannot be read as a video or image (missing, empty, broken, no video stream)."""

    exit_code = 2


class OutputError(VidRestoreError):
    """The output path cannot be written (exists without -y, equals the input, folder missing)."""

    exit_code = 3


class CheckpointError(VidRestoreError):
    """A weights file is missing, truncated, not a checkpoint, or of another architecture."""

    exit_code = 4


class WeightsUnavailable(CheckpointError):
    """Weights are not cached and cannot be downloaded (offline, checksum mismatch)."""


class BackendUnavailable(VidRestoreError):
    """An optional backend or device is not installed/available; the message says how to get it."""

    exit_code = 5


class EncodeError(VidRestoreError):
    """Encoding or muxing the output failed."""

    exit_code = 6


class ConfigError(VidRestoreError):
    """An option value is out of range or options contradict each other."""

    exit_code = 7
