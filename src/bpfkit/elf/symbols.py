"""Function and data symbols of executables and shared libraries (ELF64), for symbolizing addresses.

`SymbolTable.load(path)` reads ``.symtab`` and ``.dynsym`` (a stripped binary still has its dynamic
symbols) and the PT_LOAD segments, which turn a file offset into the link-time virtual address the
symbols use: for a position-independent executable or a shared library the load bias is whatever the
process mapped it at, so a runtime address is first turned into a file offset (``/proc/PID/maps``) and
then into a virtual address here (see `bpfkit.kernel.usyms`).

Pure and strict: the fixed ELF64 layouts are read with `struct` (a libc's symbols in a few ms, where
pyelftools, the tests' oracle, takes much longer); malformed input raises `ElfError` naming the file.
Facts are from the System V gABI and `elf.h`.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from bpfkit.errors import ElfError

ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
SHT_SYMTAB = 2
SHT_DYNSYM = 11
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
STT_OBJECT = 1
STT_FUNC = 2
STT_GNU_IFUNC = 10
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2

_KINDS = {STT_FUNC: "func", STT_GNU_IFUNC: "func", STT_OBJECT: "object"}
_BIND_RANK = {STB_GLOBAL: 0, STB_WEAK: 1, STB_LOCAL: 2}


@dataclass(frozen=True, slots=True)
class Symbol:
    """A named function or object at link-time virtual `address`, `size` bytes long (0: unknown)."""

    name: str
    address: int
    size: int
    kind: str = "func"
    binding: int = STB_GLOBAL


@dataclass(frozen=True, slots=True)
class Segment:
    """A PT_LOAD program header: file bytes [offset, offset+filesz) load at vaddr."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int


class SymbolTable:
    """Symbols sorted by address, with `lookup(vaddr)` -> (symbol, offset) by binary search."""

    def __init__(self, symbols: Iterable[Symbol], segments: Iterable[Segment] = (), *, elf_type: int = ET_DYN,
                 name: str = "<bytes>") -> None:
        ordered = sorted(symbols, key=lambda s: (s.address, -s.size, s.name.startswith("_"),
                                                 _BIND_RANK.get(s.binding, 3), s.name))
        self.symbols: list[Symbol] = []
        for s in ordered:  # one name per address: the largest size, then public ("_"-less) global names
            if not self.symbols or self.symbols[-1].address != s.address:
                self.symbols.append(s)
        self._addrs = [s.address for s in self.symbols]
        self._all = ordered  # aliases included, for address_of
        self._by_name: dict[str, Symbol] | None = None
        self.segments = tuple(segments)
        self.elf_type = elf_type
        self.name = name

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def is_pie(self) -> bool:
        """True for ET_DYN (a shared library or position-independent executable): loaded at a bias."""
        return self.elf_type == ET_DYN

    def lookup(self, vaddr: int) -> tuple[Symbol, int] | None:
        """The symbol containing link-time address `vaddr`, and the offset into it.

        A symbol of unknown size (0) takes the addresses up to the next symbol.
        """
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        for j in range(i, max(i - 4, -1), -1):  # a sized symbol may be nested inside a bigger one
            s = self.symbols[j]
            if vaddr < s.address + s.size or (s.size == 0 and j == i):
                return s, vaddr - s.address
        return None

    def address_of(self, name: str) -> int:
        """The link-time address of symbol `name`, aliases included (KeyError when there is none)."""
        if self._by_name is None:
            self._by_name = {}
            for s in self._all:
                self._by_name.setdefault(s.name, s)
        return self._by_name[name].address

    def vaddr_of_offset(self, file_offset: int) -> int | None:
        """The virtual address file offset `file_offset` loads at, or None outside every PT_LOAD."""
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                return seg.vaddr + (file_offset - seg.offset)
        return None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SymbolTable:
        """Read the symbols of the ELF file at `path`."""
        name = os.fspath(path)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ElfError(f"cannot read {name}: {e.strerror}", where=name) from None
        return cls.from_bytes(data, name)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> SymbolTable:
        """Read the symbols of the ELF file `data` (`name` is used in errors)."""
        return _Reader(data, name).table()


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        if data[:4] != b"\x7fELF":
            raise ElfError("not an ELF file (bad magic)", 0, where=name)
        if len(data) < 64 or data[4] != 2:
            raise ElfError("not an ELF64 file (only 64-bit objects are supported)", 4, where=name)
        if data[5] not in (1, 2):
            raise ElfError(f"bad ELF data encoding {data[5]}", 5, where=name)
        self.end = "<" if data[5] == 1 else ">"
        (self.e_type, _machine, _version, _entry, self.phoff, self.shoff, _flags, _ehsize, self.phentsize,
         self.phnum, self.shentsize, self.shnum, _shstrndx) = self.unpack("HHIQQQIHHHHHH", 16, "ELF header")

    def unpack(self, fmt: str, offset: int, what: str) -> tuple[int, ...]:
        st = struct.Struct(self.end + fmt)
        if offset < 0 or offset + st.size > len(self.data):
            raise ElfError(f"{what} at offset {offset} runs past the end of the file "
                           f"({len(self.data)} bytes)", offset, where=self.name)
        return st.unpack_from(self.data, offset)

    def segments(self) -> list[Segment]:
        out = []
        if self.phnum and self.phentsize < 56:
            raise ElfError(f"program header entries of {self.phentsize} bytes are too small", 54,
                           where=self.name)
        for i in range(self.phnum):
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = self.unpack(
                "IIQQQQQQ", self.phoff + i * self.phentsize, f"program header {i}")
            if p_type == PT_LOAD:
                out.append(Segment(p_vaddr, p_memsz, p_offset, p_filesz, p_flags))
        return out

    def sections(self) -> list[tuple[int, ...]]:
        if self.shnum and self.shentsize < 64:
            raise ElfError(f"section header entries of {self.shentsize} bytes are too small", 58,
                           where=self.name)
        return [self.unpack("IIQQQQIIQQ", self.shoff + i * self.shentsize, f"section header {i}")
                for i in range(self.shnum)]

    def symbols(self, sections: list[tuple[int, ...]]) -> list[Symbol]:
        out: list[Symbol] = []
        for index, sh in enumerate(sections):
            sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
            if sh_type not in (SHT_SYMTAB, SHT_DYNSYM) or sh_size == 0:
                continue
            if sh_entsize < 24 or sh_link >= len(sections):
                raise ElfError(f"symbol table in section {index} has entry size {sh_entsize} and string "
                               f"table {sh_link}", self.shoff + index * self.shentsize, where=self.name)
            str_off, str_size = sections[sh_link][4], sections[sh_link][5]
            if sh_offset + sh_size > len(self.data) or str_off + str_size > len(self.data):
                raise ElfError(f"symbol table in section {index} runs past the end of the file", sh_offset,
                               where=self.name)
            strtab = self.data[str_off:str_off + str_size]
            fmt = struct.Struct(self.end + "IBBHQQ")
            unpack = fmt.unpack_from
            data = self.data
            for off in range(sh_offset, sh_offset + sh_size - 23, sh_entsize):
                st_name, st_info, _other, st_shndx, st_value, st_size = unpack(data, off)
                kind = _KINDS.get(st_info & 0xF)
                if kind is None or st_shndx == SHN_UNDEF or st_value == 0 or not st_name:
                    continue
                if st_shndx >= SHN_LORESERVE and st_shndx != SHN_ABS:
                    continue
                end = strtab.find(b"\0", st_name)
                if st_name >= len(strtab) or end < 0:
                    raise ElfError(f"symbol name offset {st_name} is outside its string table", off,
                                   where=self.name)
                name = strtab[st_name:end].decode("utf-8", "replace")
                out.append(Symbol(name, st_value, st_size, kind, st_info >> 4))
        return out

    def table(self) -> SymbolTable:
        sections = self.sections()
        return SymbolTable(self.symbols(sections), self.segments(), elf_type=self.e_type, name=self.name)
