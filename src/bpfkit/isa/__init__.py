"""The eBPF instruction set: instructions, encoding, the opcode table, assembler, disassembler, builder."""

from bpfkit.isa.builder import Builder, Relocation
from bpfkit.isa.codec import decode, encode, slot_count
from bpfkit.isa.instruction import LD_IMM64, Instruction
from bpfkit.isa.opcodes import OPCODES, Kind, OpSpec, field_error
from bpfkit.isa.text import assemble, disassemble

__all__ = [
    "LD_IMM64",
    "OPCODES",
    "Builder",
    "Instruction",
    "Kind",
    "OpSpec",
    "Relocation",
    "assemble",
    "decode",
    "disassemble",
    "encode",
    "field_error",
    "slot_count",
]
