"""ELF64 reading for BPF objects: `ElfFile` (sections, symbols, relocations) raising `ElfError`."""

from bpfkit.elf.file import ElfFile, Relocation, RelocType, Section, Symbol
from bpfkit.elf.reader import CodeSection, code_sections, is_elf, open_elf

__all__ = [
    "CodeSection",
    "ElfFile",
    "RelocType",
    "Relocation",
    "Section",
    "Symbol",
    "code_sections",
    "is_elf",
    "open_elf",
]
