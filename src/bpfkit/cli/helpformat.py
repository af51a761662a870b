"""argparse's help formatter, with the terminal width found without importing `shutil`.

argparse builds a formatter on every `add_argument` (to check metavars), and its default formatter
imports `shutil` (with bz2, lzma, fnmatch) just to read the terminal width: ~2 ms of `bpfkit trace`'s
start-up. The width rule is shutil's: $COLUMNS, else the terminal of stdout, else 80; minus 2 as argparse
does.
"""

from __future__ import annotations

import argparse
import os
import sys


def terminal_columns() -> int:
    """$COLUMNS when it is a positive number, else stdout's terminal width, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class HelpFormatter(argparse.HelpFormatter):
    """`argparse.HelpFormatter` with the width from `terminal_columns`."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)
