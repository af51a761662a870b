"""Where to put a uprobe: ELF symbols and addresses of executables and shared libraries as file offsets.

The uprobe PMU wants a file offset. A symbol's value is a virtual address (for PIE executables and
shared libraries relative to the load base, for non-PIE executables absolute); the loadable segment
holding it maps it back: offset = address - p_vaddr + p_offset.

Reading is hand-written for the fixed ELF64 layouts (System V gABI): only the headers and the symbol and
string tables are read, and a name is found by searching the string table for it and the symbol table
for that string offset (both searches in C), so finding ``malloc`` in libc takes well under a millisecond
where decoding every symbol with pyelftools takes about 100 ms. pyelftools is the oracle in the tests.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bpfkit.errors import ElfError

# Symbol types a probe can go on: STT_FUNC, STT_GNU_IFUNC (also named STT_LOOS).
_CODE_TYPES = {2: "STT_FUNC", 10: "STT_GNU_IFUNC"}
_BINDINGS = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK", 10: "STB_GNU_UNIQUE"}
_ELF_TYPES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_SHT_SYMTAB, _SHT_DYNSYM, _SHT_NOBITS = 2, 11, 8
_PT_LOAD = 1
_SYM_SIZE = 24

LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib")
"""Where `find_binary` looks for a bare library name (after LD_LIBRARY_PATH)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A PT_LOAD program header: file range and virtual address range."""

    vaddr: int
    memsz: int
    offset: int
    filesz: int
    executable: bool


@dataclass(frozen=True, slots=True)
class ElfSymbol:
    """A symbol: `name` (without the @version), its address, size and type (STT_*)."""

    name: str
    address: int
    size: int
    type: str
    binding: str


@dataclass(frozen=True, slots=True)
class SymbolTable:
    """A symbol table's raw entries and its string table (little-endian ELF64)."""

    entries: bytes
    strings: bytes

    def find(self, name: str) -> list[ElfSymbol]:
        """The defined code symbols called `name` (or `name@version`)."""
        key = name.encode()
        out: list[ElfSymbol] = []
        for end in (b"\0", b"@"):
            needle = key + end
            pos = self.strings.find(needle)
            while pos >= 0:
                out.extend(self._with_name_at(pos, name))
                pos = self.strings.find(needle, pos + 1)
        return out

    def _with_name_at(self, str_off: int, name: str) -> Iterator[ElfSymbol]:
        packed = struct.pack("<I", str_off)
        pos = self.entries.find(packed)
        while pos >= 0:
            if pos % _SYM_SIZE == 0:
                sym = self._decode(pos, name)
                if sym is not None:
                    yield sym
            pos = self.entries.find(packed, pos + 1)

    def _decode(self, pos: int, name: str) -> ElfSymbol | None:
        _, info, _other, shndx, value, size = struct.unpack_from("<IBBHQQ", self.entries, pos)
        stype = _CODE_TYPES.get(info & 0xF)
        if stype is None or shndx == 0:
            return None
        return ElfSymbol(name, value, size, stype, _BINDINGS.get(info >> 4, str(info >> 4)))

    def names(self) -> Iterator[str]:
        """The names (without versions) of every defined code symbol."""
        for name_off, info, _other, shndx, _v, _s in struct.iter_unpack("<IBBHQQ", self.entries):
            if (info & 0xF) in _CODE_TYPES and shndx != 0 and name_off:
                end = self.strings.find(b"\0", name_off)
                yield self.strings[name_off:end].decode(errors="replace").split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class ElfImage:
    """What uprobe placement needs to know about one ELF file."""

    path: str
    elf_type: str
    """``ET_EXEC`` (non-PIE executable) or ``ET_DYN`` (PIE executable, shared library)."""
    segments: tuple[Segment, ...]
    symtabs: tuple[SymbolTable, ...]
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
            glob = {s.address for s in found if s.binding in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE")}
            if len(glob) == 1:
                addrs = glob
            else:
                listing = ", ".join(f"{a:#x}" for a in sorted(addrs))
                raise ElfError(f"{self.path}: symbol {name!r} is ambiguous (at {listing}); "
                               "give an address or offset")
        return next(s for s in found if s.address in addrs)

    def symbol_offset(self, name: str) -> int:
        """The file offset of code symbol `name`, with an optional ``+0x10`` suffix added."""
        base, plus, extra = name.partition("+")
        try:
            add = int(extra, 0) if plus else 0
        except ValueError:
            raise ElfError(f"{self.path}: bad offset {extra!r} in {name!r}") from None
        return self.offset_of(self.symbol(base).address + add)


def _read_at(f: BinaryIO, offset: int, size: int, path: str, what: str) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError(f"{path}: {what} ({size} bytes at {offset:#x}) runs past the end of the file", offset)
    return data


@functools.lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int) -> ElfImage:
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF":
                raise ElfError(f"{path}: not a usable ELF file (bad magic or too short)", 0)
            if ident[4] != 2 or ident[5] != 1:
                raise ElfError(f"{path}: only little-endian 64-bit ELF files are supported", 4)
            (e_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize,
             shnum, shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", ident, 16)
            segs = []
            if phnum:
                if phentsize != 56:
                    raise ElfError(f"{path}: program header size {phentsize}, expected 56", 0x36)
                table = _read_at(f, phoff, phnum * 56, path, "program headers")
                for p_type, p_flags, p_off, p_vaddr, _pa, p_filesz, p_memsz, _al in struct.iter_unpack(
                        "<IIQQQQQQ", table):
                    if p_type == _PT_LOAD:
                        segs.append(Segment(p_vaddr, p_memsz, p_off, p_filesz, bool(p_flags & 1)))
            sections: dict[str, tuple[int, int, int]] = {}
            symtabs: list[SymbolTable] = []
            if shoff and shnum:
                if shentsize != 64:
                    raise ElfError(f"{path}: section header size {shentsize}, expected 64", 0x3A)
                raw = list(struct.iter_unpack("<IIQQQQIIQQ", _read_at(f, shoff, shnum * 64, path,
                                                                       "section headers")))
                names = b""
                if 0 < shstrndx < shnum:
                    hdr = raw[shstrndx]
                    names = _read_at(f, hdr[4], hdr[5], path, "section names")
                for name_off, stype, _fl, addr, off, sz, link, _info, _al, _es in raw:
                    end = names.find(b"\0", name_off)
                    sections.setdefault(names[name_off:end].decode(errors="replace"), (addr, off, sz))
                    if stype in (_SHT_SYMTAB, _SHT_DYNSYM) and sz and link < shnum:
                        strhdr = raw[link]
                        if strhdr[1] == _SHT_NOBITS:
                            continue
                        entries = _read_at(f, off, sz - sz % _SYM_SIZE, path, "symbol table")
                        strings = _read_at(f, strhdr[4], strhdr[5], path, "string table")
                        symtabs.append(SymbolTable(entries, strings))
            # .symtab (complete) before .dynsym (exported only)
            symtabs.sort(key=lambda t: -len(t.entries))
            return ElfImage(path, _ELF_TYPES.get(e_type, str(e_type)), tuple(segs), tuple(symtabs), sections)
    except OSError as e:
        raise ElfError(f"{path}: {e.strerror}") from None


def read_image(path: str | os.PathLike[str]) -> ElfImage:
    """The `ElfImage` of the file at `path` (cached while the file is unchanged)."""
    p = os.fsdecode(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise ElfError(f"{p}: {e.strerror}") from None
    return _read(p, st.st_mtime_ns, st.st_size)


def _maps_paths(pid: int) -> Iterator[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    yield parts[5].rstrip("\n")
    except OSError:
        return


def _is_elf(path: Path) -> bool:
    """A regular ELF file (not a linker script such as /usr/lib/x86_64-linux-gnu/libc.so)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_binary(name: str, pid: int | None = None) -> str:
    """The path of executable or library `name`: a path is taken as it is; a bare name is looked up in
    the process `pid`'s mappings (``libc`` matches ``libc.so.6``), LD_LIBRARY_PATH, the library
    directories, then PATH."""
    if "/" in name:
        if not os.path.isfile(name):
            raise ElfError(f"{name}: no such file")
        return os.path.realpath(name)
    if pid is not None:
        for path in _maps_paths(pid):
            base = os.path.basename(path)
            if base == name or base.startswith(name + ".") or base.startswith(name + "-"):
                return path
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d] + list(LIBRARY_DIRS)
    candidates = [name] if ".so" in name else [name, f"{name}.so", f"lib{name}.so"]
    for d in dirs:
        for c in candidates:
            p = Path(d) / c
            if _is_elf(p):
                return os.path.realpath(p)
        if ".so" not in name:
            try:
                for entry in sorted(os.listdir(d)):
                    if entry.startswith((f"{name}.so.", f"lib{name}.so.")) and _is_elf(Path(d) / entry):
                        return os.path.realpath(Path(d) / entry)
            except OSError:
                continue
    exe = shutil.which(name)
    if exe:
        return os.path.realpath(exe)
    raise ElfError(f"cannot find {name!r} (not a path, library or program on PATH)")
