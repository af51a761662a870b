"""ELF64 reading for BPF objects (a thin layer over pyelftools that raises `ElfError`)."""

from bpfkit.elf.reader import CodeSection, code_sections, is_elf, open_elf

__all__ = ["CodeSection", "code_sections", "is_elf", "open_elf"]
