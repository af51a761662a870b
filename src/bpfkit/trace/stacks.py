"""Symbolized text of the stacks that ``kstack``/``ustack`` recorded, as bpftrace prints them.

A frame prints as ``    name+offset`` (offset in decimal, omitted when 0), unresolved frames as hex;
kernel symbols come from /proc/kallsyms, user symbols from the recorded process's mappings (read
while it still runs: a process that has exited leaves hex addresses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfkit.errors import BpfkitError
from bpfkit.kernel.stacks import read_stack
from bpfkit.lang.types import Kind
from bpfkit.trace.output import hex_address

if TYPE_CHECKING:
    from bpfkit.kernel.ksyms import KernelSymbols
    from bpfkit.kernel.usyms import ProcessSymbols


class StackResolver:
    """Callable (kind, stack id, pid) -> text, over the script's stack trace maps."""

    def __init__(self, kernel_map: Any = None, user_map: Any = None) -> None:
        self.kernel_map = kernel_map
        self.user_map = user_map
        self._ksyms: KernelSymbols | None = None
        self._procs: dict[int, ProcessSymbols | None] = {}
        self._cache: dict[tuple[Kind, int, int, str], str] = {}

    def _kernel(self) -> KernelSymbols | None:
        if self._ksyms is None:
            from bpfkit.kernel.ksyms import KernelSymbols

            try:
                self._ksyms = KernelSymbols.load()
            except (BpfkitError, OSError):
                return None
        return self._ksyms

    def _process(self, pid: int) -> ProcessSymbols | None:
        if pid not in self._procs:
            from bpfkit.kernel.usyms import ProcessSymbols  # here: it pulls in the ELF reader

            try:
                self._procs[pid] = ProcessSymbols(pid)
            except (BpfkitError, OSError):
                self._procs[pid] = None
        return self._procs[pid]

    def __call__(self, kind: Kind, stack_id: int, pid: int, mode: str = "") -> str:
        key = (kind, stack_id, pid if kind in (Kind.USTACK, Kind.USYM) else 0, mode)
        if key not in self._cache:
            self._cache[key] = self._text(kind, stack_id, pid, mode)
        return self._cache[key]

    def _symbol(self, kind: Kind, addr: int, pid: int) -> str:
        """ksym()/usym(): the function name alone, as bpftrace prints it (hex when unknown)."""
        addr &= (1 << 64) - 1
        symbols = self._kernel() if kind is Kind.KSYM else self._process(pid)
        try:
            sym = symbols.resolve(addr) if symbols is not None else None
        except (BpfkitError, OSError):
            sym = None
        return sym.name if sym is not None else hex_address(addr)

    def _text(self, kind: Kind, stack_id: int, pid: int, mode: str = "") -> str:
        if kind in (Kind.KSYM, Kind.USYM):
            return self._symbol(kind, stack_id, pid)
        stack_map = self.kernel_map if kind is Kind.KSTACK else self.user_map
        if stack_id < 0 or stack_map is None:
            return "\n"
        try:
            addrs = read_stack(stack_map, stack_id)
        except (BpfkitError, OSError, KeyError):
            return "\n"
        symbols = self._kernel() if kind is Kind.KSTACK else self._process(pid)
        lines = []
        for addr in addrs:
            sym = None
            if symbols is not None:
                try:
                    sym = symbols.resolve(addr)
                except (BpfkitError, OSError):
                    sym = None
            offset = getattr(sym, "offset", 0) if sym is not None else 0
            name = (f"{sym.name}+{offset}" if offset else sym.name) if sym is not None else None
            if mode == "perf" and kind is Kind.USTACK:  # tab, hex address, symbol+offset (file)
                where = getattr(sym, "module", "") or "[unknown]"
                text = f"{sym.name}+{offset}" if sym is not None else f"{addr:#x}"
                lines.append(f"\t{addr:x} {text} ({where})")
            elif mode == "perf":  # perf's layout: tab, bare hex address, symbol
                lines.append(f"\t{addr:x} {name or '[unknown]'}")
            else:
                lines.append(f"    {name or hex(addr)}")
        return "\n" + "".join(line + "\n" for line in lines)
