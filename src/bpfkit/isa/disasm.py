"""Disassembler of the `llvm` dialect: instructions to the text llvm-objdump prints.

For every instruction LLVM 14 decodes, `format_insn` prints exactly llvm-objdump 14's text (the part
before a ` <label>` annotation): `llvm-objdump -d` by default, `llvm-objdump -d --mattr=+alu32` with
`alu32=True` (32-bit loads and stores then name `w` registers, as newer LLVM prints by default).
Instructions LLVM 14 does not know (cpu v4 and later) use the spelling of newer LLVM and the kernel
verifier log (`r0 s/= r1`, `r0 = (s8)r1`, `gotol +5`, `r0 = load_acquire((u64 *)(r1 + 0))`).
Where llvm-objdump loses information, bpfkit spells the instruction so that `assemble_llvm` reads it
back to the same bytes:

- a local (bpf-to-bpf) call shows its relative offset with a sign, `call -1` / `call +5`; a helper call
  has no sign, `call 1`; a kfunc call is `call kfunc(BTF_ID)`;
- an LD_IMM64 with a pseudo source is `r1 = map_fd(3) ll`, `r1 = map_value(3) + 8 ll`, `r1 = func(+5) ll`;
- an LD_IND with an immediate is `r0 = *(u8 *)skb[r1 + 2]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bpfkit.errors import AsmError
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.isa.llvm_syntax import (
    ALU_OPS,
    ATOMIC_FETCH_NAMES,
    ATOMIC_RMW_OPS,
    JMP_OPS,
    KFUNC_CALL,
    PSEUDO_NAMES,
    SIGNED_ALU_OPS,
    SIZE_BITS,
    VALUE_PSEUDO,
    reg_name,
)
from bpfkit.isa.opcodes import OPCODES, Kind, field_error
from bpfkit.uapi.insn import (
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    Mode,
    PseudoCall,
    PseudoSrc,
    Size,
    Source,
)

__all__ = ["disassemble_llvm", "format_insn", "jump_target"]


def _low32(imm: int) -> int:
    """The low 32 bits of an immediate, as a signed value."""
    lo = imm & 0xFFFFFFFF
    return lo - (1 << 32) if lo & 0x80000000 else lo


def _mem(reg: int, off: int) -> str:
    return f"r{reg} + {off}" if off >= 0 else f"r{reg} - {-off}"


def jump_target(insn: Instruction, pc: int) -> int | None:
    """The slot that the instruction at slot `pc` jumps to, calls, or takes the address of; else None.

    Covers conditional and unconditional jumps (`off`, or `imm` for gotol), may_goto, local calls and
    LD_IMM64 of a function pointer; all are relative to the next slot (`pc + 1`).
    """
    spec = OPCODES.get(insn.opcode)
    if spec is None:
        return None
    kind = spec.kind
    if kind in (Kind.JUMP, Kind.JCOND) or (kind is Kind.JA and insn.cls is InsnClass.JMP):
        return pc + 1 + insn.off
    if kind is Kind.JA:
        return pc + 1 + insn.imm
    if kind is Kind.CALL and insn.src == PseudoCall.CALL:
        return pc + 1 + insn.imm
    if kind is Kind.LD_IMM64 and insn.src == PseudoSrc.FUNC:
        return pc + 1 + _low32(insn.imm)
    return None


def _alu(insn: Instruction) -> str:
    wide = insn.cls is InsnClass.ALU64
    dst = reg_name(insn.dst, wide)
    op = insn.alu_op
    if op is AluOp.NEG:
        return f"{dst} = -{dst}"
    if insn.source is Source.X:
        rhs = reg_name(insn.src, wide)
    else:
        rhs = str(insn.imm)
    if op is AluOp.MOV:
        if insn.source is Source.X and insn.off:
            return f"{dst} = (s{insn.off}){rhs}"
        return f"{dst} = {rhs}"
    text = SIGNED_ALU_OPS[op] if insn.off == 1 else ALU_OPS[op]
    return f"{dst} {text} {rhs}"


def _end(insn: Instruction) -> str:
    if insn.cls is InsnClass.ALU64:
        name = "bswap"
    else:
        name = "be" if insn.opcode & 0x08 == Endian.TO_BE else "le"
    return f"r{insn.dst} = {name}{insn.imm} r{insn.dst}"


def _call(insn: Instruction, helper_names: bool) -> str:
    if insn.src == PseudoCall.CALL:
        return f"call {insn.imm:+d}"
    if insn.src == PseudoCall.KFUNC:
        extra = f", {insn.off}" if insn.off else ""
        return f"call {KFUNC_CALL}({insn.imm}{extra})"
    if helper_names:
        from bpfkit.uapi.enums import HELPER_NAMES

        name = HELPER_NAMES.get(insn.imm)
        if name is not None:
            return f"call {name}#{insn.imm}"
    # A helper id is unsigned; a sign would make it read back as a local call.
    return f"call {insn.imm & 0xFFFFFFFF}"


def _ld_imm64(insn: Instruction) -> str:
    dst = f"r{insn.dst}"
    if insn.src == PseudoSrc.NONE:
        return f"{dst} = {insn.imm} ll"
    src = PseudoSrc(insn.src)
    lo = _low32(insn.imm)
    hi = (insn.imm >> 32) & 0xFFFFFFFF
    arg = f"{lo:+d}" if src is PseudoSrc.FUNC else str(lo)
    name = PSEUDO_NAMES[src]
    if src in VALUE_PSEUDO:
        return f"{dst} = {name}({arg}){f' + {hi}' if hi else ''} ll"
    return f"{dst} = {name}({arg}{f', {hi}' if hi else ''}) ll"


def _atomic(insn: Instruction, alu32: bool) -> str:
    size = insn.size
    bits = SIZE_BITS[size]
    wide = size is Size.DW
    op = insn.imm
    if op == AtomicOp.LOAD_ACQ:
        return f"{reg_name(insn.dst, wide)} = load_acquire((u{bits} *)({_mem(insn.src, insn.off)}))"
    addr = _mem(insn.dst, insn.off)
    if op == AtomicOp.STORE_REL:
        return f"store_release((u{bits} *)({addr}), {reg_name(insn.src, wide)})"
    if op in ATOMIC_RMW_OPS:
        # LLVM 14 without alu32 knows only the 32-bit add, and prints it with an r register.
        val_wide = wide or (not alu32 and op == AtomicOp.ADD)
        return f"lock *(u{bits} *)({addr}) {ATOMIC_RMW_OPS[op]}= {reg_name(insn.src, val_wide)}"
    val = reg_name(insn.src, wide)
    if op in ATOMIC_FETCH_NAMES:
        return f"{val} = atomic_fetch_{ATOMIC_FETCH_NAMES[op]}((u{bits} *)({addr}), {val})"
    if op == AtomicOp.XCHG:
        name = "xchg_64" if wide else "xchg32_32"
        return f"{val} = {name}({addr}, {val})"
    # CMPXCHG: r0 holds the expected value and receives the old one.
    r0 = reg_name(0, wide)
    name = "cmpxchg_64" if wide else "cmpxchg32_32"
    return f"{r0} = {name}({addr}, {r0}, {val})"


def _format(insn: Instruction, kind: Kind, alu32: bool, helper_names: bool) -> str:
    if kind is Kind.ALU:
        return _alu(insn)
    if kind is Kind.END:
        return _end(insn)
    if kind is Kind.JUMP:
        wide = insn.cls is InsnClass.JMP
        rhs = reg_name(insn.src, wide) if insn.source is Source.X else str(insn.imm)
        return f"if {reg_name(insn.dst, wide)} {JMP_OPS[insn.jmp_op]} {rhs} goto {insn.off:+d}"
    if kind is Kind.JA:
        if insn.cls is InsnClass.JMP32:
            return f"gotol {insn.imm:+d}"
        return f"goto {insn.off:+d}"
    if kind is Kind.JCOND:
        return f"may_goto {insn.off:+d}"
    if kind is Kind.CALL:
        return _call(insn, helper_names)
    if kind is Kind.CALLX:
        return f"callx r{insn.dst}"
    if kind is Kind.EXIT:
        return "exit"
    if kind is Kind.LD_IMM64:
        return _ld_imm64(insn)
    bits = SIZE_BITS[insn.size]
    if kind is Kind.LD_ABS:
        return f"r0 = *(u{bits} *)skb[{insn.imm}]"
    if kind is Kind.LD_IND:
        if insn.imm:
            sign = "+" if insn.imm > 0 else "-"
            return f"r0 = *(u{bits} *)skb[r{insn.src} {sign} {abs(insn.imm)}]"
        return f"r0 = *(u{bits} *)skb[r{insn.src}]"
    if kind is Kind.LDX:
        if insn.mode is Mode.MEMSX:
            return f"r{insn.dst} = *(s{bits} *)({_mem(insn.src, insn.off)})"
        dst = reg_name(insn.dst, not alu32 or insn.size is Size.DW)
        return f"{dst} = *(u{bits} *)({_mem(insn.src, insn.off)})"
    if kind is Kind.ST:
        return f"*(u{bits} *)({_mem(insn.dst, insn.off)}) = {insn.imm}"
    if kind is Kind.STX:
        src = reg_name(insn.src, not alu32 or insn.size is Size.DW)
        return f"*(u{bits} *)({_mem(insn.dst, insn.off)}) = {src}"
    return _atomic(insn, alu32)


def format_insn(insn: Instruction, *, pc: int | None = None, labels: Mapping[int, str] | None = None,
                alu32: bool = False, helper_names: bool = False) -> str:
    """One instruction's text, e.g. `r0 = 1` or `if r1 < 1001 goto +4`.

    With `pc` (the instruction's slot) and `labels` (slot -> name), a jump whose target has a label gets
    an llvm-objdump style annotation: `goto +4 <L0>`. `alu32` prints 32-bit loads, stores and atomics
    with `w` registers; `helper_names` prints `call bpf_map_lookup_elem#1` instead of `call 1`.
    Raises `AsmError` if the encoding is invalid.
    """
    imm = _low32(insn.imm) if insn.opcode == LD_IMM64 else insn.imm
    err = field_error(insn.opcode, insn.dst, insn.src, insn.off, imm)
    if err:
        raise AsmError(err, index=pc)
    text = _format(insn, OPCODES[insn.opcode].kind, alu32, helper_names)
    if labels and pc is not None:
        target = jump_target(insn, pc)
        if target is not None and target in labels:
            text += f" <{labels[target]}>"
    return text


def disassemble_llvm(insns: Sequence[Instruction], *, alu32: bool = False,
                     helper_names: bool = False) -> str:
    """A listing that `assemble_llvm` reads back to the same bytes.

    One instruction per line, indented by a tab, in llvm-objdump's text. Every slot that a jump, local
    call or function pointer targets gets a label line `L<n>:` (numbered in address order, like
    `llvm-objdump --symbolize-operands`), and the referring instruction keeps its relative offset with
    the label as an annotation: `if r1 > 5 goto +2 <L0>`.
    """
    pcs: list[int] = []
    pc = 0
    for insn in insns:
        pcs.append(pc)
        pc += insn.width
    end = pc
    starts = set(pcs)
    starts.add(end)
    targets = set()
    for insn, at in zip(insns, pcs, strict=True):
        target = jump_target(insn, at)
        if target is not None and target in starts:
            targets.add(target)
    labels = {slot: f"L{n}" for n, slot in enumerate(sorted(targets))}
    lines = []
    for insn, at in zip(insns, pcs, strict=True):
        if at in labels:
            lines.append(f"{labels[at]}:")
        lines.append("\t" + format_insn(insn, pc=at, labels=labels, alu32=alu32,
                                        helper_names=helper_names))
    if end in labels:
        lines.append(f"{labels[end]}:")
    return "\n".join(lines) + "\n" if lines else ""
