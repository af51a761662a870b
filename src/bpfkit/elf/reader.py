"""Convenience readers over `ElfFile`: is it ELF, and the executable sections with their functions.

`open_elf` gives a pyelftools `ELFFile` for callers that want its full model (imported on demand: it
costs about 20 ms to import).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bpfkit._records import record
from bpfkit.elf.file import ELF_MAGIC, EM_BPF, ElfFile, SymbolType
from bpfkit.errors import ElfError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


@record
class CodeSection:
    """An executable section: its name, bytes and the function symbols in it (offset -> name)."""

    name: str
    data: bytes
    symbols: dict[int, str]


def open_elf(data: bytes, name: str = "<bytes>") -> ELFFile:
    """Parse `data` with pyelftools as an ELF file for the BPF machine."""
    from elftools.common.exceptions import ELFError as _PyElfError
    from elftools.elf.elffile import ELFFile

    if not is_elf(data):
        raise ElfError("not an ELF file (bad magic)", 0, where=name)
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
    except (_PyElfError, ValueError, KeyError, OSError) as exc:
        raise ElfError(f"malformed ELF header: {exc}", 0, where=name) from None
    if machine not in ("EM_BPF", EM_BPF):
        raise ElfError(f"ELF machine is {machine}, not BPF", 0x12, where=name)
    return elf


def code_sections(data: bytes, name: str = "<bytes>") -> list[CodeSection]:
    """Every executable section with its function symbols, in file order."""
    elf = ElfFile(data, name)
    symbols: dict[int, dict[int, str]] = {}
    for sym in elf.symbols:
        if sym.type == SymbolType.FUNC and sym.name:
            symbols.setdefault(sym.shndx, {})[sym.value] = sym.name
    return [CodeSection(sec.name, elf.data(sec), symbols.get(sec.index, {}))
            for sec in elf.sections if sec.is_code]
