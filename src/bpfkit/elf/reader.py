"""Open ELF objects with pyelftools, turning its exceptions into `ElfError` that name the file."""

from __future__ import annotations

import io
from dataclasses import dataclass

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bpfkit.errors import ElfError

ELF_MAGIC = b"\x7fELF"
EM_BPF = 247


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


@dataclass(frozen=True, slots=True)
class CodeSection:
    """An executable section: its name, bytes and the function symbols in it (offset -> name)."""

    name: str
    data: bytes
    symbols: dict[int, str]


def open_elf(data: bytes, name: str = "<bytes>") -> ELFFile:
    """Parse `data` as an ELF file for the BPF machine."""
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
    elf = open_elf(data, name)
    try:
        sections = list(elf.iter_sections())
        symbols: dict[int, dict[int, str]] = {}
        symtab = elf.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] == "STT_FUNC" and sym.name:
                    symbols.setdefault(sym["st_shndx"], {})[sym["st_value"]] = sym.name
        out = []
        for index, sec in enumerate(sections):
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
                out.append(CodeSection(sec.name, sec.data(), symbols.get(index, {})))
        return out
    except (_PyElfError, ValueError, KeyError, OSError, AttributeError) as exc:
        raise ElfError(f"malformed ELF sections: {exc}", where=name) from None
