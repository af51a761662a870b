"""Memory access checks: loads and stores through every pointer type, and memory passed to helpers.

The rules are the kernel's check_mem_access and its per-type helpers (check_stack_read/write,
check_map_access, check_packet_access, check_ctx_access, check_mem_region_access): an access must lie
inside the object for every value the pointer may hold; stack bytes must be written before they are
read; an 8-byte aligned store of a register to the stack keeps the register's type (a spill) and the
matching load gives it back (a fill). Stack accesses at a variable offset (a bounded index) must fit
the stack and stay aligned for every index, and a read must find every byte it may touch written
(check_stack_read/write_var_off). Loads through kernel objects and BTF-typed contexts are in `btfmem`.
bpfkit refuses reads of uninitialised stack even where a privileged kernel allows them (see
tests/data/verifier/disagreements.py).
"""

from __future__ import annotations

from bpfkit._records import replace
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import MAX_BPF_STACK
from bpfkit.vm.verifier import btfmem, ctxaccess, lsm
from bpfkit.vm.verifier.env import MAX_VAR_OFF, Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.ranges import S64_MIN, Bounds, of_size, s64, sext, truncate
from bpfkit.vm.verifier.state import (
    SLOT,
    Byte,
    Frame,
    Reg,
    RegType,
    StackSlot,
    State,
    const,
    pointer,
    scalar,
)
from bpfkit.vm.verifier.tnum import U64, Tnum

_NULL_HINT = ("check the pointer returned by {what} against NULL (`if r{regno} == 0 goto ...`) before "
              "dereferencing it")


def loaded_value(size: int, signed: bool) -> Reg:
    """An unknown value read from memory: zero- or sign-extended from `size` bytes."""
    b = of_size(size)
    return scalar(sext(b, size) if signed and size < 8 else b)


def _fixed(reg: Reg) -> int | None:
    """The pointer's whole offset when its variable part is a constant."""
    if not reg.b.is_const:
        return None
    return reg.off + s64(reg.b.value)


def null_hint(regno: int, reg: Reg) -> str:
    """What to do about a pointer that may still be NULL."""
    origin = "bpf_map_lookup_elem"
    if reg.ringbuf:
        origin = "bpf_ringbuf_reserve"
    elif reg.type is RegType.BTF_ID:
        origin = f"the context (a ptr_{reg.btf_name} argument)"
    return _NULL_HINT.format(what=origin, regno=regno)


def _bad_type(regno: int, reg: Reg) -> Refusal:
    if reg.maybe_null:
        return Refusal(-1, f"R{regno} invalid mem access '{reg.type_name()}'", null_hint(regno, reg))
    if reg.type is RegType.NOT_INIT:
        return Refusal(-1, f"R{regno} !read_ok", f"set r{regno} before using it as a pointer")
    if reg.type is RegType.SCALAR:
        return Refusal(-1, f"R{regno} invalid mem access 'scalar'",
                       f"r{regno} holds a number, not a pointer: load through a pointer the verifier "
                       f"knows (ctx, stack, a checked map value or packet pointer)")
    return Refusal(-1, f"R{regno} invalid mem access '{reg.type_name()}'",
                   f"a {reg.type_name()} pointer cannot be dereferenced")


# -- objects with a size: map values, ring buffer records, raw memory ---------------------------------
def check_region(regno: int, reg: Reg, off: int, size: int, mem_size: int, what: str) -> None:
    """Every byte of [off, off+size) from `reg` lies in [0, mem_size) (check_mem_region_access)."""
    off += reg.off
    b = reg.b
    if b.smin < 0 and (b.smin == S64_MIN or off + b.smin < 0):
        raise Refusal(-1, f"R{regno} min value is negative, either use unsigned index or do a "
                          f"if (index >=0) check.",
                      "bound the index from below (or make it unsigned) before adding it to the pointer")
    lo = off + b.smin
    if lo < 0 or lo + size > mem_size:
        raise Refusal(-1, f"invalid access to {what}, {_size_name(what)}={mem_size} off={lo} size={size}",
                      f"the access must stay inside the {mem_size} bytes of the {what}")
    if b.umax >= MAX_VAR_OFF:
        raise Refusal(-1, f"R{regno} unbounded memory access, make sure to bounds check any such access",
                      f"compare the index with the size of the {what} (`if rX > N goto ...`) first")
    if off + b.umax + size > mem_size:
        raise Refusal(-1, f"R{regno} max value is outside of the allowed memory range",
                      f"the access at offset up to {off + b.umax} + {size} bytes runs past the {mem_size} "
                      f"bytes of the {what}: tighten the bounds check on the index")


def _size_name(what: str) -> str:
    return "value_size" if what == "map value" else "mem_size"


# -- stack ----------------------------------------------------------------------------------------
def _stack_frame(st: State, reg: Reg) -> Frame:
    return st.frames[reg.frameno]


def stack_offset(regno: int, reg: Reg, off: int, size: int) -> int:
    """The fixed stack offset of an access (negative, from the frame pointer)."""
    base = _fixed(reg)
    if base is None:
        raise Refusal(-1, f"R{regno} variable stack access var_off={reg.b.var_off} off={off} size={size}",
                      "bpfkit's verifier supports stack accesses at constant offsets only: index an "
                      "array on the stack with a constant, or use a map value")
    total = base + off
    if total < -MAX_BPF_STACK or total + size > 0:
        raise Refusal(-1, f"invalid stack access R{regno} off={total} size={size}",
                      f"the stack is the {MAX_BPF_STACK} bytes below r10: use offsets from -512 to -1")
    if total % size:
        raise Refusal(-1, f"misaligned stack access off {total} size {size}",
                      f"a {size}-byte stack access must be at an offset that is a multiple of {size}")
    return total


def var_stack_range(regno: int, reg: Reg, off: int, size: int, what: str,
                    aligned: bool = True) -> tuple[int, int]:
    """[lo, hi): every stack byte an access of `size` bytes at `off` from `reg`, whose offset is
    variable, may touch (check_stack_access_within_bounds); refuses ranges outside the stack and
    accesses the variable part may misalign (stack accesses are always checked for alignment)."""
    b = reg.b
    fixed = reg.off + off
    vo = b.var_off.add(Tnum.const(fixed & U64))
    if aligned and size > 1 and not vo.is_aligned(size):
        raise Refusal(-1, f"misaligned stack access off {b.var_off}+{reg.off}+{off} size {size}",
                      f"the variable offset must keep a {size}-byte access aligned: mask or shift the "
                      f"index so it is a multiple of {size}")
    if b.smax >= MAX_VAR_OFF or b.smin <= -MAX_VAR_OFF:
        raise Refusal(-1, f"invalid unbounded variable-offset{what} stack R{regno}",
                      "bound the index on both sides before adding it to the stack pointer")
    lo, hi = fixed + b.smin, fixed + b.smax + size
    if lo < -MAX_BPF_STACK or hi > 0:
        raise Refusal(-1, f"invalid variable-offset{what} stack R{regno} var_off={b.var_off} off={off} "
                          f"size={size}",
                      f"the access may reach r10{lo:+d}..r10{hi:+d}: bound the index so it stays in the "
                      f"{MAX_BPF_STACK} bytes below r10")
    return lo, hi


def _var_stack_write(env: Env, st: State, regno: int, reg: Reg, off: int, size: int,
                     value: Reg | None) -> None:
    """A store at a variable stack offset (check_stack_write_var_off): any byte in range may be
    written, so none of them can keep a spilled register, and zero bytes stay zero only when zero
    is written. A spilled register in range is gone: its bytes in range become written bytes, the
    others unreadable (the kernel refuses to read them as a spill, "corrupted spill memory"). bpfkit
    never counts a byte never written before as initialised by such a store (the privileged kernel
    does) and refuses to store pointers this way."""
    if value is not None and value.is_pointer:
        raise Refusal(-1, "bpfkit's verifier does not store pointers at a variable stack offset",
                      "spill pointers at constant offsets from r10")
    lo, hi = var_stack_range(regno, reg, off, size, " write to")
    frame = _stack_frame(st, reg)
    env.touch_stack(frame.subprog, -lo)
    zero = value is not None and value.is_scalar and value.b.is_const and value.b.value == 0
    for s_i in range((-hi) // SLOT, (-lo - 1) // SLOT + 1):
        slot = frame.slot(s_i)
        kinds = list(slot.kinds)
        for b_i in range(SLOT):
            addr = -(s_i + 1) * SLOT + b_i
            if lo <= addr < hi:
                if kinds[b_i] is not Byte.INVALID:
                    kinds[b_i] = Byte.ZERO if zero and kinds[b_i] is Byte.ZERO else Byte.MISC
            elif kinds[b_i] is Byte.SPILL:
                kinds[b_i] = Byte.INVALID
        frame.stack[s_i] = StackSlot(tuple(kinds), None)


def _var_stack_check(st: State, regno: int, reg: Reg, lo: int, hi: int, clobber: bool, what: str,
                     hint: str) -> bool:
    """Every byte of [lo, hi) is initialised (check_stack_range_initialized); `clobber` (a helper
    writes them) makes them unknown. True if every byte is a written zero."""
    frame = _stack_frame(st, reg)
    zeros = True
    for s_i in range((-hi) // SLOT, (-lo - 1) // SLOT + 1):
        slot = frame.slot(s_i)
        kinds = list(slot.kinds)
        for b_i in range(SLOT):
            addr = -(s_i + 1) * SLOT + b_i
            if not lo <= addr < hi:
                continue
            if kinds[b_i] is Byte.INVALID:
                raise Refusal(-1, f"invalid variable-offset{what} stack R{regno} var_off={reg.b.var_off} "
                                  f"off={addr}", hint)
            zeros = zeros and kinds[b_i] is Byte.ZERO
        if clobber:
            touched = [lo <= -(s_i + 1) * SLOT + b_i < hi for b_i in range(SLOT)]
            if slot.spilled is not None:
                kinds = [Byte.MISC if k is Byte.SPILL else k for k in kinds]
            kinds = [Byte.MISC if t and k is Byte.ZERO else k for k, t in zip(kinds, touched, strict=True)]
            frame.stack[s_i] = StackSlot(tuple(kinds), None)
    return zeros


def _var_stack_read(env: Env, st: State, regno: int, reg: Reg, off: int, size: int, signed: bool) -> Reg:
    """A load at a variable stack offset (check_stack_read_var_off): every byte it may read must be
    initialised; the value is 0 if they are all written zeros, else unknown."""
    lo, hi = var_stack_range(regno, reg, off, size, " read from")
    env.touch_stack(_stack_frame(st, reg).subprog, -lo)
    if _var_stack_check(st, regno, reg, lo, hi, False, " read from",
                        "every stack byte the index may select must be written before the read"):
        return const(0)
    return loaded_value(size, signed)


def _byte_pos(addr: int) -> tuple[int, int]:
    """(slot index, byte index within the slot, lowest address first) of stack offset `addr`."""
    slot = (-addr - 1) // SLOT
    return slot, addr + SLOT * (slot + 1)


def _width(b: Bounds) -> int:
    """Bits the value needs (get_reg_width): a spill narrower than this breaks register links."""
    return b.umax.bit_length()


def spill_size(slot: StackSlot) -> int:
    """How many bytes, from the slot's lowest address, hold the spilled register."""
    n = 0
    for kind in slot.kinds:
        if kind is not Byte.SPILL:
            break
        n += 1
    return n


def stack_write(env: Env, st: State, regno: int, reg: Reg, off: int, size: int,
                value: Reg | None, imm: int | None) -> None:
    """Store `size` bytes (register `value`, or immediate `imm`) at fixed stack offset.

    As in the kernel (check_stack_write_fixed_off), a store at the start of a slot keeps what was
    stored: an 8-byte store of any register, or a narrower store of a number (a scalar register or
    an immediate), is a spill that a matching load gives back. Other stores make their bytes
    "written" (zero when the value is 0).
    """
    if not reg.b.is_const:
        _var_stack_write(env, st, regno, reg, off, size, value)
        return
    total = stack_offset(regno, reg, off, size)
    frame = _stack_frame(st, reg)
    env.touch_stack(frame.subprog, -total)
    if value is not None and value.is_pointer:
        if size != SLOT:
            raise Refusal(-1, "invalid size of register spill",
                          "store pointers to the stack with 8-byte stores (*(u64 *)(r10 - N) = rX)")
        if value.type is RegType.STACK and reg.frameno != len(st.frames) - 1:
            raise Refusal(-1, "cannot spill pointers to stack into stack frame of the caller",
                          "keep pointers to the stack in the frame that owns them")
    slot_i, byte_i = _byte_pos(total)
    old = frame.slot(slot_i)
    # Bytes of an earlier spill that this store does not cover become plain written bytes.
    kinds: list[Byte] = [Byte.MISC if k is Byte.SPILL else k for k in old.kinds] \
        if old.spilled is not None else list(old.kinds)
    if byte_i == 0:  # a spill
        spilled = value if value is not None else const(imm or 0)
        if spilled.is_scalar and spilled.id and _width(spilled.b) > 8 * size:
            spilled = replace(spilled, id=0)  # a narrowing spill is not a copy any more
        kinds[:size] = [Byte.SPILL] * size
        frame.stack[slot_i] = StackSlot(tuple(kinds), spilled)
        return
    is_zero = (imm == 0) if value is None else (value.is_scalar and value.b.is_const
                                                 and value.b.value & ((1 << (8 * size)) - 1) == 0)
    kinds[byte_i:byte_i + size] = [Byte.ZERO if is_zero else Byte.MISC] * size
    frame.stack[slot_i] = StackSlot(tuple(kinds), None)


def _coerce(reg: Reg, size: int, signed: bool) -> Reg:
    """A register loaded with a `size`-byte load: zero- or sign-extended (coerce_reg_to_size)."""
    if size >= SLOT:
        return reg
    return replace(reg, b=sext(reg.b, size) if signed else truncate(reg.b, size))


def stack_read(env: Env, st: State, regno: int, reg: Reg, off: int, size: int, signed: bool) -> Reg:
    """Load `size` bytes from a fixed stack offset: a fill of a spilled register, a zero, or a
    scalar (check_stack_read_fixed_off)."""
    if not reg.b.is_const:
        return _var_stack_read(env, st, regno, reg, off, size, signed)
    total = stack_offset(regno, reg, off, size)
    frame = _stack_frame(st, reg)
    env.touch_stack(frame.subprog, -total)
    slot_i, byte_i = _byte_pos(total)
    slot = frame.slot(slot_i)
    spilled = slot.spilled
    spilled_bytes = spill_size(slot)
    if spilled is not None and spilled_bytes:
        if size == SLOT and spilled_bytes == SLOT:
            return spilled
        if not spilled.is_scalar:
            raise Refusal(-1, "invalid size of register fill",
                          "load a spilled pointer back with an 8-byte load from the same offset")
        if size <= spilled_bytes and byte_i == 0:
            if spilled.id and _width(spilled.b) > 8 * size:
                spilled = replace(spilled, id=0)
            return _coerce(spilled, size, signed)
    spill = zero = 0
    for i in range(byte_i, byte_i + size):
        kind = slot.kinds[i]
        if kind is Byte.INVALID:
            raise Refusal(-1, f"invalid read from stack R{regno} off {total} size {size}",
                          f"write the stack bytes at r10{total:+d} before reading them")
        spill += kind is Byte.SPILL
        zero += kind is Byte.ZERO
    if spill == size and spilled is not None and spilled.b.is_const and spilled.b.value == 0:
        return const(0)
    if zero == size:
        return const(0)
    return loaded_value(size, signed)


def stack_range(env: Env, st: State, regno: int, reg: Reg, size: int, *, write: bool,
                arg: str) -> None:
    """Memory handed to a helper: [0, size) from `reg` must be on the stack and, unless the helper
    writes it (`write`), initialised; written bytes become initialised."""
    if size == 0:
        return
    if not reg.b.is_const:
        # Only initialised bytes may be passed at a variable offset, even to a helper that writes them.
        lo, hi = var_stack_range(regno, reg, 0, size, "", aligned=False)
        env.touch_stack(_stack_frame(st, reg).subprog, -lo)
        _var_stack_check(st, regno, reg, lo, hi, write, "",
                         f"{arg}: every stack byte the index may select must be initialised before the call")
        return
    total = stack_offset(regno, reg, 0, 1)
    if total + size > 0:
        raise Refusal(-1, f"invalid indirect access to stack R{regno} off={total} size={size}",
                      f"{arg}: the {size} bytes from r10{total:+d} run past the top of the stack")
    frame = _stack_frame(st, reg)
    env.touch_stack(frame.subprog, -total)
    for addr in range(total, total + size):
        s_i, b_i = _byte_pos(addr)
        slot = frame.slot(s_i)
        if write:
            kinds = [Byte.MISC if k is Byte.SPILL else k for k in slot.kinds]
            kinds[b_i] = Byte.MISC
            frame.stack[s_i] = StackSlot(tuple(kinds), None)
        elif slot.kinds[b_i] is Byte.INVALID:
            raise Refusal(-1, f"invalid indirect read from stack R{regno} off {total}+{addr - total} "
                              f"size {size}",
                          f"{arg}: initialise all {size} bytes at r10{total:+d} before the call")


# -- the dispatcher ---------------------------------------------------------------------------------
def _check_ctx(env: Env, regno: int, reg: Reg, off: int, size: int, write: bool) -> ctxaccess.Field:
    if reg.off or not (reg.b.is_const and reg.b.value == 0):
        what = f"off={reg.off}" if reg.b.is_const else f"var_off={reg.b.var_off}"
        raise Refusal(-1, f"dereference of modified ctx ptr R{regno} {what} disallowed",
                      "read context fields through r1 as the program got it: put the field offset "
                      "in the instruction (*(u32 *)(r1 + OFF)), not in the register")
    prog_type = env.prog_type
    field = None
    if prog_type is not None and prog_type in ctxaccess.SUPPORTED and prog_type not in BTF_CTX_TYPES:
        field = ctxaccess.access(prog_type, env.expected_attach_type, off, size, write)
    if field is None:
        known = prog_type is not None and prog_type in ctxaccess.SUPPORTED and prog_type not in BTF_CTX_TYPES
        struct = f" ({ctxaccess.layout(prog_type, env.expected_attach_type).struct})" \
            if known and prog_type is not None else ""
        kind = "write to" if write else "read of"
        raise Refusal(-1, f"invalid bpf_context access off={off} size={size}",
                      f"this program type{struct} does not allow a {size}-byte {kind} context offset "
                      f"{off}: check the field's offset, size and whether it is writable")
    return field


BTF_CTX_TYPES = frozenset({ProgType.TRACING, ProgType.LSM})
"""Program types whose context is the argument array of a kernel function typed by BTF (for LSM, of
the hook's `bpf_lsm_HOOK`: see `lsm`)."""


def _btf_ctx(env: Env, regno: int, reg: Reg, off: int, size: int, write: bool, signed: bool) -> Reg:
    if reg.off or not (reg.b.is_const and reg.b.value == 0):
        raise Refusal(-1, f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed",
                      "read arguments through r1 as the program got it")
    assert env.prog_type is not None
    if env.ctx_proto is None:
        env.ctx_proto = btfmem.attach_proto(env.btf, env.prog_type, env.expected_attach_type, env.attach_to)
    is_lsm = env.prog_type == ProgType.LSM
    got = btfmem.ctx_read(env.btf, env.ctx_proto, env.expected_attach_type, off, size, write, env.new_id,
                          trusted=is_lsm and lsm.trusted_args(env.attach_to))
    if got is not None:
        return got
    value = loaded_value(size, signed)
    rng = lsm.ret_range(env.ctx_proto, env.attach_to) if is_lsm else None
    if rng is not None and size == 8 and lsm.is_retval_slot(env.ctx_proto, off):
        # The hook's return value so far is in its range (a narrower read keeps only its bytes' range):
        # the kernel guarantees it, and the VM refuses a context that breaks it (`lsm.ctx_ranges`).
        return lsm.retval_value(value, rng)
    return value


def _check_packet(env: Env, regno: int, reg: Reg, off: int, size: int, write: bool) -> None:
    prog_type = env.prog_type
    allowed = ctxaccess.PACKET_WRITE if write else ctxaccess.PACKET_READ
    if prog_type not in allowed:
        raise Refusal(-1, "cannot write into packet" if write else "invalid access to packet",
                      "this program type cannot access packet data directly: use bpf_skb_load_bytes")
    if reg.b.smin < 0:
        raise Refusal(-1, f"R{regno} min value is negative, either use unsigned index or do a "
                          f"if (index >=0) check.", "bound the packet offset from below")
    start = off + reg.off
    if start < 0 or start + size > reg.range:
        raise Refusal(-1, f"invalid access to packet, off={start} size={size}, "
                          f"R{regno}({reg.describe()})",
                      f"compare the pointer plus {start + size} with data_end (`if rX > data_end goto "
                      f"...`) before this access: only {reg.range} bytes are known to be in the packet")


UNCHECKED_TYPES = frozenset({RegType.STACK, RegType.MAP_VALUE, RegType.MEM, RegType.PACKET})
"""Pointer types whose proven accesses the JIT may emit without a bounds check: the VM backs each with
one plain host buffer covering the proven range (stack frames, map values, raw memory and ring buffer
records, the packet up to data_end). Not the context (the JIT answers its pointer fields and stores
through hooks) nor packet metadata (proven against `data`, a different bound)."""


def check_access(env: Env, st: State, regno: int, off: int, size: int, *, write: bool,
                 value: Reg | None = None, imm: int | None = None, signed: bool = False) -> Reg | None:
    """Check one load or store through register `regno`; for a load, the value it gives. A passed
    check is recorded for the slot (`Env.note_access`)."""
    reg = st.regs[regno]
    safe = reg.type in UNCHECKED_TYPES and not reg.maybe_null
    result = _check_access(env, st, regno, off, size, write=write, value=value, imm=imm, signed=signed)
    # A CTX access is at r + insn.off; BTF-typed contexts (argument arrays) are not the VM's layouts.
    env.note_access(safe, reg.type is RegType.CTX and not write and env.prog_type not in BTF_CTX_TYPES)
    return result


def _check_access(env: Env, st: State, regno: int, off: int, size: int, *, write: bool,
                  value: Reg | None, imm: int | None, signed: bool) -> Reg | None:
    reg = st.regs[regno]
    t = reg.type
    if reg.maybe_null or t in (RegType.NOT_INIT, RegType.SCALAR, RegType.MAP_PTR, RegType.PACKET_END,
                               RegType.FUNC):
        raise _bad_type(regno, reg)
    if t is RegType.STACK:
        if write:
            stack_write(env, st, regno, reg, off, size, value, imm)
            return None
        return stack_read(env, st, regno, reg, off, size, signed)
    if t is RegType.MAP_VALUE:
        assert reg.map is not None
        if write and reg.map.readonly:
            raise Refusal(-1, "write into map forbidden",
                          f"map {reg.map.name!r} is read-only for programs (BPF_F_RDONLY_PROG)")
        check_region(regno, reg, off, size, reg.map.value_size, "map value")
        return None if write else loaded_value(size, signed)
    if t is RegType.MEM:
        if write and reg.rdonly:
            raise Refusal(-1, f"cannot write into {reg.type_name()}", "this memory is read-only")
        check_region(regno, reg, off, size, reg.mem_size, "memory")
        return None if write else loaded_value(size, signed)
    if t in (RegType.PACKET, RegType.PACKET_META):
        _check_packet(env, regno, reg, off, size, write)
        return None if write else loaded_value(size, signed)
    if t is RegType.BTF_ID:
        loaded = btfmem.btf_read(env.btf, regno, reg, off, size, write)
        return loaded_value(size, signed) if loaded is None else loaded
    if t is RegType.CTX and env.prog_type in BTF_CTX_TYPES:
        return _btf_ctx(env, regno, reg, off, size, write, signed)
    if t is RegType.CTX:
        field = _check_ctx(env, regno, reg, off, size, write)
        if write:
            return None
        if field.loads is not None:
            return pointer(field.loads)
        return loaded_value(size, signed)
    raise _bad_type(regno, reg)


def helper_mem(env: Env, st: State, regno: int, size: int, *, write: bool, arg: str,
               zero_ok: bool = False) -> None:
    """Memory of `size` bytes from register `regno` passed to a helper (check_helper_mem_access)."""
    reg = st.regs[regno]
    if size == 0 and zero_ok and reg.type is RegType.SCALAR and reg.b.is_const and reg.b.value == 0:
        return  # NULL with size 0
    t = reg.type
    if reg.maybe_null or t in (RegType.NOT_INIT, RegType.SCALAR, RegType.MAP_PTR, RegType.PACKET_END,
                               RegType.FUNC, RegType.CTX, RegType.BTF_ID):
        err = _bad_type(regno, reg)
        raise Refusal(-1, f"{arg}: R{regno} type={reg.type_name()} expected=fp, pkt, pkt_meta, "
                          f"map_value, mem", err.hint)
    if size == 0:
        return
    if t is RegType.STACK:
        stack_range(env, st, regno, reg, size, write=write, arg=arg)
    elif t is RegType.MAP_VALUE:
        assert reg.map is not None
        if write and reg.map.readonly:
            raise Refusal(-1, "write into map forbidden", f"{arg}: map {reg.map.name!r} is read-only")
        check_region(regno, reg, 0, size, reg.map.value_size, "map value")
    elif t is RegType.MEM:
        if write and reg.rdonly:
            raise Refusal(-1, f"cannot write into {reg.type_name()}", "this memory is read-only")
        check_region(regno, reg, 0, size, reg.mem_size, "memory")
    else:
        _check_packet(env, regno, reg, 0, size, write)


def raw_mode_regs(env: Env) -> tuple[Reg, Reg]:
    """r1 and r2 of a raw-memory program: a pointer to `mem_size` bytes (0 when there are none) and
    their length."""
    if env.mem_size:
        return pointer(RegType.MEM, mem_size=env.mem_size), const(env.mem_size)
    return const(0), const(0)


def is_packet_type(prog_type: ProgType | None) -> bool:
    return prog_type in ctxaccess.PACKET_READ

