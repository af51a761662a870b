"""Helpers the JIT runs as native code, without the round trip through Python's helper dispatcher.

`fast_helpers` gives the compiler's emitters (`Compiler.natives`, via `natives.native_helpers`): for a
call it can handle, an emitter writes a fast path that leaves r0 set, and jumps to the compiler's slow
label (the ordinary call into Python) whenever a case is not the simple one. A call site is
handled only when the program's helper is the VM's own implementation (a helper a user replaced always
runs in Python). Handled:

  * bpf_map_lookup_elem / bpf_map_update_elem on a map known at the call site (r1 loaded by an LD_IMM64
    of a map earlier in the same basic block, `blockfacts`: r1 is that map on every path) whose type
    has a native index (`bpfkit.vm.jit.mapindex`: ARRAY, PERCPU_ARRAY, HASH, PERCPU_HASH). The key (and
    the value of an update) must lie in the current stack frame, where it can be read without a check
    (checked at run time unless `blockfacts` shows the pointer is r10 plus a constant inside the
    frame); a lookup
    returns only value addresses whose region the JIT's region table knows. An update is native for
    flags BPF_ANY / BPF_EXIST on an existing element and answers -EEXIST, -ENOENT and -E2BIG as the
    map would; inserting a new key and every other case go to Python.
  * bpf_ktime_get_ns, bpf_ktime_get_coarse_ns: libc's clock_gettime(CLOCK_MONOTONIC) called from native
    code (`native_clock`), when the VM reads the host's monotonic clock (a VM given a `clock` keeps the
    Python helpers); bpf_ktime_get_boot_ns: clock_gettime(CLOCK_BOOTTIME), always.
  * bpf_get_prandom_u32: SplitMix64 on the VM's `Prandom` state word (`bpfkit.vm.prandom`).
  * bpf_get_smp_processor_id: the run's CPU.

Per-run facts (CPU, where the PRNG state is, whether the clock is real) live in a `NativeBlock` per JIT
runtime, filled by `NativeRuntime.prepare` before each run.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable

from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import MAX_BPF_STACK
from bpfkit.vm import helpers
from bpfkit.vm.jit.blockfacts import frame_offset, static_map_address
from bpfkit.vm.jit.compile import Compiler, NativeHelper
from bpfkit.vm.jit.mapindex import (
    HASH_MUL,
    KEY_WORDS_MAX,
    ArrayIndex,
    HashDesc,
    HashIndex,
    MapIndex,
    index_for,
)
from bpfkit.vm.jit.native_clock import CLOCK_BOOTTIME, CLOCK_MONOTONIC, COARSE_TICK_NS, emit_clock_ns
from bpfkit.vm.jit.x86 import Alu, Asm, Cond, Gp, Label, Mem, Shift
from bpfkit.vm.maps import VmMap, map_by_address
from bpfkit.vm.memory import AddressSpace
from bpfkit.vm.prandom import GAMMA, M1, M2, Prandom
from bpfkit.vm.program import LoadedProgram, Step
from bpfkit.vm.runtime import RunState

BPF_NOEXIST = 1
BPF_EXIST = 2
COPY_UNROLL = 64
"""Values up to this many bytes are copied with unrolled moves, longer ones with rep movsb."""


class NativeBlock(ctypes.Structure):
    """Per-VM facts native helpers read; one per JIT runtime, at a fixed address."""

    _fields_ = [
        ("cpu", ctypes.c_uint64),  # rt.cpu of the run
        ("cpu_bit", ctypes.c_uint64),  # 2 << cpu: the cpu's "mapped" bit in a hash slot's meta word
        ("cpu_off", ctypes.c_uint64),  # 8 * cpu: offset of the cpu's value address in a slot
        ("prandom", ctypes.c_uint64),  # address of the VM's PRNG state word, 0 if it has none
        ("real_clock", ctypes.c_uint64),  # 1 when ktime reads the host's CLOCK_MONOTONIC
    ]


def _nb(name: str) -> int:
    return int(getattr(NativeBlock, name).offset)


class NativeRuntime:
    """The native-helper state of one VM (JIT runtime)."""

    def __init__(self, mem: AddressSpace) -> None:
        self.mem = mem
        self.block = NativeBlock()
        self.address = ctypes.addressof(self.block)

    def prepare(self, rt: RunState) -> bytes:
        """Copy the run's CPU, PRNG and clock into the block (before native code runs); returns what it
        held, for `restore` when the run ends (a run nested in a helper of another run of this VM)."""
        saved = bytes(self.block)
        block, cpu = self.block, rt.cpu
        block.cpu = cpu
        block.cpu_bit = 2 << cpu if 0 <= cpu < 62 else 0
        block.cpu_off = 8 * cpu
        prandom = getattr(rt.host, "prandom", None)
        block.prandom = prandom.address if isinstance(prandom, Prandom) else 0
        block.real_clock = 1 if getattr(rt.host, "real_clock", False) is True else 0
        return saved

    def restore(self, saved: bytes) -> None:
        ctypes.memmove(self.address, saved, len(saved))


Emitter = Callable[[Asm, Label, Label], None]
"""Emits a fast path: (asm, fallback, out). It jumps to `out` with r0 set, or to `fallback` with r1-r5
untouched."""


def fast_runtime(runtime: object) -> NativeRuntime:
    """The `NativeRuntime` of a JIT runtime (`JitRuntime`), made on first use and kept on it."""
    natives = getattr(runtime, "_bpfkit_fastcalls", None)
    if not isinstance(natives, NativeRuntime):
        host = getattr(runtime, "host", None)
        mem = getattr(host, "mem", None)
        if not isinstance(mem, AddressSpace):
            raise TypeError("fast_runtime needs a JitRuntime")
        natives = NativeRuntime(mem)
        runtime._bpfkit_fastcalls = natives  # type: ignore[attr-defined]
    return natives


def fast_helpers(loaded: LoadedProgram, runtime: object, keep: list[object]) -> dict[int, NativeHelper]:
    """Helper id -> native emitter (`Compiler.natives`) for the helpers of `loaded` this module runs
    natively: those whose implementation is still the VM's own."""
    fast = FastHelpers(fast_runtime(runtime), loaded)
    keep.append(fast)
    own = (helpers.map_lookup_elem, helpers.map_update_elem, helpers.ktime_get_ns,
           helpers.ktime_get_boot_ns, helpers.ktime_get_coarse_ns, helpers.get_prandom_u32,
           helpers.get_smp_processor_id)
    return {hid: fast for hid, fn in loaded.helpers.items() if any(fn is f for f in own)}


class FastHelpers:
    """A `NativeHelper` for one compilation: `self(compiler, step, slow)` emits the native form of the
    helper call at `step` and returns True, or emits nothing and returns False. `sites` records the
    call sites compiled natively (slot -> helper name)."""

    def __init__(self, natives: NativeRuntime, program: LoadedProgram) -> None:
        self.natives = natives
        self.program = program
        self.sites: dict[int, str] = {}
        self.keep: list[object] = []
        """Indexes whose addresses the code embeds (the maps keep them too)."""
        self._frame: dict[Gp, int | None] = {}
        """r2 and r3 at the map call being compiled: r10 + this constant, or None (unknown)."""

    def __call__(self, c: Compiler, step: Step, slow: Label) -> bool:
        if step.kind is not Kind.CALL or step.insn.src != 0:
            return False
        fn = self.program.helpers.get(step.insn.imm)
        emitter: Emitter | None = None
        if fn is helpers.ktime_get_ns:
            emitter = self._ktime
        elif fn is helpers.ktime_get_coarse_ns:
            emitter = self._ktime_coarse
        elif fn is helpers.ktime_get_boot_ns:
            emitter = self._ktime_boot
        elif fn is helpers.get_prandom_u32:
            emitter = self._prandom
        elif fn is helpers.get_smp_processor_id:
            emitter = self._cpu
        elif fn is helpers.map_lookup_elem or fn is helpers.map_update_elem:
            found = self._static_map(c, step.slot)
            if found is not None:
                emitter = self._map_emitter(found[0], found[1], fn is helpers.map_lookup_elem)
        if emitter is None:
            return False
        out = Label(f"fast.out.{step.slot}")
        emitter(c.a, slow, out)
        c.a.bind(out)
        self.sites[step.slot] = getattr(fn, "__name__", "")
        return True

    # -- which map ------------------------------------------------------------------------------
    def _static_map(self, c: Compiler, pc: int) -> tuple[VmMap, MapIndex] | None:
        """The map r1 holds at the call at `pc` (`blockfacts.static_map_address`), with its index;
        notes which of r2 (key) and r3 (update value) are known stack slots (`_frame`)."""
        steps, leaders = self.program.steps, c.fn.leaders
        address = static_map_address(steps, leaders, pc)
        vm_map = map_by_address(self.natives.mem, address) if address is not None else None
        index = index_for(vm_map) if vm_map is not None else None
        if vm_map is None or index is None:
            return None
        self.keep.append(index)
        self._frame = {Gp.RSI: frame_offset(steps, leaders, pc, 2),
                       Gp.RDX: frame_offset(steps, leaders, pc, 3)}
        return vm_map, index

    def _map_emitter(self, vm_map: VmMap, index: MapIndex, lookup: bool) -> Emitter | None:
        vs = vm_map.value_size
        if not lookup and (vs > MAX_BPF_STACK or vm_map.readonly_prog):
            return None  # a value that cannot be in the frame never takes the fast path
        if isinstance(index, ArrayIndex):
            return lambda a, fb, out: self._array(a, fb, out, vm_map, index, lookup)
        return lambda a, fb, out: self._hash(a, fb, out, vm_map, index, lookup)

    # -- pieces -----------------------------------------------------------------------------------
    def _in_frame(self, a: Asm, reg: Gp, size: int, fallback: Label) -> None:
        """Fall back unless [reg, reg + size) lies in the current stack frame [r10 - 512, r10) (nothing
        to emit when the call site shows reg is r10 plus a constant that places it there)."""
        known = self._frame.get(reg)
        if known is not None and -MAX_BPF_STACK <= known and known + size <= 0:
            return
        a.lea(Gp.R10, Mem(Gp.RBP, -MAX_BPF_STACK))
        a.mov(Gp.R11, reg)
        a.alu(Alu.SUB, Gp.R11, Gp.R10)
        a.alu(Alu.CMP, Gp.R11, MAX_BPF_STACK - size)
        a.jcc(Cond.A, fallback)

    def _check_cpu(self, a: Asm, copies: int, fallback: Label) -> None:
        a.mov(Gp.R11, self.natives.address)
        a.alu(Alu.CMP, Mem(Gp.R11, _nb("cpu")), copies)
        a.jcc(Cond.AE, fallback)

    @staticmethod
    def _copy(a: Asm, dst: Gp, src: Gp, size: int) -> None:
        """Copy `size` bytes from [src] to [dst] (clobbers r10; rep movsb saves what it uses)."""
        if size > COPY_UNROLL:
            for reg in (Gp.RDI, Gp.RSI, Gp.RCX):
                a.push(reg)
            a.mov(Gp.R10, src)
            a.mov(Gp.RDI, dst)
            a.mov(Gp.RSI, Gp.R10)
            a.mov(Gp.RCX, size, 32)
            a.raw(b"\xf3\xa4")  # rep movsb
            for reg in (Gp.RCX, Gp.RSI, Gp.RDI):
                a.pop(reg)
            return
        off = 0
        for piece in (8, 4, 2, 1):
            while size - off >= piece:
                a.mov(Gp.R10, Mem(src, off), piece * 8)
                a.mov(Mem(dst, off), Gp.R10, piece * 8)
                off += piece

    @staticmethod
    def _key_word(a: Asm, dst: Gp, tmp: Gp, base: Gp, key_size: int, i: int) -> None:
        """dst = word i of the key at [base] (little-endian, zero-padded), reading only key bytes."""
        start = 8 * i
        n = min(8, key_size - start)
        if n == 8:
            a.mov(dst, Mem(base, start))
            return
        if key_size >= 8:  # the 8 bytes ending at the key's end, shifted down
            a.mov(dst, Mem(base, key_size - 8))
            a.shift(Shift.SHR, dst, 8 * (8 - n))
            return
        off = 0
        for piece in (4, 2, 1):
            if n - off < piece:
                continue
            reg = dst if off == 0 else tmp
            m = Mem(base, start + off)
            if piece == 4:
                a.mov(reg, m, 32)
            else:
                a.movzx(reg, m, piece * 8)
            if off:
                a.shift(Shift.SHL, tmp, 8 * off)
                a.alu(Alu.OR, dst, tmp)
            off += piece

    # -- time, randomness, cpu --------------------------------------------------------------------
    def _cpu(self, a: Asm, fallback: Label, out: Label) -> None:
        a.mov(Gp.R11, self.natives.address)
        a.mov(Gp.RAX, Mem(Gp.R11, _nb("cpu")))
        a.jmp(out)

    def _prandom(self, a: Asm, fallback: Label, out: Label) -> None:
        a.mov(Gp.R11, self.natives.address)
        a.mov(Gp.R11, Mem(Gp.R11, _nb("prandom")))
        a.test(Gp.R11, Gp.R11)
        a.jcc(Cond.E, fallback)
        a.mov(Gp.R10, GAMMA)
        a.mov(Gp.RAX, Mem(Gp.R11))
        a.alu(Alu.ADD, Gp.RAX, Gp.R10)
        a.mov(Mem(Gp.R11), Gp.RAX)
        for shift, mul in ((30, M1), (27, M2)):
            a.mov(Gp.R10, Gp.RAX)
            a.shift(Shift.SHR, Gp.R10, shift)
            a.alu(Alu.XOR, Gp.RAX, Gp.R10)
            a.mov(Gp.R10, mul)
            a.imul(Gp.RAX, Gp.R10)
        a.mov(Gp.R10, Gp.RAX)
        a.shift(Shift.SHR, Gp.R10, 31)
        a.alu(Alu.XOR, Gp.RAX, Gp.R10)
        a.shift(Shift.SHR, Gp.RAX, 32)
        a.jmp(out)

    def _ktime(self, a: Asm, fallback: Label, out: Label, tick: int = 0) -> None:
        a.mov(Gp.R11, self.natives.address)
        a.alu(Alu.CMP, Mem(Gp.R11, _nb("real_clock")), 0)
        a.jcc(Cond.E, fallback)  # the VM's own clock: Python
        emit_clock_ns(a, CLOCK_MONOTONIC, fallback, tick=tick)
        a.jmp(out)

    def _ktime_coarse(self, a: Asm, fallback: Label, out: Label) -> None:
        self._ktime(a, fallback, out, COARSE_TICK_NS)

    def _ktime_boot(self, a: Asm, fallback: Label, out: Label) -> None:
        emit_clock_ns(a, CLOCK_BOOTTIME, fallback)
        a.jmp(out)

    # -- arrays -----------------------------------------------------------------------------------
    def _array(self, a: Asm, fallback: Label, out: Label, vm_map: VmMap, index: ArrayIndex,
               lookup: bool) -> None:
        """r0 = &element[key] of the run's CPU (lookup), or write the value there (update)."""
        vs, copies, entries = vm_map.value_size, index.copies, index.max_entries
        per_cpu = copies > 1 or vm_map.per_cpu
        e2big, eexist, miss = Label("array.e2big"), Label("array.eexist"), Label("array.miss")
        self._in_frame(a, Gp.RSI, 4, fallback)
        if not lookup:
            self._in_frame(a, Gp.RDX, vs, fallback)
            a.alu(Alu.CMP, Gp.RCX, BPF_EXIST)
            a.jcc(Cond.A, fallback)  # BPF_F_LOCK and invalid flags: Python
        if per_cpu:
            self._check_cpu(a, copies, fallback)
        a.mov(Gp.RAX, Mem(Gp.RSI), 32)
        a.alu(Alu.CMP, Gp.RAX, entries, 32)
        a.jcc(Cond.AE, miss if lookup else e2big)
        if lookup:  # only elements whose value region is mapped (known to the region table)
            a.mov(Gp.R11, index.mapped_address)
            if per_cpu:
                a.mov(Gp.R10, self.natives.address)
                a.imul_imm(Gp.R10, Mem(Gp.R10, _nb("cpu")), entries)
                a.alu(Alu.ADD, Gp.R11, Gp.R10)
            a.alu(Alu.CMP, Mem(Gp.R11, 0, Gp.RAX), 0, 8)
            a.jcc(Cond.E, fallback)
        else:
            a.alu(Alu.CMP, Gp.RCX, BPF_NOEXIST)
            a.jcc(Cond.E, eexist)
        if vs & (vs - 1):
            a.imul_imm(Gp.RAX, Gp.RAX, vs)
        elif vs > 1:
            a.shift(Shift.SHL, Gp.RAX, vs.bit_length() - 1)
        if per_cpu:
            a.mov(Gp.R11, self.natives.address)
            a.mov(Gp.R10, Mem(Gp.R11, _nb("cpu_off")))
            a.mov(Gp.R11, index.bases_address)
            a.alu(Alu.ADD, Gp.RAX, Mem(Gp.R11, 0, Gp.R10))
        else:
            a.mov(Gp.R11, int(index.bases[0]))
            a.alu(Alu.ADD, Gp.RAX, Gp.R11)
        if lookup:
            a.jmp(out)
            a.bind(miss)
            a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
            a.jmp(out)
            return
        self._copy(a, Gp.RAX, Gp.RDX, vs)
        a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
        a.jmp(out)
        a.bind(e2big)
        a.mov(Gp.RAX, -errno.E2BIG)
        a.jmp(out)
        a.bind(eexist)
        a.mov(Gp.RAX, -errno.EEXIST)
        a.jmp(out)

    # -- hash maps --------------------------------------------------------------------------------
    def _hash(self, a: Asm, fallback: Label, out: Label, vm_map: VmMap, index: HashIndex,
              lookup: bool) -> None:
        """Probe the index for the key at r2: r0 = its value address (lookup) or copy the value at r3
        over it (update)."""
        ks, kw, vs = index.key_size, index.key_words, vm_map.value_size
        per_cpu = vm_map.per_cpu
        desc = index.desc_address
        key_at, table_at, mask_at = (int(getattr(HashDesc, f).offset) for f in ("key", "table", "mask"))
        probe, nxt, missing = Label("hash.probe"), Label("hash.next"), Label("hash.missing")
        assert kw <= KEY_WORDS_MAX
        self._in_frame(a, Gp.RSI, ks, fallback)
        if not lookup:
            self._in_frame(a, Gp.RDX, vs, fallback)
            a.alu(Alu.CMP, Gp.RCX, BPF_EXIST)
            a.jcc(Cond.A, fallback)
        if per_cpu:
            self._check_cpu(a, index.copies, fallback)
        # h = hash of the key words (mapindex.key_hash); the words go to desc.key for the compares.
        a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
        a.mov(Gp.R11, desc)
        for i in range(kw):
            self._key_word(a, Gp.R10, Gp.R9, Gp.RSI, ks, i)
            a.mov(Mem(Gp.R11, key_at + 8 * i), Gp.R10)
            a.alu(Alu.XOR, Gp.RAX, Gp.R10)
            a.mov(Gp.R10, HASH_MUL)
            a.imul(Gp.RAX, Gp.R10)
            a.mov(Gp.R10, Gp.RAX)
            a.shift(Shift.SHR, Gp.R10, 32)
            a.alu(Alu.XOR, Gp.RAX, Gp.R10)
        a.mov(Gp.R9, Gp.RAX)
        a.jmp(probe)
        a.bind(nxt)
        a.inc(Gp.R9)
        a.bind(probe)  # r9 = slot index, r10 = slot address, r11 = desc
        a.alu(Alu.AND, Gp.R9, Mem(Gp.R11, mask_at))
        a.imul_imm(Gp.R10, Gp.R9, 8 * index.slot_words)
        a.alu(Alu.ADD, Gp.R10, Mem(Gp.R11, table_at))
        a.alu(Alu.CMP, Mem(Gp.R10), 0)
        a.jcc(Cond.E, missing)
        for i in range(kw):
            a.mov(Gp.RAX, Mem(Gp.R11, key_at + 8 * i))
            a.alu(Alu.CMP, Gp.RAX, Mem(Gp.R10, 8 + 8 * i))
            a.jcc(Cond.NE, nxt)
        # found: r10 = the slot
        if lookup:
            if per_cpu:
                a.mov(Gp.R11, self.natives.address)
                a.mov(Gp.R9, Mem(Gp.R11, _nb("cpu_bit")))
                a.test(Mem(Gp.R10), Gp.R9)
                a.jcc(Cond.E, fallback)  # its value region is not mapped yet: Python maps it
                a.mov(Gp.R9, Mem(Gp.R11, _nb("cpu_off")))
                a.mov(Gp.RAX, Mem(Gp.R10, index.values_at, Gp.R9))
            else:
                a.test(Mem(Gp.R10), 2, 8)
                a.jcc(Cond.E, fallback)
                a.mov(Gp.RAX, Mem(Gp.R10, index.values_at))
            a.jmp(out)
            a.bind(missing)
            a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
            a.jmp(out)
            return
        eexist = Label("hash.eexist")
        a.alu(Alu.CMP, Gp.RCX, BPF_NOEXIST)
        a.jcc(Cond.E, eexist)
        if per_cpu:
            a.mov(Gp.R11, self.natives.address)
            a.mov(Gp.R9, Mem(Gp.R11, _nb("cpu_off")))
            a.mov(Gp.RAX, Mem(Gp.R10, index.values_at, Gp.R9))
        else:
            a.mov(Gp.RAX, Mem(Gp.R10, index.values_at))
        self._copy(a, Gp.RAX, Gp.RDX, vs)
        a.alu(Alu.XOR, Gp.RAX, Gp.RAX, 32)
        a.jmp(out)
        a.bind(eexist)
        a.mov(Gp.RAX, -errno.EEXIST)
        a.jmp(out)
        a.bind(missing)  # a new key: BPF_EXIST fails here, anything else inserts in Python
        a.alu(Alu.CMP, Gp.RCX, BPF_EXIST)
        a.jcc(Cond.NE, fallback)
        a.mov(Gp.RAX, -errno.ENOENT)
        a.jmp(out)
