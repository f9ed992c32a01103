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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each option's default, where it has one its help does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text, default = action.help or "", action.default
        if (not action.option_strings or default is None or default is False or default is argparse.SUPPRESS
                or default == [] or "default" in text):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="prtreid", formatter_class=HelpFormatter,
        description="PRTReID: player re-identification, team and role, and tracking in sports broadcasts.",
        epilog="`prtreid COMMAND --help` describes a command. Exit status: 0 done, 1 a documented failure "
               "(see the command), 2 bad input or settings, 130 interrupted.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (before COMMAND)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    for choice in sub._choices_actions:  # each command's --help opens with its one-line summary
        command = sub.choices[choice.dest]
        command.description, command.formatter_class = command.description or choice.help, HelpFormatter
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
        print(f"{prog}: error: {error_text(exc)}", file=sys.stderr)
        return 2


def error_text(exc: Exception) -> str:
    """The message of ``exc``; an OS error's as ``PATH: reason`` rather than ``[Errno N] reason: 'PATH'``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = "" if exc.filename2 is None else f" -> {exc.filename2}"
        return f"{exc.filename}{target}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
