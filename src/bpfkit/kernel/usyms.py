"""User-space symbols of a process: /proc/PID/maps plus the ELF symbols of each mapped file.

A runtime address is found in its mapping, turned into a file offset (``addr - start + offset``), then
into the file's link-time address through its PT_LOAD segments (`bpfkit.elf.symbols`), which takes care
of the load bias of position-independent executables and shared libraries alike. Files are read through
``/proc/PID/root`` so processes in other mount namespaces resolve too. Anonymous memory, JIT code and
the vDSO resolve to None.
"""

from __future__ import annotations

import bisect
import errno as _errno
import os
from collections.abc import Iterable

from bpfkit._records import record
from bpfkit.elf.symbols import SymbolTable
from bpfkit.errors import ElfError, KernelError


@record
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str

    @property
    def is_file(self) -> bool:
        return self.inode != 0 and self.path.startswith("/")


@record
class UserSymbol:
    """A resolved address: `name` + `offset` in the file `module` (a path)."""

    name: str
    offset: int
    module: str

    def __str__(self) -> str:
        text = f"{self.name}+{self.offset:#x}" if self.offset else self.name
        return f"{text} [{os.path.basename(self.module)}]"


def parse_maps(lines: Iterable[str]) -> list[Mapping]:
    """The mappings of /proc/PID/maps text, in address order."""
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            lo, _, hi = parts[0].partition("-")
            out.append(Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), int(parts[4]),
                               parts[5].rstrip("\n") if len(parts) > 5 else ""))
        except ValueError:
            continue
    out.sort(key=lambda m: m.start)
    return out


class ProcessSymbols:
    """Symbolizer for the addresses of process `pid` (default: this process).

    The memory map is read at creation (`refresh()` re-reads it after the process loaded libraries);
    each file's symbol table is read once, when an address first falls in it.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self._tables: dict[str, SymbolTable | None] = {}
        self.mappings: list[Mapping] = []
        self._starts: list[int] = []
        self.refresh()

    def refresh(self) -> None:
        path = f"/proc/{self.pid}/maps"
        try:
            with open(path) as f:
                self.mappings = parse_maps(f)
        except OSError as e:
            raise KernelError(f"read({path})", e.errno or _errno.ESRCH,
                              f"cannot read the memory map of process {self.pid}") from None
        self._starts = [m.start for m in self.mappings]

    def mapping(self, addr: int) -> Mapping | None:
        """The mapping holding `addr`, or None."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def table(self, path: str) -> SymbolTable | None:
        """The symbol table of mapped file `path` (None when it cannot be read as ELF64)."""
        if path not in self._tables:
            try:
                self._tables[path] = SymbolTable.load(f"/proc/{self.pid}/root{path}")
            except ElfError:
                self._tables[path] = None
        return self._tables[path]

    def resolve(self, addr: int) -> UserSymbol | None:
        """The function (or object) `addr` falls in, or None."""
        m = self.mapping(addr)
        if m is None or not m.is_file:
            return None
        table = self.table(m.path)
        if table is None:
            return None
        vaddr = table.vaddr_of_offset(addr - m.start + m.offset)
        if vaddr is None:
            return None
        found = table.lookup(vaddr)
        if found is None:
            return None
        sym, off = found
        return UserSymbol(sym.name, off, m.path)

    def address(self, name: str, module: str) -> int:
        """The runtime address of symbol `name` in the mapped file whose path ends with `module`."""
        for m in self.mappings:
            if not (m.is_file and (m.path == module or m.path.endswith("/" + module))):
                continue
            table = self.table(m.path)
            if table is None:
                continue
            vaddr = table.address_of(name)
            for seg in table.segments:
                if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                    file_off = seg.offset + (vaddr - seg.vaddr)
                    for mm in self.mappings:
                        if mm.path == m.path and mm.offset <= file_off < mm.offset + (mm.end - mm.start):
                            return mm.start + (file_off - mm.offset)
        raise KeyError(f"{name} in {module}")
