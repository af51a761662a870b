"""The public text API: `assemble` and `disassemble` in either dialect."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bpfkit.errors import AsmError
from bpfkit.isa.codec import decode
from bpfkit.isa.instruction import Instruction

Dialect = Literal["llvm", "ubpf"]
DIALECTS = ("llvm", "ubpf")


def assemble(text: str, dialect: str = "llvm") -> list[Instruction]:
    """Assemble a listing in the `llvm` (kernel/llvm-objdump) or `ubpf` (conformance) dialect."""
    if dialect == "llvm":
        from bpfkit.isa.asm import assemble_llvm

        return assemble_llvm(text)
    if dialect == "ubpf":
        from bpfkit.isa.ubpf import assemble_ubpf

        return assemble_ubpf(text)
    raise AsmError(f"unknown dialect {dialect!r} (choose from {', '.join(DIALECTS)})")


def disassemble(code: bytes | bytearray | memoryview | Iterable[Instruction], dialect: str = "llvm") -> str:
    """Disassemble bytecode or instructions into a listing that `assemble` reads back."""
    insns = decode(code) if isinstance(code, (bytes, bytearray, memoryview)) else list(code)
    if dialect == "llvm":
        from bpfkit.isa.disasm import disassemble_llvm

        return disassemble_llvm(insns)
    if dialect == "ubpf":
        from bpfkit.isa.ubpf import disassemble_ubpf

        return disassemble_ubpf(insns)
    raise AsmError(f"unknown dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
