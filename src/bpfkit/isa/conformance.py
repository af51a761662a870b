"""Parser for the `.data` files of the eBPF conformance vectors (the bpf_conformance format).

A file is a series of sections, each opened by a line `-- <name>`:

- `-- asm`: the program in the ubpf dialect (`bpfkit.isa.ubpf`), kept verbatim;
- `-- mem`: whitespace-separated hex bytes: the memory r1 points to when the program starts;
- `-- result`: the expected r0 on exit (hex with 0x, or decimal);
- `-- raw`: the program as 64-bit little-endian words (`0x5566778800000018`), or one instruction per
  line as 8 separate hex bytes (the form the invalid-encoding vectors use);
- `-- error`: the program must be refused; the text is the reference runner's message;
- `-- c`, `-- no register offset`: notes, kept as text.

Outside notes and asm, lines starting with `#` are comments. An unknown section is refused with a
`ParseError` naming the file and line, so a typo cannot silently drop part of a vector.
The VM and the kernel layer run these vectors; this module only reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from bpfkit._records import record
from bpfkit.errors import AsmError, ParseError
from bpfkit.isa.codec import decode
from bpfkit.isa.instruction import Instruction

__all__ = ["NOTE_SECTIONS", "Vector", "load_vector", "load_vectors", "parse_vector"]

NOTE_SECTIONS = frozenset({"c", "no register offset"})
"""Sections that are documentation only."""

_DATA_SECTIONS = frozenset({"asm", "mem", "result", "raw", "error"})
_U64 = (1 << 64) - 1


@record
class Vector:
    """One conformance vector.

    `asm` is None when the file has no `-- asm` section; `asm_line` is the file line of its header,
    so line `n` of `asm` is line `asm_line + n` of the file. `result` is the expected r0 as an unsigned
    64-bit value. `raw` holds 64-bit little-endian instruction words. `error` is not None when the
    program must be refused (the text may be empty).
    """

    name: str
    asm: str | None = None
    mem: bytes = b""
    result: int | None = None
    raw: tuple[int, ...] | None = None
    error: str | None = None
    notes: tuple[tuple[str, str], ...] = ()
    asm_line: int = 0

    @property
    def raw_bytes(self) -> bytes | None:
        """The `-- raw` words as bytecode, or None without a raw section."""
        if self.raw is None:
            return None
        return b"".join(w.to_bytes(8, "little") for w in self.raw)

    def instructions(self) -> list[Instruction]:
        """The program: the assembled `-- asm` section, else the decoded `-- raw` section.

        Raises `AsmError` naming the vector, the file line and the instruction index of a fault, and
        `ParseError` when the vector has no program at all.
        """
        if self.asm is not None:
            from bpfkit.isa.ubpf import assemble_ubpf

            try:
                return assemble_ubpf(self.asm)
            except AsmError as e:
                line = None if e.line is None else self.asm_line + e.line
                raise AsmError(f"{self.name}: {e.message}", index=e.index, line=line,
                               source=e.source) from None
        raw = self.raw_bytes
        if raw is None:
            raise ParseError(f"{self.name}: the vector has neither an asm nor a raw section")
        try:
            return decode(raw)
        except AsmError as e:
            raise AsmError(f"{self.name}: {e.message}", index=e.index) from None


def _where(name: str, lineno: int) -> str:
    return f"{name}:{lineno}"


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _parse_int(text: str, name: str, lineno: int) -> int:
    try:
        value = int(text, 16) if text.lower().lstrip("+-").startswith("0x") else int(text, 10)
    except ValueError:
        raise ParseError(f"expected a decimal or 0x hex number, got {text!r}",
                         where=_where(name, lineno)) from None
    if not -(1 << 63) <= value <= _U64:
        raise ParseError(f"result {text} does not fit in 64 bits", where=_where(name, lineno))
    return value & _U64


def _hex_byte(token: str, name: str, lineno: int) -> int:
    try:
        if len(token) > 2 and not token.lower().startswith("0x"):
            raise ValueError(token)
        value = int(token, 16)
    except ValueError:
        raise ParseError(f"expected a hex byte, got {token!r}", where=_where(name, lineno)) from None
    if not 0 <= value <= 0xFF:
        raise ParseError(f"hex byte {token!r} is out of range", where=_where(name, lineno))
    return value


def _parse_raw_line(text: str, name: str, lineno: int) -> int:
    tokens = text.split()
    if len(tokens) == 1:
        try:
            word = int(tokens[0], 16)
        except ValueError:
            raise ParseError(f"expected a 64-bit hex word, got {tokens[0]!r}",
                             where=_where(name, lineno)) from None
        if not 0 <= word <= _U64:
            raise ParseError(f"raw word {tokens[0]} does not fit in 64 bits", where=_where(name, lineno))
        return word
    if len(tokens) == 8:
        return int.from_bytes(bytes(_hex_byte(t, name, lineno) for t in tokens), "little")
    raise ParseError(f"a raw line is one 64-bit word or 8 hex bytes, got {len(tokens)} tokens",
                     where=_where(name, lineno))


def parse_vector(text: str, name: str = "<vector>") -> Vector:
    """Parse the text of one `.data` file; `name` is used in errors and kept in the vector."""
    sections: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    notes: list[tuple[str, str]] = []
    current: list[tuple[int, str]] | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("--"):
            section = line[2:].strip().lower()
            if section not in _DATA_SECTIONS and section not in NOTE_SECTIONS:
                raise ParseError(f"unknown section {line.strip()!r} (known: "
                                 f"{', '.join(sorted(_DATA_SECTIONS | NOTE_SECTIONS))})",
                                 where=_where(name, lineno))
            if section in sections:
                raise ParseError(f"section '-- {section}' appears twice (first at line "
                                 f"{sections[section][0]})", where=_where(name, lineno))
            current = []
            sections[section] = (lineno, current)
            continue
        if current is None:
            if _strip_comment(line):
                raise ParseError(f"text before the first section: {line.strip()!r}",
                                 where=_where(name, lineno))
            continue
        current.append((lineno, line))

    asm = asm_line = None
    if "asm" in sections:
        asm_line, lines = sections["asm"]
        asm = "\n".join(line for _, line in lines)
    mem = bytearray()
    for lineno, line in sections.get("mem", (0, []))[1]:
        mem.extend(_hex_byte(t, name, lineno) for t in _strip_comment(line).split())
    result = None
    if "result" in sections:
        values = [(n, _strip_comment(line)) for n, line in sections["result"][1] if _strip_comment(line)]
        if len(values) != 1:
            raise ParseError(f"'-- result' must hold exactly one number, found {len(values)}",
                             where=_where(name, sections["result"][0]))
        result = _parse_int(values[0][1], name, values[0][0])
    raw = None
    if "raw" in sections:
        raw = tuple(_parse_raw_line(_strip_comment(line), name, n)
                    for n, line in sections["raw"][1] if _strip_comment(line))
    error = None
    if "error" in sections:
        error = "\n".join(line for _, line in sections["error"][1]).strip()
    for section in sections:
        if section in NOTE_SECTIONS:
            notes.append((section, "\n".join(line for _, line in sections[section][1])))
    return Vector(name=name, asm=asm, mem=bytes(mem), result=result, raw=raw, error=error,
                  notes=tuple(notes), asm_line=asm_line or 0)


def load_vector(path: str | os.PathLike[str]) -> Vector:
    """Read one `.data` file; the vector is named after the file's stem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParseError(f"cannot read conformance vector: {e}", where=str(p)) from None
    return parse_vector(text, p.stem)


def load_vectors(directory: str | os.PathLike[str]) -> list[Vector]:
    """Read every `*.data` file of a directory, sorted by name."""
    return [load_vector(p) for p in sorted(Path(directory).glob("*.data"))]
