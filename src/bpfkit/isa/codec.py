"""Binary encoding and decoding of eBPF instructions (little-endian, 8-byte slots)."""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable

from bpfkit.errors import AsmError
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.isa.opcodes import field_error
from bpfkit.uapi.insn import INSN_SIZE

_SLOT = struct.Struct("<BBhi")
_SLOT_BE = struct.Struct(">BBhi")


def decode(data: bytes | bytearray | memoryview, *, byteorder: str = "little",
           check: bool = True) -> list[Instruction]:
    """Decode bytecode into instructions.

    Refuses (with `AsmError` naming the instruction index) a length that is not a multiple of 8, an
    LD_IMM64 missing its second slot or with reserved fields set in it, and, when `check` is true, every
    encoding the opcode table calls invalid.
    """
    view = memoryview(data).cast("B")
    if len(view) % INSN_SIZE:
        raise AsmError(f"bytecode length {len(view)} is not a multiple of {INSN_SIZE}",
                       index=len(view) // INSN_SIZE)
    big = byteorder == "big"
    slot = _SLOT_BE if big else _SLOT
    nslots = len(view) // INSN_SIZE
    out: list[Instruction] = []
    i = 0
    while i < nslots:
        opcode, regs, off, imm = slot.unpack_from(view, i * INSN_SIZE)
        dst, src = (regs >> 4, regs & 0xF) if big else (regs & 0xF, regs >> 4)
        if opcode == LD_IMM64:
            if i + 1 >= nslots:
                raise AsmError("LD_IMM64 is missing its second 8-byte slot", index=i)
            op2, regs2, off2, imm2 = slot.unpack_from(view, (i + 1) * INSN_SIZE)
            if op2 or regs2 or off2:
                raise AsmError("second slot of LD_IMM64 must have opcode, registers and offset 0",
                               index=i)
            if check:
                err = field_error(opcode, dst, src, off, imm)
                if err:
                    raise AsmError(err, index=i)
            value = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            out.append(Instruction(opcode, dst, src, off, value))
            i += 2
            continue
        if check:
            err = field_error(opcode, dst, src, off, imm)
            if err:
                raise AsmError(err, index=i)
        out.append(Instruction(opcode, dst, src, off, imm))
        i += 1
    return out


def encode(insns: Iterable[Instruction], *, byteorder: str = "little", check: bool = True) -> bytes:
    """Encode instructions to bytecode; with `check`, refuse encodings the opcode table calls invalid."""
    big = byteorder == "big"
    slot = _SLOT_BE if big else _SLOT
    parts: list[bytes] = []
    index = 0
    for insn in insns:
        if not isinstance(insn, Instruction):
            raise AsmError(f"expected an Instruction, got {type(insn).__name__}", index=index)
        regs = (insn.dst << 4 | insn.src) if big else (insn.src << 4 | insn.dst)
        if insn.opcode == LD_IMM64:
            lo = insn.imm & 0xFFFFFFFF
            hi = (insn.imm >> 32) & 0xFFFFFFFF
            lo_s = lo - (1 << 32) if lo & 0x80000000 else lo
            hi_s = hi - (1 << 32) if hi & 0x80000000 else hi
            if check:
                err = field_error(insn.opcode, insn.dst, insn.src, insn.off, lo_s)
                if err:
                    raise AsmError(err, index=index)
            parts.append(slot.pack(insn.opcode, regs, insn.off, lo_s))
            parts.append(slot.pack(0, 0, 0, hi_s))
            index += 2
            continue
        if check:
            err = field_error(insn.opcode, insn.dst, insn.src, insn.off, insn.imm)
            if err:
                raise AsmError(err, index=index)
        parts.append(slot.pack(insn.opcode, regs, insn.off, insn.imm))
        index += 1
    return b"".join(parts)


def slot_count(insns: Iterable[Instruction]) -> int:
    """Number of 8-byte slots the instructions occupy."""
    return sum(i.width for i in insns)


NATIVE_BYTEORDER = sys.byteorder
