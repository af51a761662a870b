"""`load_object` on every committed fixture, against the manifest (itself verified by loading with
libbpf), llvm-objdump (instruction bytes, relocations) and pyelftools (symbols, section bytes)."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

from bpfkit.obj import ObjectSpec, ProgramSpec, RefKind, load_object
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.uapi.insn import PseudoCall, PseudoSrc

from .oracle import C_DIR, OBJ_DIR, OBJECTS, FuncSym, Listing, functions, llvm_objdump, section_bytes

NAMES = [o["object"] for o in OBJECTS]
CALL = 0x85
LDDW = 0x18


def _load(name: str) -> ObjectSpec:
    return load_object(OBJ_DIR / name)


def _slots(code: bytes) -> list[int]:
    """Instruction start slots of bytecode (an lddw takes two)."""
    out, i = [], 0
    while i < len(code) // 8:
        out.append(i)
        i += 2 if code[i * 8] == LDDW else 1
    return out


def _src(code: bytes, slot: int) -> int:
    return code[slot * 8 + 1] >> 4


def _imm(code: bytes, slot: int) -> int:
    return int(struct.unpack_from("<i", code, slot * 8 + 4)[0])


def _insns(p: ProgramSpec) -> bytes:
    assert isinstance(p.insns, bytes)
    return p.insns


@pytest.mark.parametrize("name", NAMES)
def test_programs_sections_and_types_match_the_manifest(name: str) -> None:
    obj = _load(name)
    expected = {p["name"]: p for p in next(o for o in OBJECTS if o["object"] == name)["programs"]}
    assert set(obj.programs) == set(expected)
    for pname, p in obj.programs.items():
        want = expected[pname]
        assert p.name == pname
        assert p.section == want["section"]
        assert p.type is ProgType[want["prog_type"].upper()]
        if want["attach_type"] is not None:
            assert p.expected_attach_type is AttachType[want["attach_type"].upper()]
        elif p.section == "xdp":
            assert p.expected_attach_type is AttachType.XDP  # libbpf passes BPF_XDP for SEC("xdp")
        else:
            assert p.expected_attach_type is None
        assert p.license == obj.license


@pytest.mark.parametrize("name", NAMES)
def test_maps_externs_and_data_sections_match_the_manifest(name: str) -> None:
    obj = _load(name)
    want: dict[str, Any] = next(o for o in OBJECTS if o["object"] == name)
    user_maps = {n for n, m in obj.maps.items() if m.section in (".maps", "maps")}
    assert user_maps == set(want["maps"])
    assert set(obj.externs) == set(want["externs"])
    data_maps = {n for n, m in obj.maps.items() if m.section not in (".maps", "maps", ".kconfig")}
    assert data_maps == set(want["data_sections"])
    sections = section_bytes(OBJ_DIR / name)
    for sec in want["data_sections"]:
        m = obj.maps[sec]
        assert (m.key_size, m.value_size, m.max_entries) == (4, len(sections[sec]), 1)
        value = m.contents[0][1] if m.contents else bytes(m.value_size)
        assert value == sections[sec]
        assert m.freeze == sec.startswith(".rodata")
        assert bool(m.flags & 0x80) == sec.startswith(".rodata")  # BPF_F_RDONLY_PROG


def _check_own_code(p: ProgramSpec, listing: Listing, sym: FuncSym, obj: ObjectSpec,
                    funcs: dict[str, FuncSym]) -> None:
    """The program's own instructions are the section bytes at its symbol, except where relocated."""
    own = sym.size // 8
    original = listing.span(sym.value // 8, own)
    code = _insns(p)
    assert len(original) == own * 8
    refs = {r.index: r for r in p.references}
    relocated = {off // 8 - sym.value // 8: rel for off, rel in listing.relocs.items()
                 if sym.value <= off < sym.value + sym.size}
    for slot in _slots(original):
        mine, theirs = code[slot * 8 : slot * 8 + 8], original[slot * 8 : slot * 8 + 8]
        kfunc = slot in refs and refs[slot].kind is RefKind.KFUNC
        if theirs[0] == CALL and _src(original, slot) == PseudoCall.CALL and not kfunc:
            assert mine[0] == CALL and _src(code, slot) == PseudoCall.CALL
            _check_call(p, code, slot, original, listing, sym, relocated.get(slot), funcs)
            continue
        if slot in relocated:
            _, symbol = relocated[slot]
            if theirs[0] == LDDW:
                ref = refs.get(slot)
                if ref is None:  # a function address (callback): src BPF_PSEUDO_FUNC
                    assert _src(code, slot) == PseudoSrc.FUNC
                else:
                    assert ref.symbol == symbol, (p.name, slot)
                    _check_lddw_reference(code, slot, ref.kind, ref.offset, obj, ref.target)
            else:
                assert theirs[0] == CALL and refs[slot].kind is RefKind.KFUNC
                assert _src(code, slot) == PseudoCall.KFUNC
            # Everything but src and imm is as compiled.
            assert mine[0] == theirs[0] and mine[1] & 0xF == theirs[1] & 0xF and mine[2:4] == theirs[2:4]
            continue
        assert slot not in refs
        width = 16 if theirs[0] == LDDW else 8
        assert code[slot * 8 : slot * 8 + width] == original[slot * 8 : slot * 8 + width], (p.name, slot)


def _check_lddw_reference(code: bytes, slot: int, kind: RefKind, offset: int, obj: ObjectSpec,
                          target: str) -> None:
    hi = int(struct.unpack_from("<I", code, slot * 8 + 12)[0])
    if kind is RefKind.MAP:
        assert _src(code, slot) == PseudoSrc.MAP_FD and target in obj.maps
    elif kind is RefKind.MAP_VALUE:
        assert _src(code, slot) == PseudoSrc.MAP_VALUE and target in obj.maps
        assert hi == offset and 0 <= offset <= obj.maps[target].value_size
    else:
        assert kind is RefKind.KSYM and target in obj.externs
        assert _src(code, slot) == (PseudoSrc.NONE if obj.externs[target].typeless else PseudoSrc.BTF_ID)


def _check_call(p: ProgramSpec, code: bytes, slot: int, original: bytes, listing: Listing, sym: FuncSym,
                reloc: tuple[str, str] | None, funcs: dict[str, FuncSym]) -> None:
    """A bpf-to-bpf call lands on the first instruction of the appended copy of the function the
    compiled call meant (by relocation symbol + imm, or relative within the section)."""
    starts = {s.index: s.name for s in p.subprograms}
    target = slot + 1 + _imm(code, slot)
    assert target in starts, f"{p.name}: call at {slot} lands on {target}, not on a subprogram start"
    imm = _imm(original, slot)
    if reloc is None:
        meant_off = sym.value + (slot + 1 + imm) * 8
        section = sym.section
    elif reloc[1] in funcs:
        meant_off = funcs[reloc[1]].value + (imm + 1) * 8
        section = funcs[reloc[1]].section
    else:
        meant_off = (imm + 1) * 8  # a section symbol: st_value 0
        section = reloc[1]
    meant = [f.name for f in funcs.values() if f.section == section and f.value == meant_off]
    assert starts[target] in meant


@pytest.mark.parametrize("name", NAMES)
def test_instructions_match_llvm_objdump(name: str) -> None:
    obj = _load(name)
    listings = llvm_objdump(name)
    funcs = functions(OBJ_DIR / name)
    for p in obj.programs.values():
        sym = funcs[p.name]
        code = _insns(p)
        # Own code first, then each appended subprogram: sizes add up to the whole program.
        assert p.subprograms[0].index == 0 and p.subprograms[0].name == p.name
        sizes = [funcs[s.name].size // 8 for s in p.subprograms]
        assert [s.index for s in p.subprograms] == [sum(sizes[:i]) for i in range(len(sizes))]
        assert len(code) // 8 == sum(sizes)
        _check_own_code(p, listings[p.section], sym, obj, funcs)
        for sub in p.subprograms[1:]:
            fsym = funcs[sub.name]
            assert sub.section == fsym.section == ".text"
            copy = ProgramSpec(p.type, code[sub.index * 8 :], name=sub.name, references=tuple(
                r.__class__(r.index - sub.index, r.kind, r.target, r.offset, r.symbol)
                for r in p.references if r.index >= sub.index), subprograms=tuple(
                s.__class__(s.index - sub.index, s.name) for s in p.subprograms if s.index >= sub.index))
            # Calls out of the copy may target subprograms placed before it: check them in the whole program.
            _check_subprogram_copy(p, copy, listings[".text"], fsym, obj, funcs, sub.index)


def _check_subprogram_copy(p: ProgramSpec, copy: ProgramSpec, listing: Listing, fsym: FuncSym,
                           obj: ObjectSpec, funcs: dict[str, FuncSym], base: int) -> None:
    code = _insns(p)
    own = fsym.size // 8
    original = listing.span(fsym.value // 8, own)
    starts = {s.index for s in p.subprograms}
    for slot in _slots(original):
        at = base + slot
        if original[slot * 8] == CALL and _src(original, slot) == PseudoCall.CALL:
            assert at + 1 + _imm(code, at) in starts
            continue
        if fsym.value + slot * 8 in listing.relocs:
            continue  # checked through references below
        width = 16 if original[slot * 8] == LDDW else 8
        assert code[at * 8 : at * 8 + width] == original[slot * 8 : slot * 8 + width]
    for r in copy.references:
        if r.index < own:
            assert code[(base + r.index) * 8] in (LDDW, CALL)


@pytest.mark.parametrize("name", NAMES)
def test_every_relocation_becomes_a_reference_on_an_lddw_or_call(name: str) -> None:
    obj = _load(name)
    listings = llvm_objdump(name)
    funcs = functions(OBJ_DIR / name)
    for p in obj.programs.values():
        code = _insns(p)
        for r in p.references:
            opcode = code[r.index * 8]
            assert opcode == (CALL if r.kind is RefKind.KFUNC else LDDW), (p.name, r)
        own = funcs[p.name]
        expected = {off // 8 - own.value // 8 for off, (_, s) in listings[p.section].relocs.items()
                    if own.value <= off < own.value + own.size}
        found = {r.index for r in p.references if r.index < own.size // 8}
        calls = {s for s in expected if code[s * 8] == CALL and _src(code, s) == PseudoCall.CALL}
        funcs_taken = {s for s in expected if code[s * 8] == LDDW and _src(code, s) == PseudoSrc.FUNC}
        assert found == expected - calls - funcs_taken


def test_line_and_func_info_follow_the_linked_instructions() -> None:
    obj = _load("subprogs.v3.o")
    p = obj.programs["subprogs"]
    assert obj.btf is not None
    finfo = list(struct.iter_unpack("<II", p.func_info))
    assert p.func_info_rec_size == 8 and p.line_info_rec_size == 16
    # One func_info per function, at its first instruction, naming it.
    assert [idx for idx, _ in finfo] == [s.index for s in p.subprograms]
    for (_, type_id), sub in zip(finfo, p.subprograms, strict=True):
        assert getattr(obj.btf.type_by_id(type_id), "name", None) == sub.name
        assert sub.btf_type_id == type_id
    lines = list(struct.iter_unpack("<IIII", p.line_info))
    assert [ln[0] for ln in lines] == sorted(ln[0] for ln in lines)
    assert lines[0][0] == 0 and lines[-1][0] < len(_insns(p)) // 8
    assert [ln.index for ln in p.lines] == [ln[0] for ln in lines]
    source = (C_DIR / "subprogs.c").read_text().splitlines()
    defs = sorted((n + 1, line) for n, line in enumerate(source) if re.match(r"^\S.*\b\w+\(.*\)$", line))
    for sub in p.subprograms:
        first = next(ln for ln in p.lines if ln.index >= sub.index)
        assert first.index == sub.index and first.file == "./subprogs.c"
        assert source[first.line - 1] == first.text
        # The first line of each copy lies in that function's body in the source.
        owner = [text for n, text in defs if n <= first.line][-1]
        assert re.search(rf"\b{sub.name}\(", owner), (sub.name, first)
    text = {ln.text.strip() for ln in p.lines}
    assert "return x * 3 + 1;" in text


def test_core_relocations_are_parsed_per_program() -> None:
    obj = _load("core_task.o")
    p = obj.programs["core_task"]
    assert obj.btf is not None
    got = [(r.kind.name, obj.btf.type_str(r.type_id), r.access) for r in p.core_relos]
    # task->pid, task->tgid, plain->pid, task->comm, task->real_parent, parent->tgid (core_task.c)
    assert got == [
        ("FIELD_BYTE_OFFSET", "struct task_struct___local", "0:3"),
        ("FIELD_BYTE_OFFSET", "struct task_struct___local", "0:2"),
        ("FIELD_BYTE_OFFSET", "struct task_struct___plain", "0:0"),
        ("FIELD_BYTE_OFFSET", "struct task_struct___local", "0:0"),
        ("FIELD_BYTE_OFFSET", "struct task_struct___local", "0:1"),
        ("FIELD_BYTE_OFFSET", "struct task_struct___local", "0:2"),
    ]
    code = _insns(p)
    for r in p.core_relos:
        # A field offset relocates the ALU instruction that adds it (or the load that uses it).
        assert code[r.index * 8] & 0x07 in (0x01, 0x04, 0x07), r


def test_license_and_version_sections() -> None:
    obj = _load("license_version.o")
    assert obj.license == "GPL" and obj.kern_version == 0x060000
    assert obj.programs["license_version"].kern_version == 0x060000
    prop = _load("license_proprietary.o")
    assert prop.license == "Proprietary"
    assert prop.programs["license_proprietary"].license == "Proprietary"


def test_bytes_and_path_give_the_same_object() -> None:
    path = OBJ_DIR / "maps_btf.o"
    a = load_object(path)
    b = load_object(Path(path).read_bytes(), name="maps_btf.o")
    assert a.programs == b.programs and a.maps == b.maps and a.variables == b.variables
    assert a.name == b.name == "maps_btf"
