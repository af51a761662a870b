"""`bpfkit asm` and `bpfkit disasm`."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from bpfkit.elf import code_sections, is_elf
from bpfkit.errors import AsmError
from bpfkit.isa import assemble, decode, disassemble, encode
from bpfkit.isa.disasm import format_insn
from bpfkit.isa.text import DIALECTS
from bpfkit.isa.ubpf import format_ubpf

_HEX = re.compile(rb"^(?:\s|0x|[0-9a-fA-F])*$")


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def parse_bytecode(data: bytes, name: str) -> bytes:
    """Raw bytecode, or hex text (whitespace and `0x` prefixes allowed) decoded to bytes."""
    if data and _HEX.match(data) and any(c not in b" \t\r\n" for c in data):
        text = re.sub(rb"0x|\s", b"", data)
        if len(text) % 2:
            raise AsmError(f"{name}: odd number of hex digits")
        return bytes.fromhex(text.decode())
    return data


def cmd_asm(args: argparse.Namespace) -> int:
    text = _read(args.file).decode("utf-8", errors="replace")
    code = encode(assemble(text, args.dialect))
    if args.output:
        Path(args.output).write_bytes(code)
    else:
        for i in range(0, len(code), 8):
            print(code[i:i + 8].hex(" "))
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    data = _read(args.file)
    sections: list[tuple[str | None, bytes]]
    if is_elf(data):
        sections = [(s.name, s.data) for s in code_sections(data, args.file) if s.data]
    else:
        sections = [(None, parse_bytecode(data, args.file))]
    if args.json:
        out: list[dict[str, Any]] = []
        for name, code in sections:
            insns = decode(code)
            slot = 0
            items = []
            for insn in insns:
                text = (format_ubpf(insn, slot=slot) if args.dialect == "ubpf"
                        else format_insn(insn, pc=slot))
                items.append({"index": slot, "opcode": insn.opcode, "dst": insn.dst, "src": insn.src,
                              "off": insn.off, "imm": insn.imm, "text": text})
                slot += insn.width
            out.append({"section": name, "instructions": items})
        print(json.dumps(out if len(out) != 1 or out[0]["section"] else out[0]["instructions"], indent=2))
        return 0
    for name, code in sections:
        if name is not None:
            print(f"; section {name}")
        print(disassemble(code, args.dialect), end="")
        if name is not None:
            print()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("asm", help="assemble a listing into bytecode")
    p.add_argument("file", help="assembly listing ('-' for stdin)")
    p.add_argument("--dialect", choices=DIALECTS, default="llvm")
    p.add_argument("-o", "--output", help="write raw bytecode here (default: hex on stdout)")
    p.set_defaults(func=cmd_asm)

    p = sub.add_parser("disasm", help="disassemble raw bytecode, hex text or an ELF object")
    p.add_argument("file", help="bytecode, hex text or ELF object ('-' for stdin)")
    p.add_argument("--dialect", choices=DIALECTS, default="llvm")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_disasm)
