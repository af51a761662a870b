"""Spelling tables of the `llvm` assembly dialect, shared by its assembler and disassembler.

The dialect is the C-like syntax of llvm-objdump and the kernel verifier log (`r0 += 1`,
`if r1 > 5 goto +2`, `*(u32 *)(r10 - 4) = r1`). Facts: LLVM's BPF instruction descriptions
(BPFInstrInfo.td asm strings) and the kernel's kernel/bpf/disasm.c.
"""

from __future__ import annotations

from bpfkit.uapi.insn import AluOp, AtomicOp, JmpOp, PseudoSrc, Size

ALU_OPS: dict[AluOp, str] = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
    AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=", AluOp.XOR: "^=",
    AluOp.ARSH: "s>>=",
}
"""Compound-assignment operator of each binary ALU operation (MOV, NEG and END are spelled apart)."""

SIGNED_ALU_OPS: dict[AluOp, str] = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
"""SDIV and SMOD: DIV/MOD with off=1 (cpu v4)."""

ALU_BY_TEXT: dict[str, tuple[AluOp, int]] = {
    **{text: (op, 0) for op, text in ALU_OPS.items()},
    **{text: (op, 1) for op, text in SIGNED_ALU_OPS.items()},
}

JMP_OPS: dict[JmpOp, str] = {
    JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>", JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=", JmpOp.JSLT: "s<",
    JmpOp.JSLE: "s<=",
}
"""Comparison operator of each conditional jump."""

JMP_BY_TEXT: dict[str, JmpOp] = {text: op for op, text in JMP_OPS.items()}

SIZE_BITS: dict[Size, int] = {Size.B: 8, Size.H: 16, Size.W: 32, Size.DW: 64}
SIZE_BY_BITS: dict[int, Size] = {bits: size for size, bits in SIZE_BITS.items()}

ATOMIC_RMW_OPS: dict[int, str] = {
    AtomicOp.ADD: "+", AtomicOp.OR: "|", AtomicOp.AND: "&", AtomicOp.XOR: "^",
}
"""`lock *(u64 *)(r1 + 0) += r2`: the operator of each non-fetching atomic."""

ATOMIC_FETCH_NAMES: dict[int, str] = {
    AtomicOp.FETCH_ADD: "add", AtomicOp.FETCH_OR: "or", AtomicOp.FETCH_AND: "and",
    AtomicOp.FETCH_XOR: "xor",
}
"""`r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)`: the name suffix of each fetching atomic."""

PSEUDO_NAMES: dict[PseudoSrc, str] = {
    PseudoSrc.MAP_FD: "map_fd", PseudoSrc.MAP_VALUE: "map_value", PseudoSrc.BTF_ID: "btf_id",
    PseudoSrc.FUNC: "func", PseudoSrc.MAP_IDX: "map_idx", PseudoSrc.MAP_IDX_VALUE: "map_idx_value",
}
"""bpfkit's spelling of LD_IMM64 with a pseudo source: `r1 = map_fd(3) ll`, `r1 = func(+5) ll`.

LLVM prints these as `ld_pseudo r1, 1, 3` and loses the high half; the kernel log prints `map[id:..]`
after loading. The value kinds take the offset as `+ N` (`r1 = map_value(3) + 8 ll`).
"""

PSEUDO_BY_NAME: dict[str, PseudoSrc] = {name: src for src, name in PSEUDO_NAMES.items()}
VALUE_PSEUDO = frozenset({PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE})

KFUNC_CALL = "kfunc"
"""`call kfunc(BTF_ID)` or `call kfunc(BTF_ID, FD_INDEX)`: a BPF_PSEUDO_KFUNC_CALL."""


def reg_name(num: int, wide: bool) -> str:
    """`r3` for a 64-bit operand, `w3` for its low 32 bits."""
    return f"{'r' if wide else 'w'}{num}"
