"""Reports and logs: where (instruction, source line), how (path, branch decisions), with what
(registers, stack) and what to change; the kernel-style log at levels 1 and 2."""

from __future__ import annotations

import pytest

from bpfkit.errors import VerificationError
from bpfkit.isa import assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm.verifier import Report, verify

HASH = MapSpec(MapType.HASH, 8, 16, 4, name="counts")
NULL_DEREF = """
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    r2 = r10
    r2 += -8
    r1 = map[id:0]
    call bpf_map_lookup_elem
    r6 = 0
    if r6 == 1 goto skip
    r0 = *(u64 *)(r0 + 0)
skip:
    r0 = 0
    exit
"""
LINES = {0: ("prog.c", 10, "    __u64 key = 0;"),
         6: ("prog.c", 11, "    v = bpf_map_lookup_elem(&counts, &key);"),
         9: ("prog.c", 12, "    return *v;")}


def _report(text: str, **kw: object) -> Report:
    with pytest.raises(VerificationError) as info:
        verify(assemble(text), **kw)  # type: ignore[arg-type]
    report = info.value.report
    assert isinstance(report, Report)
    return report


def test_report_of_a_null_dereference() -> None:
    r = _report(NULL_DEREF, prog_type=ProgType.XDP, maps={0: HASH}, line_info=LINES)
    assert r.insn == 9 and r.instruction == "r0 = *(u64 *)(r0 + 0)"
    assert r.message == "R0 invalid mem access 'map_value_or_null'"
    assert r.hint == ("check the pointer returned by bpf_map_lookup_elem against NULL (`if r0 == 0 goto "
                      "...`) before dereferencing it")
    assert r.source is not None and (r.source.file, r.source.line) == ("prog.c", 12)
    assert r.path == (0, 1, 2, 3, 4, 6, 7, 8, 9)  # slot 5 is the second half of the map load
    assert [(e.src, e.dst, e.kind) for e in r.decisions] == [(8, 9, "not taken")]
    regs = dict(r.registers)
    assert regs["R0"] == "map_value_or_null(id=1,map=counts,ks=8,vs=16)"
    assert regs["R6"] == "0" and regs["R10"] == "fp0" and "R1" not in regs
    assert r.stack == ((-8, "0"),)
    text = str(r)
    assert text.splitlines()[0] == "insn 9 (r0 = *(u64 *)(r0 + 0)): R0 invalid mem access 'map_value_or_null'"
    assert "source: prog.c:12: return *v;" in text
    assert "branches: 8 not taken" in text and "hint: check the pointer" in text


def test_report_in_a_function_names_the_frame() -> None:
    r = _report("call f\nexit\nf:\nr0 = *(u64 *)(r2 + 0)\nexit", prog_type=ProgType.XDP)
    assert r.insn == 2 and r.frame == 1 and r.message == "R2 !read_ok"
    assert r.path == (0, 2) and r.decisions[0].kind == "call"
    assert "registers (frame 1)" in str(r)


def test_structural_refusal_has_no_path() -> None:
    r = _report("r0 = 0\nexit\nr0 = 1\nexit", prog_type=ProgType.XDP)
    assert r.insn == 2 and r.path == () and r.registers == () and r.instruction == "r0 = 1"


def test_log_level_2_lines() -> None:
    result = verify(assemble("r0 = 0\nr1 = r10\nr1 += -8\nexit"), prog_type=ProgType.XDP, log_level=2)
    lines = result.log.splitlines()
    assert lines[0].startswith("0: (b7) r0 = 0") and lines[0].endswith("; R0_w=0")
    assert lines[2].startswith("2: (07) r1 += -8") and lines[2].endswith("; R1_w=fp-8")
    assert lines[3] == "3: (95) exit"
    assert lines[-1].startswith("processed 4 insns (limit 1000000)")


def test_log_level_1_shows_branches_and_the_error() -> None:
    r = _report("r0 = 0\nif r1 == 0 goto +1\nr0 = r2\nexit", prog_type=ProgType.XDP, log_level=1)
    lines = r.log.splitlines()
    assert "1: (15) if r1 == 0 goto +1" in lines and "2: (bf) r0 = r2" in lines
    assert lines[-1] == "R2 !read_ok"
    assert not any(";" in ln for ln in lines)


def test_no_log_by_default() -> None:
    assert verify(assemble("r0 = 0\nexit"), prog_type=ProgType.XDP).log == ""
