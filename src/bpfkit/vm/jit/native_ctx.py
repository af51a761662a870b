"""Which context loads a JIT run may do without a bounds check.

bpfkit's verifier lists, in `VerifierResult.ctx_loads`, the loads that every path made through the
unmodified context pointer at the instruction's offset (a field the program type may read). Such a load
reads plain bytes of the VM's context buffer unless it touches a field the VM computes on load: the
packet pointers of `struct xdp_md` and `struct __sk_buff` (the kernel's convert_ctx_access rewrites,
done by the context's load hook) and `__sk_buff.len`. The rest can be a plain `mov` from r1's real
address, and the data and data_end pointers come from the run block's packet window, provided the
run's context is the kind the program was verified for (the VM checks that for runs and tail calls)
and its buffer covers the load (a tracing context is as long as the caller made it, so this is
decided per run).
"""

from __future__ import annotations

from collections.abc import Collection

from bpfkit.isa.opcodes import Kind
from bpfkit.vm.context import (
    SKB_FIELDS,
    XDP_DATA,
    XDP_DATA_END,
    XDP_DATA_META,
    RawContext,
    SkbContext,
    XdpContext,
)
from bpfkit.vm.program import LoadedProgram
from bpfkit.vm.runtime import U64, RunState

_SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_LDX_W = 0x61
"""BPF_LDX | BPF_MEM | BPF_W: how the verifier lets a program read a packet pointer field."""

_COMPUTED: dict[type, tuple[tuple[int, int], ...]] = {
    XdpContext: tuple((off, off + 4) for off in (XDP_DATA, XDP_DATA_END, XDP_DATA_META)),
    SkbContext: tuple((off, off + size) for off, size in
                      (SKB_FIELDS[name] for name in ("len", "data", "data_end", "data_meta"))),
    RawContext: (),
}
"""Byte ranges of each context whose loads the VM computes (never read as plain bytes)."""


def plain_ctx_loads(loaded: LoadedProgram, slots: Collection[int], rt: RunState | None) -> frozenset[int]:
    """The slots among `slots` (verified context loads) that read plain bytes of `rt`'s context."""
    if not slots or rt is None:
        return frozenset()
    computed = _COMPUTED.get(type(rt.context))
    region = rt.mem.region_of(rt.ctx)
    if computed is None or region is None or region.base != rt.ctx & U64:
        return frozenset()
    if type(rt.context) is RawContext and (region.load_hook is not None or region.store_hook is not None):
        return frozenset()
    size = len(region.buf)
    out = set()
    for slot in slots:
        step = loaded.steps[slot] if 0 <= slot < loaded.nslots else None
        if step is None or step.kind is not Kind.LDX:
            continue
        off, width = step.insn.off, _SIZE[step.insn.opcode & 0x18]
        if off < 0 or off + width > size:
            continue  # this run's context is shorter than the load: keep the check (it faults)
        if any(lo < off + width and off < hi for lo, hi in computed):
            continue
        out.add(slot)
    return frozenset(out)


_PACKET_POINTERS: dict[type, dict[int, bool]] = {
    XdpContext: {XDP_DATA: False, XDP_DATA_END: True},
    SkbContext: {SKB_FIELDS["data"][0]: False, SKB_FIELDS["data_end"][0]: True},
}
"""Offsets of each context's packet data (False) and data_end (True) pointers."""


def packet_pointer_loads(loaded: LoadedProgram, slots: Collection[int],
                         rt: RunState | None) -> dict[int, bool]:
    """The slots among `slots` (verified context loads) that load the packet's data (False) or
    data_end (True) pointer of `rt`'s context: native code reads them from the run block's packet
    window (`RunBlock.pkt_data`, `pkt_len`, kept in step with the packet by every resync)."""
    if not slots or rt is None:
        return {}
    pointers = _PACKET_POINTERS.get(type(rt.context))
    if pointers is None or rt.packet is None or rt.packet is not getattr(rt.context, "packet", None):
        return {}
    out = {}
    for slot in slots:
        step = loaded.steps[slot] if 0 <= slot < loaded.nslots else None
        if step is None or step.kind is not Kind.LDX or step.insn.opcode != _LDX_W:
            continue
        end = pointers.get(step.insn.off)
        if end is not None:
            out[slot] = end
    return out
