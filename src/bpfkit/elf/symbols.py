"""Symbols, sections and load segments of executables and shared libraries (ELF64), read once for two
users: placing uprobes (a symbol's name to a file offset) and symbolizing stacks (an address to a name).

`read_image(path)` gives an `ElfImage`: the PT_LOAD segments, the section headers and the raw
``.symtab``/``.dynsym`` tables (`SymbolSection`), cached while the file is unchanged. Only the headers and
the symbol and string tables are read, never the whole file. A name is found by searching the string
table for it and the symbol table for that string offset, both searches in C (`bytes.find`), so
finding ``malloc`` in libc takes a fraction of a millisecond, where decoding every symbol with
pyelftools (the tests' oracle) takes about 100 ms.

`SymbolTable` decodes every function and object symbol of an image into an address-sorted table for
`lookup(vaddr)`. For a position-independent executable or a shared library the load bias is whatever
the process mapped it at, so a runtime address is first turned into a file offset (``/proc/PID/maps``)
and then into a link-time virtual address through the segments (see `bpfkit.kernel.usyms`).

The uprobe PMU wants a file offset: a symbol's value is a virtual address, and the loadable segment
holding it maps it back (offset = address - p_vaddr + p_offset).

Pure and strict: the fixed ELF64 layouts are read with `struct`; malformed input raises `ElfError`
naming the file. Facts are from the System V gABI and `elf.h`.
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
from collections.abc import Collection, Iterable, Iterator
from typing import BinaryIO, TypeVar

from bpfkit._records import record
from bpfkit.elf.file import (
    ELF_MAGIC,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    SHN_ABS,
    SHN_LORESERVE,
    SHN_UNDEF,
    SYM_SIZE,
    SectionType,
    SymbolBinding,
    SymbolType,
)
from bpfkit.errors import ElfError

ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PF_X = 1
STT_GNU_IFUNC = 10
"""STT_GNU_IFUNC (also named STT_LOOS): a function whose address a resolver picks at load time."""
STB_GNU_UNIQUE = 10
"""STB_GNU_UNIQUE (also named STB_LOOS): a global the dynamic linker keeps unique in the process."""
PHDR_SIZE = 56
SHDR_SIZE = 64

_ELF_TYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_ELF_TYPE_CODES = {v: k for k, v in _ELF_TYPES.items()}
# Symbol types a probe can go on, by their pyelftools-style names.
_CODE_TYPES = {int(SymbolType.FUNC): "STT_FUNC", STT_GNU_IFUNC: "STT_GNU_IFUNC"}
_BINDINGS = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK", STB_GNU_UNIQUE: "STB_GNU_UNIQUE"}
# Bindings of a definition visible outside its file, which a name means rather than a local (static) one.
_GLOBAL_BINDINGS = frozenset({int(SymbolBinding.GLOBAL), int(SymbolBinding.WEAK), STB_GNU_UNIQUE})
_GLOBAL_NAMES = frozenset(_BINDINGS[b] for b in _GLOBAL_BINDINGS)
# Symbol types worth symbolizing an address with.
_KINDS = {int(SymbolType.FUNC): "func", STT_GNU_IFUNC: "func", int(SymbolType.OBJECT): "object"}
_SYMTAB_TYPES = (int(SectionType.SYMTAB), int(SectionType.DYNSYM))
_NOBITS = int(SectionType.NOBITS)
_BIND_RANK = {int(SymbolBinding.GLOBAL): 0, int(SymbolBinding.WEAK): 1, int(SymbolBinding.LOCAL): 2}


@record
class Segment:
    """A PT_LOAD program header: file bytes [offset, offset+filesz) load at [vaddr, vaddr+memsz)."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int
    """p_flags: PF_X (1), PF_W (2), PF_R (4)."""

    @property
    def executable(self) -> bool:
        return bool(self.flags & PF_X)


@record
class ElfSymbol:
    """A code symbol found by name: `name` (without the @version), its address, size, type (STT_*)."""

    name: str
    address: int
    size: int
    type: str
    binding: str

    @property
    def is_global(self) -> bool:
        """A global, weak or GNU-unique definition (visible outside its file), not a local one."""
        return self.binding in _GLOBAL_NAMES


@record
class Symbol:
    """A named function or object at link-time virtual `address`, `size` bytes long (0: unknown)."""

    name: str
    address: int
    size: int
    kind: str = "func"
    binding: int = int(SymbolBinding.GLOBAL)

    @property
    def is_global(self) -> bool:
        """A global, weak or GNU-unique definition (visible outside its file), not a local one."""
        return self.binding in _GLOBAL_BINDINGS


_Definition = TypeVar("_Definition", ElfSymbol, Symbol)


def prefer_global(found: Iterable[_Definition]) -> list[_Definition]:
    """Of the definitions of one name, those the name means, in their order: the global ones (global,
    weak or GNU-unique binding) when there are any, else all of them (all local). A global definition
    wins over local (static) ones of the same name, which are private to their object file; the one rule
    for uprobe placement (`ElfImage.symbol`) and for uaddr() (`ElfImage.definition`)."""
    found = list(found)
    return [s for s in found if s.is_global] or found


@record
class SymbolSection:
    """One symbol table section's raw entries and its string table, searched without decoding."""

    entries: bytes
    strings: bytes
    byteorder: str = "<"
    """The `struct` byte order of the file: ``<`` (ELFDATA2LSB) or ``>``."""

    def find(self, name: str) -> list[ElfSymbol]:
        """The defined code symbols called `name` (or `name@version`)."""
        key = name.encode()
        strings = self.strings
        # One backward scan for `key`, kept where a NUL or "@" follows. Backward because bytes.rfind
        # skips ahead on the needle's first byte, which in a string table is rare, where find skips on
        # its last, which for "name\0" is the most common byte of the table (3-4x slower on libc).
        ends: dict[int, list[int]] = {0: [], ord("@"): []}
        after = len(key)
        pos = strings.rfind(key)
        while pos >= 0:
            hits = ends.get(strings[pos + after]) if pos + after < len(strings) else None
            if hits is not None:
                hits.append(pos)
            end = pos + after - 1  # the next match starts before `pos` (matches may overlap)
            pos = strings.rfind(key, 0, end) if end >= 0 else -1
        out: list[ElfSymbol] = []
        for hits in ends.values():  # names ending in NUL first, then versioned ones; each in file order
            for str_off in reversed(hits):
                out.extend(self._with_name_at(str_off, name))
        return out

    def _with_name_at(self, str_off: int, name: str) -> list[ElfSymbol]:
        packed = struct.pack(self.byteorder + "I", str_off)
        entries = self.entries
        found = []
        pos = entries.rfind(packed)  # backward, as in `find`: st_name's low byte is the rare one
        while pos >= 0:
            if pos % SYM_SIZE == 0:
                sym = self._decode(pos, name)
                if sym is not None:
                    found.append(sym)
            pos = entries.rfind(packed, 0, pos + 3)
        found.reverse()
        return found

    def _decode(self, pos: int, name: str) -> ElfSymbol | None:
        _, info, _other, shndx, value, size = struct.unpack_from(self.byteorder + "IBBHQQ", self.entries, pos)
        stype = _CODE_TYPES.get(info & 0xF)
        if stype is None or shndx == SHN_UNDEF:
            return None
        return ElfSymbol(name, value, size, stype, _BINDINGS.get(info >> 4, str(info >> 4)))

    def names(self) -> Iterator[str]:
        """The names (without versions) of every defined code symbol."""
        entries = struct.iter_unpack(self.byteorder + "IBBHQQ", self.entries)
        for name_off, info, _other, shndx, _v, _s in entries:
            if (info & 0xF) in _CODE_TYPES and shndx != SHN_UNDEF and name_off:
                end = self.strings.find(b"\0", name_off)
                yield self.strings[name_off:end].decode(errors="replace").split("@", 1)[0]

    def symbols(self, where: str) -> Iterator[Symbol]:
        """Every named function and object symbol with a non-zero address, for symbolization (`where`,
        the file, names it in errors)."""
        strings = self.strings
        for index, (st_name, st_info, _other, st_shndx, st_value, st_size) in enumerate(
                struct.iter_unpack(self.byteorder + "IBBHQQ", self.entries)):
            kind = _KINDS.get(st_info & 0xF)
            if kind is None or st_shndx == SHN_UNDEF or st_value == 0 or not st_name:
                continue
            if st_shndx >= SHN_LORESERVE and st_shndx != SHN_ABS:
                continue
            end = strings.find(b"\0", st_name)
            if st_name >= len(strings) or end < 0:
                raise ElfError(f"symbol {index}: name offset {st_name} is outside its string table",
                               where=where)
            name = strings[st_name:end].decode("utf-8", "replace")
            yield Symbol(name, st_value, st_size, kind, st_info >> 4)


@record
class ElfImage:
    """What uprobe placement and symbolization need to know about one ELF file."""

    path: str
    elf_type: str
    """``ET_EXEC`` (non-PIE executable) or ``ET_DYN`` (PIE executable, shared library)."""
    segments: tuple[Segment, ...]
    symtabs: tuple[SymbolSection, ...]
    """.symtab (complete) before .dynsym (exported only)."""
    sections: dict[str, tuple[int, int, int]]
    """Section name -> (address, file offset, size)."""

    @property
    def pie(self) -> bool:
        return self.elf_type == "ET_DYN"

    def offset_of(self, address: int) -> int:
        """The file offset of virtual `address` (ElfError if no loadable segment maps it)."""
        for seg in self.segments:
            if seg.vaddr <= address < seg.vaddr + max(seg.memsz, 1):
                return address - seg.vaddr + seg.offset
        raise ElfError(f"{self.path}: address {address:#x} is in no loadable segment")

    def address_of(self, offset: int) -> int:
        """The virtual address that file `offset` is loaded at."""
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + max(seg.filesz, 1):
                return offset - seg.offset + seg.vaddr
        raise ElfError(f"{self.path}: file offset {offset:#x} is in no loadable segment")

    def lookup(self, name: str) -> list[ElfSymbol]:
        """Every defined code symbol called `name` in .symtab and .dynsym (duplicates removed)."""
        seen: set[tuple[int, str]] = set()
        out = []
        for table in self.symtabs:
            for sym in table.find(name):
                if (sym.address, sym.binding) not in seen:
                    seen.add((sym.address, sym.binding))
                    out.append(sym)
        return out

    def symbol_names(self) -> set[str]:
        """The names of every defined code symbol (decodes the whole tables: for glob patterns)."""
        return {n for table in self.symtabs for n in table.names()}

    def symbol(self, name: str) -> ElfSymbol:
        """The code symbol `name` (``malloc`` or ``malloc@@GLIBC_2.2.5``); a global definition wins over
        local ones; ElfError naming the file when missing or ambiguous."""
        base = name.split("@", 1)[0]
        found = [s for s in self.lookup(base) if s.address]
        if not found:
            raise ElfError(f"{self.path}: no symbol {name!r} (stripped, or not defined in this file)")
        addrs = {s.address for s in found}
        if len(addrs) > 1:
            winners = {s.address for s in prefer_global(found)}
            if len(winners) > 1:
                listing = ", ".join(f"{a:#x}" for a in sorted(addrs))
                raise ElfError(f"{self.path}: symbol {name!r} is ambiguous (at {listing}); "
                               "give an address or offset")
            addrs = winners
        return next(s for s in found if s.address in addrs)

    def definition(self, name: str, kinds: Collection[str] = ("func", "object")) -> Symbol | None:
        """The symbol called `name` (or ``name@version``) of a kind in `kinds` (``func``, ``object``): the
        first global definition, else the first local one (never ambiguous, unlike `symbol`); None when
        there is none. Decodes the whole tables (ElfError on a malformed one)."""
        found = [s for table in self.symtabs for s in table.symbols(self.path)
                 if s.kind in kinds and s.name.split("@", 1)[0] == name]
        winners = prefer_global(found)
        return winners[0] if winners else None

    def symbol_offset(self, name: str) -> int:
        """The file offset of code symbol `name`, with an optional ``+0x10`` suffix added."""
        base, plus, extra = name.partition("+")
        try:
            add = int(extra, 0) if plus else 0
        except ValueError:
            raise ElfError(f"{self.path}: bad offset {extra!r} in {name!r}") from None
        return self.offset_of(self.symbol(base).address + add)


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
    def from_image(cls, image: ElfImage) -> SymbolTable:
        """Decode every function and object symbol of `image`."""
        elf_type = _ELF_TYPE_CODES.get(image.elf_type)
        symbols = [s for table in image.symtabs for s in table.symbols(image.path)]
        return cls(symbols, image.segments, elf_type=int(image.elf_type) if elf_type is None else elf_type,
                   name=image.path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SymbolTable:
        """Read the symbols of the ELF file at `path` (not cached: `read_image` is)."""
        name = os.fspath(path)
        try:
            with open(name, "rb") as f:
                image = _parse(f, os.fstat(f.fileno()).st_size, name)
        except OSError as e:
            raise ElfError(f"cannot read {name}: {e.strerror}", where=name) from None
        return cls.from_image(image)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> SymbolTable:
        """Read the symbols of the ELF file `data` (`name` is used in errors)."""
        return cls.from_image(_parse(data, len(data), name))


def read_image(path: str | os.PathLike[str]) -> ElfImage:
    """The `ElfImage` of the file at `path` (cached while the file is unchanged)."""
    p = os.fsdecode(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise ElfError(f"{p}: {e.strerror}") from None
    return _read(p, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int) -> ElfImage:
    try:
        with open(path, "rb") as f:
            return _parse(f, size, path)
    except OSError as e:
        raise ElfError(f"{path}: {e.strerror}") from None


def image_from_bytes(data: bytes, name: str = "<bytes>") -> ElfImage:
    """The `ElfImage` of ELF file `data` (`name` is used in errors)."""
    return _parse(data, len(data), name)


def _entries(fmt: str, size: int, table: bytes, entsize: int) -> list[tuple[int, ...]]:
    """The fixed-size entries (`size` bytes, `fmt`) of a header table whose entries are `entsize` bytes
    (larger is allowed: the tail of each is skipped)."""
    if entsize == size:
        return list(struct.iter_unpack(fmt, table))  # the usual case: one C loop
    st = struct.Struct(fmt)
    return [st.unpack_from(table, i) for i in range(0, len(table), entsize)]


def _parse(src: BinaryIO | bytes, file_size: int, path: str) -> ElfImage:
    """Read the headers, segments, section names and symbol tables of ELF64 file `src` (an open file or
    its bytes) of `file_size` bytes."""

    def read(offset: int, size: int, what: str) -> bytes:
        if offset + size > file_size:  # checked first: no seek or allocation for a wild header value
            raise ElfError(f"{what} ({size} bytes at {offset:#x}) runs past the end of the file", offset,
                           where=path)
        if isinstance(src, bytes):
            data = src[offset:offset + size]
        else:
            src.seek(offset)
            data = src.read(size)
        if len(data) != size:  # the file shrank while being read
            raise ElfError(f"{what} ({size} bytes at {offset:#x}) runs past the end of the file", offset,
                           where=path)
        return data

    ident = src[:64] if isinstance(src, bytes) else src.read(64)
    if len(ident) < 4 or ident[:4] != ELF_MAGIC:
        raise ElfError("not a usable ELF file (bad magic or too short)", 0, where=path)
    if len(ident) < 64 or ident[4] != ELFCLASS64:
        raise ElfError("not an ELF64 file (only 64-bit objects are supported)", 4, where=path)
    if ident[5] not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ElfError(f"bad ELF data encoding {ident[5]}", 5, where=path)
    bo = "<" if ident[5] == ELFDATA2LSB else ">"
    (e_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize,
     shnum, shstrndx) = struct.unpack_from(bo + "HHIQQQIHHHHHH", ident, 16)
    segs = []
    if phnum:
        if phentsize < PHDR_SIZE:
            raise ElfError(f"program header size {phentsize}, expected {PHDR_SIZE}", 0x36, where=path)
        table = read(phoff, phnum * phentsize, "program headers")
        for p_type, p_flags, p_off, p_vaddr, _pa, p_filesz, p_memsz, _al in _entries(
                bo + "IIQQQQQQ", PHDR_SIZE, table, phentsize):
            if p_type == PT_LOAD:
                segs.append(Segment(p_vaddr, p_memsz, p_off, p_filesz, p_flags))
    sections: dict[str, tuple[int, int, int]] = {}
    symtabs: list[SymbolSection] = []
    if shoff and shnum:
        if shentsize < SHDR_SIZE:
            raise ElfError(f"section header size {shentsize}, expected {SHDR_SIZE}", 0x3A, where=path)
        table = read(shoff, shnum * shentsize, "section headers")
        raw = _entries(bo + "IIQQQQIIQQ", SHDR_SIZE, table, shentsize)
        names = b""
        if 0 < shstrndx < shnum:
            hdr = raw[shstrndx]
            names = read(hdr[4], hdr[5], "section names")
        for name_off, stype, _fl, addr, off, sz, link, _info, _al, _es in raw:
            end = names.find(b"\0", name_off)
            sections.setdefault(names[name_off:end].decode(errors="replace"), (addr, off, sz))
            if stype in _SYMTAB_TYPES and sz and link < shnum:
                strhdr = raw[link]
                if strhdr[1] == _NOBITS:
                    continue
                entries = read(off, sz - sz % SYM_SIZE, "symbol table")
                strings = read(strhdr[4], strhdr[5], "string table")
                symtabs.append(SymbolSection(entries, strings, bo))
    symtabs.sort(key=lambda t: -len(t.entries))  # .symtab (complete) before .dynsym (exported only)
    return ElfImage(path, _ELF_TYPES.get(e_type, str(e_type)), tuple(segs), tuple(symtabs), sections)
