"""Ring buffer helpers in native code: bpf_ringbuf_reserve, _submit, _discard and _output work on the
ring's memory (`RingbufMap.pos` and `.data`, the kernel's layout) without calling Python.

Only for programs bpfkit's verifier accepted (`JitOptions.verified`): native submit trusts that r1 is a
record the program reserved and did not release, and native output that [r2, r2 + r3) is readable,
which is what the verifier proved. Reservation follows the kernel's __bpf_ringbuf_reserve (NULL for
flags, for a record that cannot fit, and when the producer would be a full ring ahead of the
consumer). A natively reserved record is not a VM region: accesses the verifier proved run unchecked,
and when native code hands the record to Python (a helper argument, a checked access) the host memory
asks `RingbufMap.region_for` for a region, which marks the header (pg_off bit 31) so that its commit
goes through Python and unmaps the region. Native commits find the ring through pg_off, as the kernel
does, to count its busy records (a run that ends with none skips the walk that discards leftovers).
The call sites dispatch on r1 among the ring buffers the program loads; any other map goes to the
Python helper, which reports it.
"""

from __future__ import annotations

import ctypes
import errno
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from bpfkit.uapi.enums import Helper, RingbufHeader
from bpfkit.vm.jit.compile import Compiler, NativeHelper
from bpfkit.vm.jit.natives_common import imm64, program_maps
from bpfkit.vm.jit.x86 import Alu, Cond, Gp, Label, Mem, Shift
from bpfkit.vm.maps import RINGBUF_HEAD, RINGBUF_REGION, RingbufMap
from bpfkit.vm.program import LoadedProgram, Step

if TYPE_CHECKING:
    from bpfkit.vm.jit.runner import JitRuntime

MAX_NATIVE_RING = 1 << 30
"""Rings larger than this keep the Python helpers (their sizes and masks must fit an imm32)."""
BUSY = int(RingbufHeader.BUSY_BIT)
DISCARD = int(RingbufHeader.DISCARD_BIT)


class _Ring:
    """A ring buffer's memory pinned for native code: addresses of its positions and data."""

    def __init__(self, ring: RingbufMap) -> None:
        self.ring = ring
        self._area = (ctypes.c_char * len(ring.area)).from_buffer(ring.area)
        self.pos = ctypes.addressof(self._area)
        self.data = self.pos + RINGBUF_HEAD

    def resolve(self, addr: int) -> int | None:
        """The fake address of the record whose data is at host address `addr` (see `region_for`)."""
        off = addr - self.data
        if not 0 <= off < len(self.ring.data):
            return None
        return self.ring.region_for(off)


_RINGS: weakref.WeakKeyDictionary[JitRuntime, dict[int, _Ring]] = weakref.WeakKeyDictionary()


def _pinned(runtime: JitRuntime, ring: RingbufMap) -> _Ring:
    """The one pinning of `ring` in `runtime`'s VM (registered with its host memory as a resolver)."""
    rings = _RINGS.setdefault(runtime, {})
    pinned = rings.get(id(ring))
    if pinned is None or pinned.ring is not ring:
        pinned = rings[id(ring)] = _Ring(ring)
        runtime.host.resolvers.append(pinned.resolve)
    return pinned


def ringbuf_helpers(loaded: LoadedProgram, runtime: JitRuntime,
                    keep: list[object]) -> dict[int, NativeHelper]:
    """Native ring buffer helpers for a verified `loaded` (reserve and output only for the rings it
    loads; submit and discard for any record)."""
    rings = [_pinned(runtime, m) for m in program_maps(loaded, runtime.host.mem, RingbufMap)
             if m.max_entries <= MAX_NATIVE_RING]
    keep.extend(rings)

    def reserve(c: Compiler, step: Step, slow: Label) -> bool:
        return _dispatch(c, rings, slow, _reserve)

    def output(c: Compiler, step: Step, slow: Label) -> bool:
        return _dispatch(c, rings, slow, _output)

    def submit(c: Compiler, step: Step, slow: Label) -> bool:
        _commit(c, slow, discard=False)
        return True

    def discard(c: Compiler, step: Step, slow: Label) -> bool:
        _commit(c, slow, discard=True)
        return True

    out: dict[int, NativeHelper] = {int(Helper.RINGBUF_SUBMIT): submit,
                                    int(Helper.RINGBUF_DISCARD): discard}
    if rings:
        out[int(Helper.RINGBUF_RESERVE)] = reserve
        out[int(Helper.RINGBUF_OUTPUT)] = output
    return out


def _dispatch(c: Compiler, rings: list[_Ring], slow: Label,
              body: Callable[[Compiler, _Ring, Label], None]) -> bool:
    """Compare r1 with each ring's map address and run `body` for the one it is."""
    a = c.a
    done = Label("rb.done")
    labels = [Label(f"rb.ring{i}") for i in range(len(rings))]
    for ring, label in zip(rings, labels, strict=True):
        a.mov(Gp.R11, imm64(ring.ring.address))
        a.alu(Alu.CMP, Gp.RDI, Gp.R11)
        a.jcc(Cond.E, label)
    a.jmp(slow)
    for ring, label in zip(rings, labels, strict=True):
        a.bind(label)
        body(c, ring, done)
    a.bind(done)
    return True


def _claim(c: Compiler, ring: _Ring, size: Gp, full: Label) -> None:
    """Reserve a record of `size` bytes (a register other than r9-r11 and rax): r11 = its header's
    host address, producer advanced, pg_off written; `full` when it does not fit. Clobbers rax, r9,
    r10."""
    a = c.a
    size_limit = ring.ring.max_entries - 8  # round_up(size + 8, 8) > ring size <=> size > ring size - 8
    a.alu(Alu.CMP, size, size_limit)
    a.jcc(Cond.A, full)
    a.lea(Gp.R10, Mem(size, 15))
    a.alu(Alu.AND, Gp.R10, -8)  # the record's footprint: header + data, rounded up to 8
    a.mov(Gp.R9, imm64(ring.pos))
    a.mov(Gp.R11, Mem(Gp.R9, 8))  # producer
    a.lea(Gp.RAX, Mem(Gp.R11, 0, Gp.R10))
    a.mov(Gp.R10, Gp.RAX)  # the new producer
    a.alu(Alu.SUB, Gp.RAX, Mem(Gp.R9))  # new producer - consumer
    a.alu(Alu.CMP, Gp.RAX, ring.ring.mask)
    a.jcc(Cond.A, full)
    a.mov(Mem(Gp.R9, 8), Gp.R10)
    a.alu(Alu.AND, Gp.R11, ring.ring.mask)
    a.lea(Gp.R10, Mem(Gp.R11, RINGBUF_HEAD))
    a.shift(Shift.SHR, Gp.R10, 3)  # pg_off: the header's offset in the ring's area, in 8-byte units
    a.mov(Gp.R9, imm64(ring.data))
    a.alu(Alu.ADD, Gp.R11, Gp.R9)
    a.mov(Mem(Gp.R11, 4), Gp.R10, 32)


def _reserve(c: Compiler, ring: _Ring, done: Label) -> None:
    """r0 = bpf_ringbuf_reserve(r1 = ring, r2 = size, r3 = flags): the record (header BUSY) or NULL."""
    a = c.a
    null = Label("rb.null")
    a.test(Gp.RDX, Gp.RDX)
    a.jcc(Cond.NE, null)  # the kernel refuses any flag
    _claim(c, ring, Gp.RSI, null)
    a.mov(Gp.RAX, Gp.RSI, 32)
    a.alu(Alu.OR, Gp.RAX, BUSY, 32)
    a.mov(Mem(Gp.R11), Gp.RAX, 32)
    a.mov(Gp.R9, imm64(ring.pos))
    a.inc(Mem(Gp.R9, 16))  # records reserved and not committed
    a.lea(Gp.RAX, Mem(Gp.R11, 8))
    a.jmp(done)
    a.bind(null)
    a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
    a.jmp(done)


def _output(c: Compiler, ring: _Ring, done: Label) -> None:
    """r0 = bpf_ringbuf_output(r1 = ring, r2 = data, r3 = size, r4 = flags): 0, -EINVAL or -EAGAIN."""
    a = c.a
    einval, eagain = Label("rb.einval"), Label("rb.eagain")
    a.test(Gp.RCX, ~3)
    a.jcc(Cond.NE, einval)  # only BPF_RB_NO_WAKEUP / BPF_RB_FORCE_WAKEUP
    _claim(c, ring, Gp.RDX, eagain)
    for reg in (Gp.RDI, Gp.RSI, Gp.RCX):
        a.push(reg)
    a.lea(Gp.RDI, Mem(Gp.R11, 8))
    a.mov(Gp.RCX, Gp.RDX)
    a.raw(b"\xf3\xa4")  # rep movsb: [rdi] <- [rsi], rcx bytes
    for reg in (Gp.RCX, Gp.RSI, Gp.RDI):
        a.pop(reg)
    a.mov(Mem(Gp.R11), Gp.RDX, 32)  # committed at once (no BUSY bit)
    a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
    a.jmp(done)
    a.bind(einval)
    a.mov(Gp.RAX, -errno.EINVAL)
    a.jmp(done)
    a.bind(eagain)
    a.mov(Gp.RAX, -errno.EAGAIN)
    a.jmp(done)


def _commit(c: Compiler, slow: Label, *, discard: bool) -> None:
    """bpf_ringbuf_submit/discard(r1 = record): clear BUSY (set DISCARD), count one busy record less
    in the ring found through pg_off; r0 = 0. A record with a VM region (pg_off bit 31) or not busy
    goes to Python."""
    a = c.a
    a.mov(Gp.R10, Mem(Gp.RDI, -4), 32)  # pg_off
    a.test(Gp.R10, RINGBUF_REGION, 32)
    a.jcc(Cond.NE, slow)
    a.mov(Gp.RAX, Mem(Gp.RDI, -8), 32)
    a.test(Gp.RAX, BUSY, 32)
    a.jcc(Cond.E, slow)
    a.alu(Alu.AND, Gp.RAX, ~BUSY & 0xFFFFFFFF, 32)
    if discard:
        a.alu(Alu.OR, Gp.RAX, DISCARD, 32)
    a.mov(Mem(Gp.RDI, -8), Gp.RAX, 32)
    a.shift(Shift.SHL, Gp.R10, 3)
    a.lea(Gp.R11, Mem(Gp.RDI, -8))
    a.alu(Alu.SUB, Gp.R11, Gp.R10)  # the ring's area: its positions, then the busy count
    a.dec(Mem(Gp.R11, 16))
    a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
