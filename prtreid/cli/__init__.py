"""The ``prtreid`` command line: one subcommand per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from prtreid.cli import data, reid, track
from prtreid.errors import ConfigError, FormatError, FrameError

_MODULES = (data, reid, track)
INPUT_ERRORS = (FormatError, ConfigError, FileNotFoundError, FrameError,
                FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
"""Bad input or settings: a command prints their message (file, line or key) on one line, no traceback.

The path errors are a file where an output folder goes, or a folder or file the user cannot write."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="prtreid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    prog = f"prtreid {args.command}"
    try:
        return exit_status(prog, lambda: args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: what was written is whole (atomic writes), no traceback to read
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def exit_status(prog: str, run: Callable[[], int | None]) -> int:
    """``run()``'s exit status; 2, with ``PROG: error: MESSAGE`` on stderr, where it fails on bad input."""
    try:
        return int(run() or 0)
    except INPUT_ERRORS as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
