"""BPF code that reads a USDT probe's arguments, from their parsed specs (``-4@%eax 8@-8(%rbp) 4@$5``).

A USDT probe is a uprobe at the probe's pc: its program gets the traced thread's ``struct pt_regs``
as context, and each argument's spec says where the value is at that moment: a register (read from
pt_regs), memory at a register plus a displacement, optionally plus an index register times a scale
(copied with bpf_probe_read_user into a stack slot), or a constant. The value is then truncated to the
argument's size and sign- or zero-extended to 64 bits (a negative size in the spec means signed).

Pure code generation: the specs come parsed (`bpfkit.kernel.attach.usdt_args.parse_usdt_args` gives
objects with the fields of `UsdtArgSpec`), their register offsets already those of the target
architecture's pt_regs.

    b = Builder()
    b.mov(Reg.R6, Reg.R1)                        # keep the context: memory operands call a helper
    emit_usdt_arg(b, Reg.R7, Reg.R6, probe.args, 0)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from bpfkit.errors import CompileError
from bpfkit.isa.builder import Builder
from bpfkit.uapi.enums import Helper
from bpfkit.uapi.insn import Reg

_HIGH_BYTE = re.compile(r"%[abcd]h\b")  # x86 %ah..%dh: bits 8-15 of rax..rdx
_INT32 = range(-(1 << 31), 1 << 31)


class UsdtArgSpec(Protocol):
    """What code generation needs of one parsed argument (`bpfkit.kernel.attach.usdt_args.UsdtArg`)."""

    @property
    def size(self) -> int: ...
    @property
    def signed(self) -> bool: ...
    @property
    def kind(self) -> object: ...  # an enum whose value is "const", "reg" or "reg_deref"
    @property
    def value(self) -> int: ...
    @property
    def reg_offset(self) -> int: ...
    @property
    def index_offset(self) -> int: ...
    @property
    def scale(self) -> int: ...
    @property
    def symbol(self) -> str: ...
    @property
    def text(self) -> str: ...


def _kind(arg: UsdtArgSpec) -> str:
    return str(getattr(arg.kind, "value", arg.kind))


def const_value(arg: UsdtArgSpec) -> int:
    """A constant argument's value as the program sees it: truncated to its size, then extended."""
    bits = arg.size * 8
    v = arg.value & ((1 << bits) - 1)
    if arg.signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _extend(b: Builder, dst: Reg, size: int, signed: bool) -> None:
    """Keep the low `size` bytes of `dst`, sign- or zero-extended to 64 bits."""
    if size >= 8:
        return
    shift = 64 - size * 8
    b.alu("lsh", dst, shift)
    b.alu("arsh" if signed else "rsh", dst, shift)


def _add_imm(b: Builder, dst: Reg, value: int, scratch: Reg) -> None:
    if value in _INT32:
        if value:
            b.add(dst, value)
        return
    b.ld_imm64(scratch, value)
    b.add(dst, scratch)


def emit_usdt_arg(b: Builder, dst: Reg, ctx: Reg, args: Sequence[UsdtArgSpec], index: int, *,
                  stack_off: int = -8, where: str = "USDT probe") -> None:
    """Emit code leaving argument `index` (0-based) of a probe whose parsed arguments are `args` in
    register `dst`, as a 64-bit value extended from its size; `ctx` holds the pt_regs pointer.

    Register and constant arguments use `dst` alone. A memory argument calls bpf_probe_read_user into
    the 8-byte stack slot at r10 + `stack_off` and so clobbers r0-r5 (keep `ctx` in r6-r9 if it is
    needed afterwards); a failed read gives 0 (the helper zeroes its buffer).
    Raises CompileError naming `where` and the argument for what cannot be fetched.
    """
    if not 0 <= index < len(args):
        raise CompileError(f"{where}: no argument {index + 1} (the probe has {len(args)})")
    emit_usdt_arg_value(b, dst, ctx, args[index], stack_off=stack_off,
                        where=f"{where}, argument {index + 1}")


def emit_usdt_arg_value(b: Builder, dst: Reg, ctx: Reg, arg: UsdtArgSpec, *, stack_off: int = -8,
                        where: str = "USDT argument") -> None:
    """Emit code leaving the value of one parsed argument in `dst` (see `emit_usdt_arg`)."""
    if Reg.R10 in (dst, ctx):
        raise CompileError(f"{where}: r10 is the frame pointer (read-only), not a destination or context")
    if arg.size not in (1, 2, 4, 8):
        raise CompileError(f"{where} {arg.text!r}: size {arg.size} is not 1, 2, 4 or 8")
    kind = _kind(arg)
    if kind == "const":
        v = const_value(arg)
        if v in _INT32:
            b.mov(dst, v)
        else:
            b.ld_imm64(dst, v)
        return
    if kind == "reg":
        b.ldx(8, dst, ctx, arg.reg_offset)
        if _HIGH_BYTE.search(arg.text):
            b.alu("rsh", dst, 8)
        _extend(b, dst, arg.size, arg.signed)
        return
    if kind != "reg_deref":
        raise CompileError(f"{where} {arg.text!r}: unknown argument kind {kind!r}")
    if arg.symbol:
        raise CompileError(f"{where} {arg.text!r}: the operand is at symbol {arg.symbol!r}, whose address "
                           "in the traced process is only known at run time; bpfkit cannot fetch it")
    if ctx == Reg.R0:
        raise CompileError(f"{where} {arg.text!r}: a memory operand needs the context in r1-r9, not r0")
    if stack_off % 8 or not -512 <= stack_off <= -8:
        raise CompileError(f"{where}: stack slot r10{stack_off:+d} is not an aligned 8-byte slot of the "
                           "512-byte stack")
    # Address into r3 (the helper's source). The index goes into r0 first: `ctx` may be r3.
    if arg.index_offset >= 0:
        if arg.scale not in (1, 2, 4, 8):
            raise CompileError(f"{where} {arg.text!r}: scale {arg.scale} is not 1, 2, 4 or 8")
        b.ldx(8, Reg.R0, ctx, arg.index_offset)
        if arg.scale > 1:
            b.alu("lsh", Reg.R0, arg.scale.bit_length() - 1)
        b.ldx(8, Reg.R3, ctx, arg.reg_offset)
        b.add(Reg.R3, Reg.R0)
    else:
        b.ldx(8, Reg.R3, ctx, arg.reg_offset)
    _add_imm(b, Reg.R3, arg.value, Reg.R0)
    b.mov(Reg.R1, Reg.R10)
    b.add(Reg.R1, stack_off)
    b.mov(Reg.R2, arg.size)
    b.call(Helper.PROBE_READ_USER)
    b.ldx(arg.size, dst, Reg.R10, stack_off)  # zero-extends
    if arg.signed:
        _extend(b, dst, arg.size, True)
