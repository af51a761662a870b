"""ALU instructions: scalar arithmetic on bounds and the kernel's pointer arithmetic rules
(check_alu_op, adjust_reg_min_max_vals, adjust_ptr_min_max_vals, check_reg_sane_offset)."""

from __future__ import annotations

from bpfkit._records import replace
from bpfkit.uapi.insn import AluOp, InsnClass
from bpfkit.vm.verifier import arith
from bpfkit.vm.verifier.cfg import Op, alu_op, is_x
from bpfkit.vm.verifier.env import MAX_VAR_OFF, Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.ranges import S64_MIN, s64, sext, sext32, unknown, zext32
from bpfkit.vm.verifier.state import FP, PACKET_TYPES, Reg, RegType, State, const, scalar

_OP_NAMES = {AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
             AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.NEG: "neg", AluOp.MOD: "%=",
             AluOp.XOR: "^=", AluOp.ARSH: "s>>="}
_ARITH_OK = frozenset({RegType.CTX, RegType.MAP_VALUE, RegType.STACK, RegType.PACKET,
                       RegType.PACKET_META, RegType.MEM})
"""Pointer types that allow adding a scalar (adjust_ptr_min_max_vals)."""


def read_reg(st: State, regno: int) -> Reg:
    """A register an instruction reads: refused if it was never written (check_reg_arg SRC_OP)."""
    reg = st.regs[regno]
    if reg.type is RegType.NOT_INIT:
        raise Refusal(-1, f"R{regno} !read_ok",
                      f"r{regno} is read before anything was written to it on this path: set it first "
                      f"(at a call, r1-r5 are clobbered and only r0 holds a result)")
    return reg


def check_writable(regno: int) -> None:
    if regno == FP:
        raise Refusal(-1, "frame pointer is read only",
                      "r10 is the frame pointer: copy it to another register (r2 = r10) and change that")


def _sane_offset(reg: Reg, what: str) -> None:
    """check_reg_sane_offset for a pointer or the scalar added to it."""
    b = reg.b
    if reg.is_scalar and b.is_const and not -MAX_VAR_OFF < s64(b.value) < MAX_VAR_OFF:
        raise Refusal(-1, f"math between {what} pointer and {s64(b.value)} is not allowed",
                      f"pointer offsets must stay within +-{MAX_VAR_OFF}")
    if not -MAX_VAR_OFF < reg.off < MAX_VAR_OFF:
        raise Refusal(-1, f"{what} pointer offset {reg.off} is not allowed",
                      f"pointer offsets must stay within +-{MAX_VAR_OFF}")
    if b.smin == S64_MIN:
        raise Refusal(-1, f"math between {what} pointer and register with unbounded min value is not "
                          f"allowed", "bound the value (`if rX s< 0 goto ...` or `rX &= MASK`) before "
                                      "adding it to a pointer")
    if not -MAX_VAR_OFF < b.smin < MAX_VAR_OFF:
        raise Refusal(-1, f"value {b.smin} makes {what} pointer be out of bounds",
                      "bound the value before adding it to a pointer")


def _ptr_arith(env: Env, aop: AluOp, ptr: Reg, off_reg: Reg, regno: int, ptr_is_dst: bool) -> Reg:
    name = ptr.type_name()
    if ptr.maybe_null:
        raise Refusal(-1, f"R{regno} pointer arithmetic on {name} prohibited, null-check it first",
                      "check the pointer against NULL before doing arithmetic on it")
    if aop in (AluOp.AND, AluOp.OR, AluOp.XOR):
        raise Refusal(-1, f"R{regno} bitwise operator {_OP_NAMES[aop]} on pointer prohibited",
                      "only + and - of a scalar are allowed on pointers")
    if aop not in (AluOp.ADD, AluOp.SUB):
        raise Refusal(-1, f"R{regno} pointer arithmetic with {_OP_NAMES[aop]} operator prohibited",
                      "only + and - of a scalar are allowed on pointers")
    known = off_reg.b.is_const
    if ptr.type is RegType.MAP_PTR and known and off_reg.b.value == 0 and aop is AluOp.ADD:
        return ptr
    if ptr.type not in _ARITH_OK:
        raise Refusal(-1, f"R{regno} pointer arithmetic on {name} prohibited",
                      f"a {name} pointer cannot be moved; only ctx, stack, map value, packet and memory "
                      f"pointers can")
    if aop is AluOp.SUB:
        if not ptr_is_dst:
            raise Refusal(-1, f"R{regno} tried to subtract pointer from scalar",
                          "subtract the scalar from the pointer, not the pointer from the scalar")
        if ptr.type is RegType.STACK:
            raise Refusal(-1, f"R{regno} subtraction from stack pointer prohibited",
                          "add a negative constant instead (r2 = r10; r2 += -8)")
    _sane_offset(off_reg, name)
    _sane_offset(ptr, name)
    val = s64(off_reg.b.value)
    if known:
        new_off = ptr.off + val if aop is AluOp.ADD else ptr.off - val
        if -(1 << 31) <= new_off < 1 << 31:
            out = replace(ptr, off=new_off)
            _sane_offset(out, name)
            return out
    out = replace(ptr, b=arith.alu(aop, ptr.b, off_reg.b, False))
    if ptr.type in PACKET_TYPES and (aop is AluOp.ADD or off_reg.b.smin < 0):
        out = replace(out, id=env.new_id(), range=0)
    elif ptr.type in PACKET_TYPES:
        out = replace(out, id=env.new_id())
    _sane_offset(out, name)
    return out


def _ptr_ptr(aop: AluOp, dst: Reg, src: Reg, regno: int) -> Reg:
    """Two pointers: only `-=` is allowed, and gives an unknown number (adjust_reg_min_max_vals lets
    a privileged load, env->allow_ptr_leaks, subtract any two pointers: pkt_end - pkt is the packet
    length). bpfkit refuses pointers that may still be NULL: check them first."""
    if aop is AluOp.SUB and not dst.maybe_null and not src.maybe_null:
        return scalar()
    raise Refusal(-1, f"R{regno} pointer {_OP_NAMES.get(aop, aop.name)} pointer prohibited",
                  "only the difference of two pointers (checked against NULL) is allowed, giving a number")


def _mov(env: Env, st: State, op: Op, alu32: bool) -> Reg:
    insn = op.insn
    if not is_x(insn):
        return const(insn.imm & 0xFFFFFFFF if alu32 else insn.imm)
    src = read_reg(st, insn.src)
    if insn.off:  # MOVSX
        if not src.is_scalar:
            raise Refusal(-1, f"R{insn.src} sign-extension part of pointer",
                          "sign-extending moves take numbers, not pointers")
        size = insn.off // 8
        return scalar(sext32(src.b, size) if alu32 else sext(src.b, size))
    if alu32:
        if not src.is_scalar:
            return scalar(unknown(True))  # a partial copy of a pointer is a number
        if src.b.umax <= 0xFFFFFFFF:
            src = _link(env, st, insn.src, src)
            return Reg(RegType.SCALAR, zext32(src.b), id=src.id)
        return scalar(zext32(src.b))
    if src.is_scalar:
        return _link(env, st, insn.src, src)
    return src


def _link(env: Env, st: State, regno: int, src: Reg) -> Reg:
    """Give a copied scalar an id shared with its copy, so a later bound on one applies to both."""
    if src.id or src.b.is_const:
        return src
    src = replace(src, id=env.new_id())
    st.regs[regno] = src
    return src


def check_alu(env: Env, st: State, op: Op) -> int | None:
    """Check one ALU (or ALU64) instruction and update the destination register. Returns the
    register of a scalar added to a pointer (its exact range now matters: see `precision`)."""
    insn = op.insn
    alu32 = insn.cls is InsnClass.ALU
    aop = alu_op(insn)
    regno = insn.dst
    if aop is AluOp.MOV:
        check_writable(regno)
        st.regs[regno] = _mov(env, st, op, alu32)
        return None
    dst = read_reg(st, regno)
    check_writable(regno)
    if aop is AluOp.END or aop is AluOp.NEG:
        if dst.is_pointer:
            raise Refusal(-1, f"R{regno} pointer arithmetic prohibited",
                          "byte swaps and negation apply to numbers, not pointers")
        st.regs[regno] = scalar(unknown(aop is AluOp.NEG and alu32))
        return None
    if is_x(insn):
        src = read_reg(st, insn.src)
    else:
        imm = insn.imm & 0xFFFFFFFF if alu32 else insn.imm
        if aop in (AluOp.DIV, AluOp.MOD) and insn.imm == 0:
            raise Refusal(-1, "div by zero", "divide by a non-zero constant (or by a register)")
        if aop in (AluOp.LSH, AluOp.RSH, AluOp.ARSH) and not 0 <= insn.imm < (32 if alu32 else 64):
            raise Refusal(-1, f"invalid shift {insn.imm}",
                          f"shift by 0..{31 if alu32 else 63} bits")
        src = const(imm)
    if dst.is_pointer or src.is_pointer:
        if alu32:
            if aop is AluOp.SUB:
                st.regs[regno] = scalar(unknown(True))
                return None
            raise Refusal(-1, f"R{regno} 32-bit pointer arithmetic prohibited",
                          "use 64-bit arithmetic (r1 += r2, not w1 += w2) on pointers")
        if dst.is_pointer and src.is_pointer:
            st.regs[regno] = _ptr_ptr(aop, dst, src, regno)
        elif dst.is_pointer:
            st.regs[regno] = _ptr_arith(env, aop, dst, src, regno, True)
            return insn.src if is_x(insn) else None
        else:
            st.regs[regno] = _ptr_arith(env, aop, src, dst, regno, False)
            return regno
        return None
    st.regs[regno] = scalar(arith.alu(aop, dst.b, src.b, alu32))
    return None
