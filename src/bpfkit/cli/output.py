"""Output helpers shared by the `bpfkit` commands: JSON for programs, aligned tables for people, and
bpftool's conventions for bytes (``01 00 00 00`` for people, ``["0x01", "0x00"]`` in JSON).

Every kernel-object command takes ``-j/--json`` (compact JSON) and ``-p/--pretty`` (indented JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from bpfkit.errors import BpfkitError


class UsageError(BpfkitError):
    """A command line that does not say what to do (a missing or unknown word)."""


def json_parent() -> argparse.ArgumentParser:
    """A parent parser adding ``-j/--json`` and ``-p/--pretty`` to a verb."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.add_argument("-p", "--pretty", action="store_true", help="indented JSON output (implies -j)")
    return p


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False) or getattr(args, "pretty", False))


def emit_json(args: argparse.Namespace, value: Any, out: TextIO | None = None) -> None:
    """Print `value` as JSON: indented by 4 with ``-p``, compact otherwise (as bpftool does)."""
    out = out or sys.stdout
    if getattr(args, "pretty", False):
        out.write(json.dumps(value, indent=4) + "\n")
    else:
        out.write(json.dumps(value, separators=(",", ":")) + "\n")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """`rows` in columns under `headers`, each as wide as its widest cell; numbers right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) and bool(rows) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def hex_bytes(data: bytes) -> str:
    """``01 00 00 00``: bytes as bpftool prints them for people."""
    return data.hex(" ")


def json_bytes(data: bytes) -> list[str]:
    """``["0x01", "0x00"]``: bytes as bpftool prints them in JSON."""
    return [f"0x{b:02x}" for b in data]


def parse_byte(word: str, *, hex_mode: bool) -> int:
    """One byte from the command line: hex with `hex_mode`, else C notation (``0x1f``, ``017``, ``31``)."""
    try:
        if hex_mode:
            value = int(word, 16)
        elif word.lower().startswith("0x"):
            value = int(word, 16)
        elif len(word) > 1 and word.startswith("0"):
            value = int(word, 8)
        else:
            value = int(word, 10)
    except ValueError:
        raise UsageError(f"{word!r} is not a byte value") from None
    if not 0 <= value <= 0xFF:
        raise UsageError(f"{word!r} does not fit in a byte (0-255)")
    return value


def parse_bytes(words: Iterable[str], size: int, what: str) -> bytes:
    """`size` bytes from words such as ``1 0 0 0`` or ``hex 01 00 00 00`` (bpftool's notation)."""
    items = list(words)
    hex_mode = bool(items) and items[0] == "hex"
    if hex_mode:
        items = items[1:]
    data = bytes(parse_byte(w, hex_mode=hex_mode) for w in items)
    if len(data) != size:
        raise UsageError(f"{what} must be {size} bytes, got {len(data)} ({' '.join(items) or 'none'})")
    return data


def split_words(words: Sequence[str], keywords: Iterable[str]) -> dict[str, list[str]]:
    """Group trailing words by keyword: ``key 1 0 value 2 0 any`` -> {"key": [...], "value": [...],
    "any": []}. Words before the first keyword raise UsageError."""
    keys = set(keywords)
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for w in words:
        if w in keys and w not in out:
            current = out[w] = []
        elif current is None:
            raise UsageError(f"unexpected word {w!r} (expected one of: {', '.join(sorted(keys))})")
        else:
            current.append(w)
    return out


def parse_int(word: str, what: str) -> int:
    """An integer from the command line (decimal or 0x hex), naming `what` when it is not one."""
    try:
        return int(word, 0)
    except ValueError:
        raise UsageError(f"{what} must be a number, got {word!r}") from None


def local_time(epoch: float) -> str:
    """``2026-11-25T06:30:35+0000``: a time as bpftool prints load times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(epoch))


def take_ref(words: Sequence[str], what: str, kinds: Sequence[str] = ("id", "pinned", "name")
             ) -> tuple[tuple[str, str], list[str]]:
    """Split an object reference (``id 42``, ``pinned /sys/fs/bpf/x``, ``name counts``) off the front of
    `words`; returns ((kind, value), the rest)."""
    if len(words) < 2 or words[0] not in kinds:
        got = " ".join(words) or "nothing"
        raise UsageError(f"expected a {what}: {' | '.join(f'{k} ...' for k in kinds)}, got {got}")
    return (words[0], words[1]), list(words[2:])
