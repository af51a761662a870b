"""Stack traces from a BPF_MAP_TYPE_STACK_TRACE map (bpf_get_stackid), printed with symbols.

A stack map's value is an array of u64 instruction pointers, innermost first, ending at the first 0
(or at the map's value size / 8 frames). `format_stack` names each frame with any symbolizer that has
``resolve(addr)`` (`bpfkit.kernel.ksyms.KernelSymbols`, `bpfkit.kernel.usyms.ProcessSymbols`), trying
them in order; unresolved frames print as hex.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Protocol


class Symbolizer(Protocol):
    def resolve(self, addr: int) -> object | None: ...


def read_stack(stack_map: Any, stack_id: int) -> list[int]:
    """The instruction pointers stored under `stack_id` (a non-negative bpf_get_stackid result)."""
    raw = bytes(stack_map.lookup(stack_id))
    addrs = [a for (a,) in struct.iter_unpack("=Q", raw[:len(raw) // 8 * 8])]
    n = addrs.index(0) if 0 in addrs else len(addrs)
    return addrs[:n]


def format_stack(addrs: Iterable[int], *symbolizers: Symbolizer, indent: str = "    ") -> str:
    """One line per frame, like bpftrace's ``kstack``/``ustack``: ``<indent>name+0xoff [module]``."""
    lines = []
    for addr in addrs:
        if addr == 0:
            break
        name: object | None = None
        for s in symbolizers:
            try:
                name = s.resolve(addr)
            except Exception:  # a symbolizer that cannot (hidden kallsyms): try the next, then hex
                name = None
            if name is not None:
                break
        lines.append(f"{indent}{name if name is not None else hex(addr)}")
    return "\n".join(lines)
