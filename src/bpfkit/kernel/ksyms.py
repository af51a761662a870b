"""Kernel symbols from /proc/kallsyms: address -> function+offset [module], name -> address.

Without root (or with kernel.kptr_restrict=2) the kernel prints every address as 0: `KernelSymbols`
then reports `restricted` and `resolve` raises `KernelError` saying so, rather than naming every
address after the first symbol. The table is sorted once; each lookup is a binary search.
"""

from __future__ import annotations

import bisect
import errno as _errno
from collections.abc import Iterable

from bpfkit._records import record
from bpfkit.errors import KernelError

KALLSYMS = "/proc/kallsyms"
MAX_OFFSET = 1 << 20
"""kallsyms has no sizes: an address further than this past the nearest symbol is left unnamed (it lies
in a gap such as JIT memory or a module area, not in a 1 MiB function)."""
TEXT_TYPES = frozenset("tTwW")
"""kallsyms type letters of code (text, weak): the symbols a stack frame can be in."""


@record
class KernelSymbol:
    """A resolved address: `name` + `offset`, in `module` ("" for vmlinux)."""

    name: str
    offset: int
    module: str = ""

    def __str__(self) -> str:
        text = f"{self.name}+{self.offset:#x}" if self.offset else self.name
        return f"{text} [{self.module}]" if self.module else text


def parse_kallsyms(lines: Iterable[str], types: frozenset[str] | None = TEXT_TYPES
                   ) -> list[tuple[int, str, str]]:
    """``(address, name, module)`` of each line ``<hex address> <type> <name>[\\t[module]]`` whose type
    letter is in `types` (None: every symbol), sorted by address."""
    out: list[tuple[int, str, str]] = []
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        if types is not None and parts[1] not in types:
            continue
        try:
            addr = int(parts[0], 16)
        except ValueError:
            continue
        module = parts[3][1:-1] if len(parts) > 3 and parts[3].startswith("[") else ""
        out.append((addr, parts[2], module))
    out.sort()
    return out


class KernelSymbols:
    """The kernel's code symbols. `load()` reads /proc/kallsyms; `resolve(addr)` names an address."""

    def __init__(self, entries: list[tuple[int, str, str]]) -> None:
        self._addrs = [a for a, _, _ in entries]
        self._names = [n for _, n, _ in entries]
        self._modules = [m for _, _, m in entries]
        self._by_name: dict[str, int] | None = None
        self.restricted = bool(entries) and self._addrs[-1] == 0
        """True when the kernel hid the addresses (all 0): not root, or kptr_restrict."""

    @classmethod
    def load(cls, path: str = KALLSYMS, *, types: frozenset[str] | None = TEXT_TYPES) -> KernelSymbols:
        """Read `path` (default /proc/kallsyms), keeping symbols of `types` (None: all)."""
        try:
            with open(path) as f:
                return cls(parse_kallsyms(f, types))
        except OSError as e:
            raise KernelError(f"read({path})", e.errno or _errno.EIO) from None

    def __len__(self) -> int:
        return len(self._addrs)

    def _require_addresses(self) -> None:
        if self.restricted:
            raise KernelError("kallsyms", _errno.EPERM, "the kernel shows every symbol address as 0: run as "
                                                        "root (and with kernel.kptr_restrict < 2)")

    def resolve(self, addr: int) -> KernelSymbol | None:
        """The symbol `addr` falls in (the nearest one at or below it, within `MAX_OFFSET`), or None."""
        self._require_addresses()
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0 or addr - self._addrs[i] >= MAX_OFFSET:
            return None
        return KernelSymbol(self._names[i], addr - self._addrs[i], self._modules[i])

    def address(self, name: str) -> int:
        """The address of symbol `name` (the first, if several share it); KeyError when unknown."""
        self._require_addresses()
        if self._by_name is None:
            self._by_name = {}
            for a, n in zip(self._addrs, self._names, strict=True):
                self._by_name.setdefault(n, a)
        return self._by_name[name]
