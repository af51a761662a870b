"""Shared test helpers: the fixture manifest, llvm-objdump and pyelftools as oracles, clang builds."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

DATA = Path(__file__).resolve().parents[2] / "data"
OBJ_DIR = DATA / "obj"
C_DIR = DATA / "c"
MANIFEST: dict[str, Any] = json.loads((OBJ_DIR / "MANIFEST.json").read_text())
OBJECTS: list[dict[str, Any]] = MANIFEST["objects"]
LLVM_OBJDUMP = shutil.which("llvm-objdump") or shutil.which("llvm-objdump-14")
CLANG = shutil.which("clang") or shutil.which("clang-14")
BPFTOOL = shutil.which("bpftool")


def entry(obj: str) -> dict[str, Any]:
    return next(o for o in OBJECTS if o["object"] == obj)


@dataclass
class Listing:
    """One section of `llvm-objdump -d -r`: instruction bytes by slot and relocations by byte offset."""

    insns: dict[int, bytes] = field(default_factory=dict)
    relocs: dict[int, tuple[str, str]] = field(default_factory=dict)

    def span(self, start: int, count: int) -> bytes:
        out = b""
        slot = start
        while slot < start + count:
            raw = self.insns[slot]
            out += raw
            slot += len(raw) // 8
        return out


_INSN = re.compile(r"^\s*(\d+):\t((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)\t")
_RELOC = re.compile(r"^\t\t([0-9a-f]+):\s+(R_BPF_\w+)\t(\S+)")
_SECTION = re.compile(r"^Disassembly of section (.+):$")


def llvm_objdump(obj: str) -> dict[str, Listing]:
    """`llvm-objdump -d -r` of a fixture (with its manifest args), parsed; skips without llvm-objdump."""
    if LLVM_OBJDUMP is None:
        pytest.skip("llvm-objdump is not installed (the oracle for instruction bytes)")
    args = entry(obj)["objdump_args"] if any(o["object"] == obj for o in OBJECTS) else ["-d"]
    out = subprocess.run([LLVM_OBJDUMP, *args, "-r", str(OBJ_DIR / obj)], capture_output=True, text=True,
                         check=True).stdout
    listings: dict[str, Listing] = {}
    cur: Listing | None = None
    for line in out.splitlines():
        m = _SECTION.match(line)
        if m:
            cur = listings.setdefault(m.group(1), Listing())
            continue
        if cur is None:
            continue
        m = _INSN.match(line)
        if m:
            cur.insns[int(m.group(1))] = bytes.fromhex(m.group(2).replace(" ", ""))
            continue
        m = _RELOC.match(line)
        if m:
            cur.relocs[int(m.group(1), 16)] = (m.group(2), m.group(3))
    return listings


@dataclass(frozen=True)
class FuncSym:
    name: str
    section: str
    value: int
    size: int
    bind: str


def functions(path: Path) -> dict[str, FuncSym]:
    """Function symbols of an object, read with pyelftools."""
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    symtab = elf.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    out = {}
    for s in symtab.iter_symbols():
        if s["st_info"]["type"] == "STT_FUNC":
            sec = elf.get_section(s["st_shndx"]).name
            out[s.name] = FuncSym(s.name, sec, s["st_value"], s["st_size"], s["st_info"]["bind"])
    return out


def section_bytes(path: Path) -> dict[str, bytes]:
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    return {s.name: (bytes(s["sh_size"]) if s["sh_type"] == "SHT_NOBITS" else s.data())
            for s in elf.iter_sections()}


def compile_c(source: str, out_dir: Path, name: str, cpu: str = "v3", target: str = "bpf") -> Path:
    """Build a small BPF C source with clang (-O2 -g -target bpf), the fixtures' headers on the path."""
    if CLANG is None:
        pytest.skip("clang is not installed (needed to build this test's object)")
    src = out_dir / f"{name}.c"
    src.write_text(source)
    obj = out_dir / f"{name}.o"
    cmd = [CLANG, "-O2", "-g", "-target", target, f"-mcpu={cpu}", "-I", str(C_DIR), "-c", str(src),
           "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise AssertionError(f"clang failed on {name}.c:\n{res.stderr}")
    return obj
