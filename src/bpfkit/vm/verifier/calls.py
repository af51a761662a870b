"""Calls and exits: helper calls checked against their prototypes (constant strings and
bpf_snprintf formats included), bpf-to-bpf calls, callbacks (bpf_loop, bpf_for_each_map_elem),
acquired references (ring buffer reservations), RCU read sections at exit, and the return value at
program exit (the kernel's check_helper_call, check_func_call, prepare_func_exit, check_return_code).
kfunc calls are in `kfuncs`."""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.uapi.enums import AttachType, Helper, MapType, ProgType
from bpfkit.uapi.insn import MAX_CALL_FRAMES
from bpfkit.vm.verifier import lsm, memory
from bpfkit.vm.verifier.alu import read_reg
from bpfkit.vm.verifier.btfmem import UNTRUSTED
from bpfkit.vm.verifier.cfg import Op
from bpfkit.vm.verifier.env import MAX_VAR_SIZE, Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.protos import PROTOS, SUPPORTED_MAP_TYPES, Arg, Proto, Ret, map_compatible
from bpfkit.vm.verifier.ranges import S64_MAX, S64_MIN
from bpfkit.vm.verifier.state import (
    FP,
    NOT_INIT,
    NREGS,
    PACKET_TYPES,
    Frame,
    MapInfo,
    Reg,
    RegType,
    State,
    pointer,
    scalar,
)


@record(frozen=False)
class CallMeta:
    """What the arguments of one helper call established."""

    map: MapInfo | None = None
    mem_regno: int = 0
    alloc_size: int = 0
    callback: int | None = None
    released: int = 0
    null_mem: bool = False
    """The memory argument was NULL (allowed with a size of 0)."""
    const_str: bytes = b""
    """The constant string argument (without its NUL)."""


def _helper_name(helper_id: int) -> str:
    try:
        return f"bpf_{Helper(helper_id).name.lower()}#{helper_id}"
    except ValueError:
        return f"#{helper_id}"


def _lookup_proto(env: Env, helper_id: int) -> Proto:
    proto = PROTOS.get(helper_id)
    name = _helper_name(helper_id)
    if proto is None:
        raise Refusal(-1, f"unknown func {name}",
                      "bpfkit's verifier has no prototype for this helper: check the helper id, or "
                      "load the program in the kernel to verify it there")
    if env.prog_type is None:
        return proto  # raw-memory programs may call any helper bpfkit knows
    if env.prog_type == ProgType.LSM:
        allowed = lsm.helper_allowed(proto.types, proto.iter_only, helper_id)
    else:
        allowed = env.prog_type in proto.types and (
            not proto.iter_only or env.expected_attach_type == AttachType.TRACE_ITER)
    if not allowed:
        raise Refusal(-1, f"program of this type cannot use helper {name}",
                      f"{proto.name} is not available to {env.prog_type.name} programs"
                      + (" (iterators only)" if proto.iter_only else ""))
    return proto


def _arg_type_error(regno: int, reg: Reg, expected: str, hint: str) -> Refusal:
    return Refusal(-1, f"R{regno} type={reg.type_name()} expected={expected}", hint)


def _check_size(env: Env, st: State, regno: int, reg: Reg, arg: Arg, meta: CallMeta, write: bool,
                proto: Proto) -> None:
    if not reg.is_scalar:
        raise _arg_type_error(regno, reg, "scalar", "pass the size as a number")
    b = reg.b
    if b.smin < 0:
        raise Refusal(-1, f"R{regno} min value is negative, either use unsigned or 'var &= const'",
                      f"bound the size passed to {proto.name} from below")
    if b.umin == 0 and arg is Arg.CONST_SIZE:
        raise Refusal(-1, f"R{regno} invalid zero-sized read: u64=[{b.umin},{b.umax}]",
                      f"{proto.name} needs a size of at least 1")
    if b.umax >= MAX_VAR_SIZE:
        raise Refusal(-1, f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'",
                      f"bound the size passed to {proto.name} from above")
    memory.helper_mem(env, st, meta.mem_regno, b.umax, write=write,
                      arg=f"{proto.name} argument {meta.mem_regno}", zero_ok=arg is Arg.CONST_SIZE_OR_ZERO)


def _check_ctx_arg(regno: int, reg: Reg, proto: Proto) -> None:
    if reg.type is not RegType.CTX:
        raise _arg_type_error(regno, reg, "ctx", f"pass the context (r1 at program start) to {proto.name}")
    if reg.off or not (reg.b.is_const and reg.b.value == 0):
        raise Refusal(-1, f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed",
                      f"pass the context to {proto.name} unmodified")


def _check_arg(env: Env, st: State, regno: int, arg: Arg, proto: Proto, meta: CallMeta) -> None:
    reg = read_reg(st, regno)
    what = f"{proto.name} argument {regno}"
    if arg is Arg.ANYTHING:
        return
    if arg is Arg.MAP_PTR:
        if reg.type is not RegType.MAP_PTR or reg.off:
            raise _arg_type_error(regno, reg, "map_ptr", f"{what} must be a map loaded with `rX = map ll`")
        assert reg.map is not None
        if reg.map.type not in SUPPORTED_MAP_TYPES or not map_compatible(proto, reg.map.type):
            raise Refusal(-1, f"cannot pass map_type {int(reg.map.type)} into func "
                              f"{_helper_name(int(proto.helper))}",
                          f"{proto.name} does not work on {reg.map.type.name} maps")
        meta.map = reg.map
        return
    if arg in (Arg.MAP_KEY, Arg.MAP_VALUE, Arg.UNINIT_MAP_VALUE):
        if meta.map is None:
            raise Refusal(-1, f"invalid map_ptr to access map->{'key' if arg is Arg.MAP_KEY else 'value'}",
                          f"{proto.name} takes the map first")
        size = meta.map.key_size if arg is Arg.MAP_KEY else meta.map.value_size
        if arg is Arg.MAP_KEY and size == 0:
            return
        # bpf_map_peek_elem on a bloom filter reads the value it tests (bpf_map_peek_elem is
        # ARG_PTR_TO_MAP_VALUE | MEM_UNINIT in the kernel, which then accepts unwritten bytes only
        # because privileged loads may read them).
        write = arg is Arg.UNINIT_MAP_VALUE and meta.map.type is not MapType.BLOOM_FILTER
        memory.helper_mem(env, st, regno, size, write=write, arg=what)
        return
    if (arg in (Arg.MEM_OR_NULL, Arg.UNINIT_MEM_OR_NULL) and reg.is_scalar and reg.b.is_const
            and reg.b.value == 0):
        meta.mem_regno = regno
        meta.null_mem = True
        return
    if arg in (Arg.MEM, Arg.UNINIT_MEM, Arg.MEM_OR_NULL, Arg.UNINIT_MEM_OR_NULL):
        if reg.maybe_null or not (reg.is_pointer and reg.type not in (RegType.MAP_PTR, RegType.CTX,
                                                                       RegType.PACKET_END, RegType.FUNC,
                                                                       RegType.BTF_ID)):
            hint = memory.null_hint(regno, reg) if reg.maybe_null else \
                f"{what} must point to memory: the stack, a map value, packet data or a reservation"
            raise _arg_type_error(regno, reg, "fp, pkt, pkt_meta, map_value, mem", hint)
        meta.mem_regno = regno
        return
    if arg in (Arg.CONST_SIZE, Arg.CONST_SIZE_OR_ZERO):
        prev = proto.args[regno - 2]
        _check_size(env, st, regno, reg, arg, meta, prev in (Arg.UNINIT_MEM, Arg.UNINIT_MEM_OR_NULL), proto)
        return
    if arg is Arg.CTX:
        _check_ctx_arg(regno, reg, proto)
        return
    if arg is Arg.ALLOC_SIZE:
        if not (reg.is_scalar and reg.b.is_const):
            raise Refusal(-1, f"R{regno} is not a known constant'",
                          f"the size passed to {proto.name} must be a constant")
        meta.alloc_size = reg.b.value
        return
    if arg is Arg.RINGBUF_MEM:
        if reg.type is not RegType.MEM or not reg.ringbuf or reg.maybe_null:
            hint = memory.null_hint(regno, reg) if reg.maybe_null else \
                f"pass the pointer bpf_ringbuf_reserve returned to {proto.name}"
            raise _arg_type_error(regno, reg, "ringbuf_mem", hint)
        if reg.off or not (reg.b.is_const and reg.b.value == 0):
            raise Refusal(-1, f"R{regno} must have zero offset when passed to release func",
                          f"pass the pointer bpf_ringbuf_reserve returned, unmodified, to {proto.name}")
        if not any(ref == reg.ref_obj_id for ref, _ in st.refs):
            raise Refusal(-1, f"R{regno} must be referenced when passed to release function",
                          "this reservation was already submitted or discarded")
        meta.released = reg.ref_obj_id
        return
    if arg is Arg.FUNC:
        if reg.type is not RegType.FUNC:
            raise _arg_type_error(regno, reg, "func", f"{what} must be a function loaded with "
                                                      f"`rX = subprog ll` (a BPF_PSEUDO_FUNC load)")
        meta.callback = reg.subprog
        return
    if arg is Arg.STACK_OR_NULL:
        null = reg.is_scalar and reg.b.is_const and reg.b.value == 0
        if not null and reg.type is not RegType.STACK:
            raise _arg_type_error(regno, reg, "fp", f"{what} must point to the stack or be NULL")
        if reg.type is RegType.STACK:
            memory.stack_offset(regno, reg, 0, 1)
        return
    if arg is Arg.SPIN_LOCK:
        if reg.type is not RegType.MAP_VALUE or reg.maybe_null:
            hint = memory.null_hint(regno, reg) if reg.maybe_null else \
                f"{what} must point to the struct bpf_spin_lock in a map value"
            raise _arg_type_error(regno, reg, "map_value", hint)
        assert reg.map is not None
        raise Refusal(-1, f"map '{reg.map.name}' has to have BTF in order to use {proto.name}",
                      "the lock's place in the value comes from the map's BTF, which bpfkit's verifier "
                      "does not have: load the program in the kernel to verify it there")
    if arg is Arg.CONST_STR:
        meta.const_str = _check_const_str(regno, reg, proto)
        return
    if arg is Arg.BTF_SEQ_FILE:
        if reg.type is not RegType.BTF_ID or reg.maybe_null:
            hint = memory.null_hint(regno, reg) if reg.maybe_null else \
                f"{what} must be the iterator's seq_file (ctx->meta->seq)"
            raise _arg_type_error(regno, reg, "ptr_", hint)
        if reg.trust == UNTRUSTED:
            raise _arg_type_error(regno, reg, "ptr_, trusted_ptr_, rcu_ptr_",
                                  f"{what}: a pointer read out of a kernel object is not trusted; pass "
                                  f"ctx->meta->seq")
        if reg.btf_name != "seq_file" or reg.off or not (reg.b.is_const and reg.b.value == 0):
            raise Refusal(-1, f"R{regno} is of type {reg.btf_name} but seq_file is expected",
                          f"{what} must be the iterator's seq_file (ctx->meta->seq), unmodified")
        return
    raise AssertionError(arg)


def _check_const_str(regno: int, reg: Reg, proto: Proto) -> bytes:
    """A constant string: a pointer at a constant offset into a frozen read-only array map whose
    value has a NUL from there on (check_reg_const_str)."""
    if reg.type is not RegType.MAP_VALUE or reg.maybe_null:
        raise _arg_type_error(regno, reg, "map_value",
                              f"{proto.name} takes a string constant (a literal in .rodata) here")
    info = reg.map
    assert info is not None
    if not info.constant:
        raise Refusal(-1, f"R{regno} does not point to a readonly map'",
                      f"{proto.name}: the string must live in a frozen map read-only to programs "
                      f"(BPF_F_RDONLY_PROG, frozen: .rodata)")
    if not reg.b.is_const:
        raise Refusal(-1, f"R{regno} is not a constant address'",
                      f"{proto.name}: point at the string with a constant offset")
    if info.type is not MapType.ARRAY:
        raise Refusal(-1, "no direct value access support for this map type",
                      f"{proto.name}: constant strings live in array maps")
    memory.check_region(regno, reg, 0, info.value_size - reg.off, info.value_size, "map value")
    start = reg.off + reg.b.value
    value = info.value0.ljust(info.value_size, b"\0")
    end = value.find(b"\0", start)
    if end < 0:
        raise Refusal(-1, "string is not zero-terminated",
                      f"{proto.name}: the map value has no NUL byte after offset {start}")
    return value[start:end]


MAX_BPRINTF_VARARGS = 12
_SPACE = frozenset(b" \t\n\v\f\r")
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_INT_CONV = frozenset(b"diuxX")


def _ends_word(c: int) -> bool:
    """The character after %s or a plain %p: NUL, space or punctuation (bpf_bprintf_prepare)."""
    return c == 0 or c in _SPACE or c in _PUNCT


def printf_args(fmt: bytes) -> int | None:
    """How many u64 arguments a bpf_snprintf format uses, or None where the kernel refuses it.

    The grammar of the kernel's bpf_bprintf_prepare (kernel/bpf/helpers.c): printable ASCII or space;
    %% ; %[0+- ]*[1-9][0-9]* then c, s (followed by NUL, space or punctuation), [l[l]]{d,i,u,x,X},
    p (plain, followed by NUL, space or punctuation) or pI4/pi4/pI6/pi6. The kernel also accepts
    %pK %px %ps %pS %pB %pks %pus, which bpfkit's VM does not format: refused here (stricter)."""
    n = i = 0
    text = fmt + b"\0\0\0"  # the kernel reads up to 2 bytes past a conversion: the NUL stops it

    def at(k: int) -> int:
        return text[k]

    while i < len(fmt):
        c = fmt[i]
        if c >= 0x80 or not (0x20 <= c < 0x7F or c in _SPACE):
            return None
        if c != 0x25:  # '%'
            i += 1
            continue
        if at(i + 1) == 0x25:
            i += 2
            continue
        if n >= MAX_BPRINTF_VARARGS:
            return None
        i += 1
        while at(i) in b"0+- ":
            i += 1
        if 0x31 <= at(i) <= 0x39:
            i += 1
            while 0x30 <= at(i) <= 0x39:
                i += 1
        c = at(i)
        if c == 0x70:  # 'p'
            if _ends_word(at(i + 1)):
                n, i = n + 1, i + 1
                continue
            if at(i + 1) in b"iI" and at(i + 2) in b"46":
                n, i = n + 1, i + 3
                continue
            return None
        if c == 0x73:  # 's'
            if not _ends_word(at(i + 1)):
                return None
            n, i = n + 1, i + 1
            continue
        if c == 0x63:  # 'c'
            n, i = n + 1, i + 1
            continue
        if c == 0x6C:  # 'l'
            i += 1
            if at(i) == 0x6C:
                i += 1
        if at(i) not in _INT_CONV:
            return None
        n, i = n + 1, i + 1
    return n


def _check_snprintf(st: State, meta: CallMeta) -> None:
    """check_bpf_snprintf_call: the format is checked now; it may use at most as many arguments as
    the data holds (one per u64)."""
    r5 = st.regs[5]
    if not r5.b.is_const or r5.b.value % 8:
        raise Refusal(-1, "R5 data_len must be a constant multiple of 8",
                      "bpf_snprintf's arguments are an array of u64: pass sizeof(the array)")
    have = r5.b.value // 8
    used = printf_args(meta.const_str)
    if used is None or used > have:
        raise Refusal(-1, "Invalid format string",
                      f"the format may use at most {have} argument(s) (one per u64 of data), with "
                      f"conversions %d %i %u %x %X (optionally l or ll), %c, %s, %p, %pI4 %pi4 %pI6 "
                      f"%pi6 or %%")


def release(st: State, ref_obj_id: int) -> None:
    """Drop a reference: every pointer into the released object becomes a plain number."""
    st.refs = tuple(ref for ref in st.refs if ref[0] != ref_obj_id)
    st.map_regs(lambda r: scalar() if r.ref_obj_id == ref_obj_id else r)


def clear_packet_pointers(st: State) -> None:
    """After a helper that may move packet data, no packet pointer is valid any more."""
    st.map_regs(lambda r: scalar() if r.type in PACKET_TYPES or r.type is RegType.PACKET_END else r)


def check_helper_call(env: Env, st: State, op: Op, gpl: bool, marks: list[int]) -> int | None:
    """Check a helper call and apply its effects; returns the callback's entry slot for helpers that
    call one (the caller then enters it), else None. Registers whose exact values the check used
    (sizes) are appended to `marks`."""
    helper_id = op.insn.imm
    proto = _lookup_proto(env, helper_id)
    if proto.gpl_only and not gpl:
        raise Refusal(-1, "cannot call GPL-restricted function from non-GPL compatible program",
                      f"{proto.name} needs a GPL-compatible license")
    meta = CallMeta()
    for i, arg in enumerate(proto.args):
        _check_arg(env, st, i + 1, arg, proto, meta)
        if arg in (Arg.CONST_SIZE, Arg.CONST_SIZE_OR_ZERO, Arg.ALLOC_SIZE):
            marks.append(i + 1)
    if proto.helper is Helper.TAIL_CALL:
        if st.refs:
            raise Refusal(-1, "tail_call would lead to reference leak",
                          "submit or discard every ring buffer reservation before bpf_tail_call")
        if st.rcu:
            raise Refusal(-1, "tail_call cannot be used inside bpf_rcu_read_lock-ed region",
                          "call bpf_rcu_read_unlock before bpf_tail_call")
        if len(st.frames) > 1:
            raise Refusal(-1, "bpfkit's verifier does not check tail calls from bpf-to-bpf functions",
                          "make the tail call from the main program")
    if proto.helper is Helper.SNPRINTF:
        _check_snprintf(st, meta)
    if proto.helper is Helper.GET_LOCAL_STORAGE:
        marks.append(2)
        r2 = st.regs[2]
        if not (r2.is_scalar and r2.b.is_const and r2.b.value == 0):
            raise Refusal(-1, "get_local_storage() doesn't support non-zero flags",
                          "pass 0 as bpf_get_local_storage's flags (it cannot return an error)")
    if meta.released:
        release(st, meta.released)
    if proto.changes_packet:
        clear_packet_pointers(st)
    if meta.callback is not None:
        return meta.callback
    finish_helper(env, st, op, proto, meta)
    return None


def finish_helper(env: Env, st: State, op: Op, proto: Proto, meta: CallMeta) -> None:
    """Clobber r1-r5 and set r0 from the return type."""
    regs = st.regs
    for r in range(1, 6):
        regs[r] = NOT_INIT
    if proto.ret is Ret.INTEGER:
        regs[0] = scalar()
    elif proto.ret is Ret.VOID:
        regs[0] = NOT_INIT
    elif proto.ret is Ret.MAP_VALUE_OR_NULL:
        regs[0] = pointer(RegType.MAP_VALUE, map=meta.map, maybe_null=True, id=env.new_id())
    elif proto.ret is Ret.MAP_VALUE:
        regs[0] = pointer(RegType.MAP_VALUE, map=meta.map)
    elif proto.ret is Ret.RINGBUF_MEM_OR_NULL:
        ref = env.new_id()
        st.refs = (*st.refs, (ref, op.slot))
        regs[0] = pointer(RegType.MEM, mem_size=meta.alloc_size, ringbuf=True, maybe_null=True,
                          id=ref, ref_obj_id=ref)


def _new_frame(st: State, callsite: int, entry: int, args: list[Reg], callback: str = "") -> None:
    if len(st.frames) >= MAX_CALL_FRAMES:
        raise Refusal(-1, f"the call stack of {len(st.frames) + 1} frames is too deep",
                      f"bpf-to-bpf calls and callbacks may nest at most {MAX_CALL_FRAMES} deep")
    frameno = len(st.frames)
    regs = [NOT_INIT] * NREGS
    for i, reg in enumerate(args):
        regs[i + 1] = reg
    regs[FP] = pointer(RegType.STACK, frameno=frameno)
    st.frames.append(Frame(regs, {}, frameno, callsite, entry, callback, entry_refs=st.refs))


def enter_subprog(st: State, op: Op) -> int:
    """A bpf-to-bpf call: a new frame whose r1-r5 are the caller's; returns the entry slot."""
    assert op.target is not None
    _new_frame(st, op.slot, op.target, [st.regs[r] for r in range(1, 6)])
    return op.target


def enter_callback(st: State, op: Op, entry: int) -> int:
    """A helper's callback. bpf_loop's: r1 the iteration number, r2 the caller's context argument
    (r3). bpf_for_each_map_elem's (set_map_elem_callback_state): r1 the map, r2 its key (read-only,
    key_size bytes), r3 the element's value, r4 the caller's context argument (r3)."""
    proto = PROTOS[op.insn.imm]
    if proto.helper is Helper.FOR_EACH_MAP_ELEM:
        info = st.regs[1].map
        assert info is not None
        args = [st.regs[1], pointer(RegType.MEM, mem_size=info.key_size, rdonly=True),
                pointer(RegType.MAP_VALUE, map=info), st.regs[3]]
    else:
        args = [scalar(), st.regs[3]]
    _new_frame(st, op.slot, entry, args, proto.name)
    return entry


def loop_done(env: Env, st: State, op: Op) -> None:
    """The state after a helper with a callback returns (after any number of calls of it)."""
    finish_helper(env, st, op, PROTOS[op.insn.imm], CallMeta())


def check_exit(env: Env, st: State, op: Op, marks: list[int]) -> int | None:
    """An `exit`: the slot to continue at (after a call, or back at the call of a callback), or None
    when the program ends here. A return value checked against a range is appended to `marks`."""
    r0 = st.regs[0]
    frame = st.frame
    if len(st.frames) == 1 and env.prog_type == ProgType.LSM and not _lsm_range(env):
        # A void hook ignores the program's return value: r0 need not be set (check_return_code).
        _main_exit(env, st, r0, marks)
        return None
    if r0.type is RegType.NOT_INIT and (len(st.frames) == 1 or frame.callback):
        raise Refusal(-1, "R0 !read_ok", "set r0 (the return value) before `exit` on every path")
    # A function may return nothing (a void function): r0 is then unset in the caller.
    if len(st.frames) == 1:
        _main_exit(env, st, r0, marks)
        return None
    if r0.type is RegType.STACK:
        raise Refusal(-1, "cannot return stack pointer to the caller",
                      "a function's stack is gone once it returns: return a number or a map value")
    st.frames.pop()
    caller = st.frame
    if frame.callback:
        marks.append(0)
        if not r0.is_scalar:
            raise Refusal(-1, "R0 not a scalar value", "a callback must return 0 or 1")
        lo, hi = frame.callback_ret
        if not (lo <= r0.b.smin and r0.b.smax <= hi):
            raise Refusal(-1, f"At callback return the register R0 has smin={r0.b.smin} "
                              f"smax={r0.b.smax} should have been in [{lo}, {hi}]",
                          f"return {lo} (continue) or {hi} (stop) from the {frame.callback} callback")
        leaked = [ref for ref in st.refs if ref not in frame.entry_refs]
        if leaked:
            ref, at = leaked[0]
            raise Refusal(-1, f"Unreleased reference id={ref} alloc_insn={at}",
                          "a callback must submit or discard the reservations it makes")
        return frame.callsite  # the helper may call the callback again
    caller.regs[0] = r0
    for r in range(1, 6):
        caller.regs[r] = NOT_INIT
    return env.prog.op(frame.callsite).next


def _main_exit(env: Env, st: State, r0: Reg, marks: list[int]) -> None:
    """The `exit` of the main program: no reference or RCU read section left open, and the return
    value in the program type's range."""
    if st.refs:
        ref, at = st.refs[0]
        raise Refusal(-1, f"Unreleased reference id={ref} alloc_insn={at}",
                      f"submit or discard the ring buffer reservation made at insn {at} on every "
                      f"path before exit")
    if st.rcu:
        raise Refusal(-1, "BPF_EXIT instruction in main prog cannot be used inside "
                          "bpf_rcu_read_lock-ed region",
                      "call bpf_rcu_read_unlock on every path before exit")
    if env.prog_type == ProgType.LSM:
        _check_lsm_return(env, r0, marks)
        return None
    if return_checked(env.prog_type, env.expected_attach_type):
        marks.append(0)
    _check_return(env, r0)
    return None


def _lsm_range(env: Env) -> tuple[int, int] | None:
    return lsm.ret_range(env.ctx_proto, env.attach_to)


def _check_lsm_return(env: Env, r0: Reg, marks: list[int]) -> None:
    """An LSM program's return value: in its hook's range on the low 32 bits (none for void hooks)."""
    rng = _lsm_range(env)
    if rng is None:
        return
    marks.append(0)
    lo, hi = rng
    what = "0 (allow) or 1" if rng == (0, 1) else f"0 (allow) or a negative errno down to {lo} (deny)"
    if not r0.is_scalar:
        raise Refusal(-1, f"At program exit the register R0 is not a known value ({r0.type_name()})",
                      f"an LSM program at this hook returns {what}")
    if not lsm.within_32(r0, rng):
        b = r0.b
        known = (f" smin={b.smin}" if b.smin > S64_MIN else "") + \
            (f" smax={b.smax}" if b.smax < S64_MAX else "")
        raise Refusal(-1, f"At program exit the register R0 has{known or ' unknown scalar value'} "
                          f"should have been in [{lo}, {hi}]",
                      f"an LSM program at hook {lsm.hook_name(env.attach_to)!r} returns {what}: bound r0 "
                      f"before exit")


_RET_RANGES: dict[ProgType, tuple[int, int]] = {
    ProgType.CGROUP_SKB: (0, 1),
    ProgType.CGROUP_SOCK: (0, 1),
    ProgType.SOCK_OPS: (0, 1),
    ProgType.CGROUP_DEVICE: (0, 1),
    ProgType.SK_LOOKUP: (0, 1),
}
"""Program types whose return value the kernel checks (check_return_code)."""


_TRACING_RET: dict[AttachType | None, tuple[int, int]] = {
    AttachType.TRACE_ITER: (0, 1),
    AttachType.TRACE_FENTRY: (0, 0),
    AttachType.TRACE_FEXIT: (0, 0),
}
"""TRACING programs: the return values the kernel allows per attach type (others are not modelled)."""


def _ret_range(prog_type: ProgType | None, attach: AttachType | None) -> tuple[int, int] | None:
    if prog_type == ProgType.TRACING:
        if attach == AttachType.TRACE_RAW_TP:
            return None  # the kernel ignores a tp_btf program's return value
        return _TRACING_RET.get(attach, (0, 0))
    return _RET_RANGES.get(prog_type) if prog_type is not None else None


def return_checked(prog_type: ProgType | None, attach: AttachType | None = None) -> bool:
    """Whether the kernel checks this program type's return value."""
    return _ret_range(prog_type, attach) is not None


def _check_return(env: Env, r0: Reg) -> None:
    pt = env.prog_type
    rng = _ret_range(pt, env.expected_attach_type)
    if pt is None or rng is None:
        return
    lo, hi = rng
    if pt == ProgType.CGROUP_SKB and env.expected_attach_type == AttachType.CGROUP_INET_EGRESS:
        hi = 3
    if not r0.is_scalar:
        raise Refusal(-1, f"At program exit the register R0 is not a known value ({r0.type_name()})",
                      f"{pt.name} programs return a number in [{lo}, {hi}]")
    if not (lo <= r0.b.smin and r0.b.smax <= hi):
        raise Refusal(-1, f"At program exit the register R0 has smin={r0.b.smin} smax={r0.b.smax} "
                          f"should have been in [{lo}, {hi}]",
                      f"{pt.name} programs must return a value in [{lo}, {hi}]: bound r0 before exit")


CALLBACK_HELPERS = frozenset({int(Helper.LOOP), int(Helper.FOR_EACH_MAP_ELEM)})
"""Helpers that call a callback of the program any number of times."""


def is_loop_call(op: Op) -> bool:
    """A call of a helper that calls back into the program (a loop the runtime bounds)."""
    return op.insn.src == 0 and op.insn.imm in CALLBACK_HELPERS

