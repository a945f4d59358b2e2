"""Command-line arguments are text from outside: valid Unicode, printable, within their limit.

Python decodes argv with ``surrogateescape``: a byte that is not UTF-8 (``$'tech\\xff'``, or
"José" typed on a Latin-1 terminal) arrives as a lone surrogate, which nothing notices until
it must be encoded. An ack carrying one reached the core, and the event it made could never be
written: every later alarm stayed unsent. So every argument is checked before anything is
read or sent, and a bad one is a usage error (exit 2) naming the argument and the reason
(``not_unicode``, ``not_printable``, ``too_long``; device/core/text.py):

- ``refuse_bad_argv()`` checks every argument of every subcommand, those of modules that
  declare no type of their own included, so a new option cannot forget it;
- ``text(limit)`` is the argparse type of a free-text option with a tighter limit (``--by``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from safehouse.device.core.text import TextRefused, problem

MAX_ARG = 4096  # characters: PATH_MAX; no argument of ours is longer


def text(limit: int) -> Callable[[str], str]:
    """An argparse ``type`` taking printable Unicode of at most ``limit`` characters."""

    def checked(value: str) -> str:
        refused = problem(value, limit=limit)
        if refused is not None:
            raise argparse.ArgumentTypeError(str(refused))
        return value

    checked.__name__ = f"text of at most {limit} characters"
    return checked


def _named(argv: Sequence[str], i: int) -> tuple[str, str, str]:
    """How the argument at ``i`` is named in an error, and its option part and value part
    (``--by=VALUE`` is the option ``--by=`` and its value; any other argument is all value)."""
    arg = argv[i]
    if arg.startswith("--") and "=" in arg:
        option, value = arg.split("=", 1)
        return f"argument {ascii(option)[1:-1]}", option + "=", value
    before = argv[i - 1] if i else ""
    after = f" (after {ascii(before)[1:-1]})" if before.startswith("-") else ""
    return f"argument {i + 1}{after}", "", arg


def refuse_bad_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """A usage error (exit 2, via ``parser.error``) for the first argument that is not acceptable text."""
    for i in range(len(argv)):
        name, option, value = _named(argv, i)
        refused: TextRefused | None = problem(option)
        if refused is not None:
            name = f"argument {i + 1}"
        else:
            refused = problem(value, limit=MAX_ARG)
        if refused is not None:
            parser.error(f"{name}: {refused}; nothing was done")
