"""Programs of an object: functions split by symbol, relocations classified, subprograms appended.

Every program is linked the way libbpf does it: the program's own instructions first, then, in the
order a depth-first walk first meets their calls, each `.text` subprogram it reaches (directly, through
other subprograms, or by taking a callback's address), every call's immediate rewritten to point at the
appended copy. Relocated lddw instructions get their pseudo source register (MAP_FD, MAP_VALUE, BTF_ID,
FUNC) and a `Reference` for the loader; kfunc calls get src KFUNC. .BTF.ext records follow their
instructions into the linked program.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from bpfkit._records import field, record
from bpfkit.btf.ext import BtfExt
from bpfkit.elf.file import ElfFile, Relocation, RelocType, Section, Symbol, SymbolType
from bpfkit.errors import ElfError, RelocationError
from bpfkit.isa import LD_IMM64
from bpfkit.uapi.insn import PseudoCall, PseudoSrc

from .externs import ExternKind, ExternSpec
from .spec import CoreRelocation, Reference, RefKind, SourceLine, Subprogram

TEXT = ".text"
CALL = 0x85  # BPF_JMP | BPF_CALL
INSN = 8


@record(frozen=False)
class Function:
    """A function symbol's instructions: slots [start, start + count) of its section."""

    section: Section
    name: str
    start: int
    count: int
    is_global: bool
    symbol_value: int


@record(frozen=False)
class CodeSection:
    """An executable section: its bytes, instruction starts, functions and relocations by slot."""

    section: Section
    code: bytes
    starts: set[int]
    functions: list[Function] = field(default_factory=list)
    relocs: dict[int, tuple[Relocation, Symbol]] = field(default_factory=dict)

    def function_at(self, slot: int) -> Function | None:
        for f in self.functions:
            if f.start <= slot < f.start + f.count:
                return f
        return None


@record
class Linked:
    """A linked program: bytecode and everything indexed by its slots."""

    insns: bytes
    references: tuple[Reference, ...]
    subprograms: tuple[Subprogram, ...]
    func_info: bytes
    line_info: bytes
    lines: tuple[SourceLine, ...]
    core_relos: tuple[CoreRelocation, ...]


def _starts(elf: ElfFile, sec: Section, code: bytes) -> set[int]:
    if len(code) % INSN:
        raise elf.error(f"code size {len(code)} is not a multiple of {INSN}", sec)
    n = len(code) // INSN
    starts = set()
    i = 0
    while i < n:
        starts.add(i)
        if code[i * INSN] == LD_IMM64:
            if i + 1 >= n:
                raise elf.error(f"instruction {i}: lddw is missing its second slot", sec)
            i += 2
        else:
            i += 1
    return starts


def collect_code(elf: ElfFile) -> dict[int, CodeSection]:
    """Every non-empty executable section with its functions and relocations, by section index."""
    out: dict[int, CodeSection] = {}
    for sec in elf.sections:
        if sec.is_code and sec.size:
            code = elf.data(sec)
            out[sec.index] = CodeSection(sec, code, _starts(elf, sec, code))
    funcs: dict[int, list[Symbol]] = {}
    for sym in elf.symbols:
        if sym.type == SymbolType.FUNC and sym.shndx in out:
            funcs.setdefault(sym.shndx, []).append(sym)
    for idx, cs in out.items():
        nslots = len(cs.code) // INSN
        syms = sorted(funcs.get(idx, []), key=lambda s: (s.value, s.index))
        seen: set[int] = set()
        for k, sym in enumerate(syms):
            if sym.value % INSN or sym.size % INSN:
                raise elf.error(f"function {sym.name!r}: offset {sym.value} / size {sym.size} not "
                                f"multiples of {INSN}", cs.section)
            start = sym.value // INSN
            if start in seen:
                continue  # an alias of the previous function
            seen.add(start)
            nxt = next((s.value // INSN for s in syms[k + 1 :] if s.value // INSN > start), nslots)
            count = sym.size // INSN or nxt - start
            end = start + count
            if start not in cs.starts or end > min(nslots, nxt) or (end < nslots and end not in cs.starts):
                raise elf.error(f"function {sym.name!r} ({sym.size} bytes at {sym.value}) does not fit the "
                                f"section's instructions", cs.section)
            cs.functions.append(Function(cs.section, sym.name or cs.section.name, start, count,
                                         sym.is_global, sym.value))
        for rel in elf.relocations(cs.section):
            if rel.type == RelocType.NONE:
                continue
            slot = rel.offset // INSN
            sym = elf.symbol(rel.symbol, cs.section)
            name = elf.symbol_name(sym)
            if rel.offset % INSN or slot not in cs.starts:
                raise RelocationError(f"{elf.name}: section {cs.section.name!r}: relocation at offset "
                                      f"{rel.offset} is not at the start of an instruction", name)
            if slot in cs.relocs:
                raise RelocationError(f"{elf.name}: section {cs.section.name!r}, instruction {slot}: two "
                                      "relocations for one instruction", name)
            cs.relocs[slot] = (rel, sym)
    return out


# ------------------------------------------------------------------------------------- linking


class Linker:
    """Links programs of one object. `map_at` finds the map a symbol in a map section names;
    `data_map` names the map of a global data section; `externs` are the object's externs."""

    def __init__(self, elf: ElfFile, code: dict[int, CodeSection], *, map_at: Callable[[Symbol], str | None],
                 data_map: Callable[[int], str | None], externs: dict[str, ExternSpec],
                 ext: BtfExt | None) -> None:
        self.elf = elf
        self.code = code
        self.map_at = map_at
        self.data_map = data_map
        self.externs = externs
        self.ext = ext
        self.little = elf.byteorder == "little"
        self.bo = "<" if self.little else ">"

    # -- instruction fields in the object's byte order

    def _src(self, buf: bytearray, i: int) -> int:
        b = buf[i * INSN + 1]
        return b >> 4 if self.little else b & 0xF

    def _set_src(self, buf: bytearray, i: int, src: int) -> None:
        b = buf[i * INSN + 1]
        buf[i * INSN + 1] = (src << 4 | b & 0xF) if self.little else (b & 0xF0 | src)

    def _imm(self, buf: bytearray, i: int) -> int:
        return int(struct.unpack_from(self.bo + "i", buf, i * INSN + 4)[0])

    def _set_imm(self, buf: bytearray, i: int, value: int) -> None:
        struct.pack_into(self.bo + "i", buf, i * INSN + 4, value)

    def _set_imm64(self, buf: bytearray, i: int, lo: int, hi: int) -> None:
        struct.pack_into(self.bo + "I", buf, i * INSN + 4, lo & 0xFFFFFFFF)
        struct.pack_into(self.bo + "I", buf, i * INSN + 12, hi & 0xFFFFFFFF)

    def _error(self, func: Function, slot: int, message: str, symbol: str | None = None) -> RelocationError:
        return RelocationError(f"{self.elf.name}: section {func.section.name!r}, instruction {slot} "
                               f"(in {func.name}): {message}", symbol)

    # -- the walk

    def link(self, main: Function) -> Linked:
        own = self.code[main.section.index].code
        buf = bytearray(own[main.start * INSN : (main.start + main.count) * INSN])
        placed: dict[tuple[int, int], int] = {(main.section.index, main.start): 0}
        order: list[tuple[Function, int]] = [(main, 0)]
        refs: list[Reference] = []

        def place(target: Function) -> tuple[int, bool]:
            key = (target.section.index, target.start)
            if key in placed:
                return placed[key], False
            base = len(buf) // INSN
            cs = self.code[target.section.index]
            buf.extend(cs.code[target.start * INSN : (target.start + target.count) * INSN])
            placed[key] = base
            order.append((target, base))
            return base, True

        # Each frame: (function, its base slot in buf, next slot within the function).
        stack: list[tuple[Function, int, int]] = [(main, 0, 0)]
        while stack:
            func, base, i = stack.pop()
            cs = self.code[func.section.index]
            while i < func.count:
                slot = func.start + i
                at = base + i
                opcode = buf[at * INSN]
                width = 2 if opcode == LD_IMM64 else 1
                reloc = cs.relocs.get(slot)
                callee: tuple[Function, int] | None = None
                if opcode == CALL:
                    callee = self._call(func, cs, slot, at, buf, reloc, refs)
                elif opcode == LD_IMM64:
                    callee = self._lddw(func, slot, at, buf, reloc, refs)
                elif reloc is not None:
                    raise self._error(func, slot, f"relocation on opcode 0x{opcode:02x}, which is neither a "
                                      "call nor an lddw", self.elf.symbol_name(reloc[1]))
                i += width
                if callee is not None:
                    target, target_slot = callee
                    cbase, new = place(target)
                    self._set_imm(buf, at, cbase + (target_slot - target.start) - (at + 1))
                    if new:
                        stack.append((func, base, i))
                        stack.append((target, cbase, 0))
                        break
        return self._finish(bytes(buf), refs, order)

    def _resolve_code(self, func: Function, slot: int, shndx: int, target_slot: int,
                      symbol: str) -> tuple[Function, int]:
        """The `.text` function holding `target_slot` of section `shndx`."""
        cs = self.code.get(shndx)
        if cs is None or target_slot not in cs.starts:
            raise self._error(func, slot, f"target instruction {target_slot} is not an instruction of a code "
                              "section", symbol)
        if cs.section.name != TEXT:
            raise self._error(func, slot, f"calls and function addresses must refer to {TEXT} (subprograms), "
                              f"not to section {cs.section.name!r}", symbol)
        target = cs.function_at(target_slot)
        if target is None:
            raise self._error(func, slot, f"target instruction {target_slot} of {TEXT} is in no function",
                              symbol)
        return target, target_slot

    def _call(self, func: Function, cs: CodeSection, slot: int, at: int, buf: bytearray,
              reloc: tuple[Relocation, Symbol] | None, refs: list[Reference]) -> tuple[Function, int] | None:
        src = self._src(buf, at)
        imm = self._imm(buf, at)
        if reloc is None:
            if src != PseudoCall.CALL:
                return None  # a helper call
            # A call within the section needs no relocation: imm is relative to the next instruction.
            return self._resolve_code(func, slot, func.section.index, slot + imm + 1, func.name)
        rel, sym = reloc
        name = self.elf.symbol_name(sym)
        self._check_type(func, slot, rel, name)
        if sym.is_undefined:
            ext = self.externs.get(sym.name)
            if ext is None or ext.kind is not ExternKind.KFUNC:
                raise self._error(func, slot, f"call to extern {name!r}, which is not a __ksym function",
                                  name)
            self._set_src(buf, at, PseudoCall.KFUNC)
            self._set_imm(buf, at, 0)
            refs.append(Reference(at, RefKind.KFUNC, ext.name, 0, name))
            return None
        if src != PseudoCall.CALL:
            raise self._error(func, slot, f"relocated call has src {src}, expected {PseudoCall.CALL} "
                              "(BPF_PSEUDO_CALL)", name)
        if sym.value % INSN:
            raise self._error(func, slot, f"call target offset {sym.value} is not instruction-aligned", name)
        return self._resolve_code(func, slot, sym.shndx, sym.value // INSN + imm + 1, name)

    def _check_type(self, func: Function, slot: int, rel: Relocation, name: str) -> None:
        if rel.type not in (RelocType.R_64_64, RelocType.R_64_32):
            raise self._error(func, slot, f"relocation type {rel.type} cannot patch an instruction "
                              "(expected R_BPF_64_64 or R_BPF_64_32)", name)

    def _lddw(self, func: Function, slot: int, at: int, buf: bytearray,
              reloc: tuple[Relocation, Symbol] | None, refs: list[Reference]) -> tuple[Function, int] | None:
        if reloc is None:
            return None
        rel, sym = reloc
        name = self.elf.symbol_name(sym)
        self._check_type(func, slot, rel, name)
        imm = self._imm(buf, at)
        if sym.is_undefined:
            ext = self.externs.get(sym.name)
            if ext is None:
                raise self._error(func, slot, f"lddw of undefined symbol {name!r}, which is no extern", name)
            if ext.kind is ExternKind.KCONFIG:
                self._set_src(buf, at, PseudoSrc.MAP_VALUE)
                self._set_imm64(buf, at, 0, ext.offset)
                refs.append(Reference(at, RefKind.MAP_VALUE, ".kconfig", ext.offset, name))
            else:
                typed = ext.kind is ExternKind.KFUNC or not ext.typeless
                self._set_src(buf, at, PseudoSrc.BTF_ID if typed else PseudoSrc.NONE)
                self._set_imm64(buf, at, 0, 0)
                refs.append(Reference(at, RefKind.KSYM, ext.name, 0, name))
            return None
        if not sym.in_section:
            raise self._error(func, slot, f"lddw of {name!r} in special section 0x{sym.shndx:x} (an "
                              "uninitialised global variable?)", name)
        if sym.shndx in self.code:
            # The address of a function (a callback): src BPF_PSEUDO_FUNC, imm relative like a call.
            off = sym.value + imm
            if sym.value % INSN or imm % INSN:
                raise self._error(func, slot, f"function address {sym.value}+{imm} is not "
                                  "instruction-aligned", name)
            self._set_src(buf, at, PseudoSrc.FUNC)
            self._set_imm64(buf, at, 0, 0)
            return self._resolve_code(func, slot, sym.shndx, off // INSN, name)
        map_name = self.map_at(sym)
        if map_name is not None:
            self._set_src(buf, at, PseudoSrc.MAP_FD)
            self._set_imm64(buf, at, 0, 0)
            refs.append(Reference(at, RefKind.MAP, map_name, 0, name))
            return None
        data = self.data_map(sym.shndx)
        if data is not None:
            sec = self.elf.sections[sym.shndx]
            off = sym.value + imm
            if not 0 <= off <= sec.size:
                raise self._error(func, slot, f"offset {off} is outside section {sec.name!r} ({sec.size} "
                                  "bytes)", name)
            self._set_src(buf, at, PseudoSrc.MAP_VALUE)
            self._set_imm64(buf, at, 0, off)
            refs.append(Reference(at, RefKind.MAP_VALUE, data, off, name))
            return None
        sec_name = self.elf.sections[sym.shndx].name
        raise self._error(func, slot, f"lddw relocation against section {sec_name!r}, which holds no maps, "
                          "global data or code", name)

    # -- .BTF.ext records follow their instructions

    def _finish(self, insns: bytes, refs: list[Reference], order: list[tuple[Function, int]]) -> Linked:
        subprograms = []
        finfo: list[tuple[int, int]] = []
        lines: list[SourceLine] = []
        line_raw: list[tuple[int, int, int, int]] = []
        relos: list[CoreRelocation] = []
        ext = self.ext
        for func, base in order:
            lo, hi = func.start * INSN, (func.start + func.count) * INSN
            sec = func.section.name
            btf_id = 0
            if ext is not None:
                for fi in ext.func_info.get(sec, ()):
                    if lo <= fi.insn_off < hi:
                        idx = base + fi.insn_off // INSN - func.start
                        finfo.append((idx, fi.type_id))
                        if idx == base:
                            btf_id = fi.type_id
                for li in ext.line_info.get(sec, ()):
                    if lo <= li.insn_off < hi:
                        idx = base + li.insn_off // INSN - func.start
                        lines.append(SourceLine(idx, li.file_name, li.line, li.column, li.line_text))
                        line_raw.append((idx, li.file_name_off, li.line_off, li.line << 10 | li.column))
                for cr in ext.core_relos.get(sec, ()):
                    if lo <= cr.insn_off < hi:
                        idx = base + cr.insn_off // INSN - func.start
                        relos.append(CoreRelocation(idx, cr.kind, cr.type_id, cr.access))
            subprograms.append(Subprogram(base, func.name, sec, btf_id))
        bo = self.bo
        return Linked(
            insns,
            tuple(sorted(refs, key=lambda r: r.index)),
            tuple(subprograms),
            b"".join(struct.pack(bo + "II", *r) for r in finfo),
            b"".join(struct.pack(bo + "IIII", *r) for r in line_raw),
            tuple(lines),
            tuple(relos),
        )


def check_static_programs(elf: ElfFile, code: dict[int, CodeSection]) -> None:
    """libbpf refuses static functions outside .text (they could be neither programs nor subprograms)."""
    for cs in code.values():
        if cs.section.name == TEXT:
            continue
        for f in cs.functions:
            if not f.is_global:
                raise ElfError(f"function {f.name!r} is static; a function in a program section must be "
                               "global (static functions belong in .text)", where=f"{elf.name}: section "
                               f"{cs.section.name!r}")
