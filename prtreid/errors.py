"""Error types shared across the package."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """Malformed input file; the message names the file and the line or key.

    Attributes:
        path: the offending file.
        where: a line number (1-based) or a key path such as ``annotations[3].bbox_image``.
    """

    def __init__(self, path: str | Path, where: int | str | None, message: str) -> None:
        self.path = str(path)
        self.where = where
        if isinstance(where, int):
            loc = f"{self.path}:{where}"
        elif where:
            loc = f"{self.path} [{where}]"
        else:
            loc = self.path
        super().__init__(f"{loc}: {message}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" if it has none), for one-line errors."""
    return (str(exc).strip().splitlines() or [""])[0]


class ConfigError(ValueError):
    """Invalid configuration; the message names the file (if any) and the key."""


class FrameError(RuntimeError):
    """A frame source could not be opened or decoded; the message names the path."""
