"""CO-RE relocation (`bpfkit.btf.core`), pure: the CO-RE fixtures relocated against the live kernel's BTF
(read as a file) and against hand-built target BTF with reordered, renamed and missing members.

The kernel-side oracle (relocated programs equal to libbpf's after the verifier) is in
tests/kernel/test_collection.py.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.btf import (
    Array,
    Enum,
    EnumValue,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Spec,
    Struct,
    Typedef,
    load_btf,
    marshal,
)
from bpfkit.btf.core import POISON_HELPER, CoreResult, essential_name, relocate
from bpfkit.errors import BpfkitError, CoreRelocationError
from bpfkit.obj import CoreRelocation, ObjectSpec, load_object
from bpfkit.uapi.btf import CoreReloKind

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
VMLINUX = "/sys/kernel/btf/vmlinux"
INSN = struct.Struct("<BBhi")
SIGNED = IntEncoding.SIGNED


def insn_at(code: bytes, index: int) -> tuple[int, int, int, int]:
    code_, regs, off, imm = INSN.unpack_from(code, index * 8)
    return int(code_), int(regs), int(off), int(imm)


def lddw_value(code: bytes, index: int) -> int:
    lo = insn_at(code, index)[3] & 0xFFFFFFFF
    hi = insn_at(code, index + 1)[3] & 0xFFFFFFFF
    return lo | hi << 32


def fixture(name: str) -> tuple[ObjectSpec, bytes, tuple[CoreRelocation, ...]]:
    obj = load_object(OBJ / name)
    (prog,) = obj.programs.values()
    assert isinstance(prog.insns, bytes) and obj.btf is not None
    return obj, prog.insns, prog.core_relos


def run(name: str, target: Spec) -> tuple[bytes, dict[int, CoreResult]]:
    obj, code, relos = fixture(name)
    assert obj.btf is not None
    out, results = relocate(code, relos, obj.btf, target, where=name)
    return out, {r.index: r for r in results}


def target_of(*types: object) -> Spec:
    return load_btf(marshal(types))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(("name", "want"), [
    ("task_struct___local", "task_struct"),
    ("task_struct", "task_struct"),
    ("a___b___c", "a___b"),
    ("pid_t___local", "pid_t"),
    ("__x___y", "__x"),
    ("x____y", "x____y"),  # four underscores: no X___Y separator with Y not '_'... at the last spot
    ("___x", "___x"),
])
def test_essential_name_strips_the_last_flavor(name: str, want: str) -> None:
    assert essential_name(name) == want


# --------------------------------------------------------------------------------- live vmlinux

needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no /sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def vmlinux() -> Spec:
    return load_btf(VMLINUX)


@needs_vmlinux
def test_core_task_offsets_are_the_kernels(vmlinux: Spec) -> None:
    out, res = run("core_task.o", vmlinux)
    task = vmlinux.find("task_struct", Struct)
    want = {13: "pid", 23: "tgid", 42: "pid", 56: "comm", 79: "real_parent", 92: "tgid"}
    for index, member in want.items():
        off = vmlinux.member(task, member).byte_offset
        assert res[index].target == off and res[index].target_type_id == task.id
        assert insn_at(out, index)[3] == off  # "r1 = <offset>" now holds the kernel's offset
    assert not any(r.poisoned for r in res.values())


@needs_vmlinux
def test_core_field_info_against_the_kernel(vmlinux: Spec) -> None:
    out, res = run("core_field_info.o", vmlinux)
    task = vmlinux.find("task_struct", Struct)
    pid = vmlinux.member(task, "pid")
    bit = vmlinux.member(task, "sched_reset_on_fork")
    assert res[4].target == 4 and res[7].target == 1  # pid: int, signed
    assert res[9].target == pid.byte_offset
    assert res[20].target == 4 and res[23].target == 0  # flags: unsigned int
    assert res[26].target == 16  # comm[TASK_COMM_LEN]
    # sched_reset_on_fork: a 1-bit field in a 4-byte unit
    byte_off = res[46].target
    assert byte_off % 4 == 0 and res[48].target == 4
    assert res[36].target == 63
    assert res[34].target == 64 - (bit.bit_offset + 1 - byte_off * 8)
    assert res[57].target == 0 and res[59].target == 0  # missing member / missing struct
    assert insn_at(out, 57)[3] == 0 and not res[57].poisoned


@needs_vmlinux
def test_core_type_enum_against_the_kernel(vmlinux: Spec) -> None:
    out, res = run("core_type_enum.o", vmlinux)
    task = vmlinux.find("task_struct", Struct)
    assert res[4].target == 16 and res[10].target == 4
    assert res[13].target == task.size
    assert res[16].target == 0
    assert res[18].target == 13  # local id unchanged
    assert lddw_value(out, 24) == task.id
    assert lddw_value(out, 35) == 2 and lddw_value(out, 39) == 27  # BPF_MAP_TYPE_ARRAY, RINGBUF
    assert lddw_value(out, 42) == 0


# ------------------------------------------------------------------------------ hand-built targets

INT, UINT, CHAR = Int("int", 4, SIGNED), Int("unsigned int", 4), Int("char", 1, SIGNED)


def task_target(members: list[tuple[str, int]], size: int = 64, name: str = "task_struct") -> Spec:
    """ids: 1 int, 2 unsigned int, 3 char, 4 char[16], 5 ptr to 6, 6 the struct."""
    types = {"pid": 1, "tgid": 1, "comm": 4, "real_parent": 5}
    mems = tuple(Member(n, types[n], off * 8) for n, off in members)
    return target_of(INT, UINT, CHAR, Array(3, 1, 16), Ptr(6), Struct(name, size, mems))


def test_reordered_members_get_the_targets_offsets() -> None:
    target = task_target([("real_parent", 0), ("pid", 8), ("comm", 12), ("tgid", 40)])
    out, res = run("core_task.o", target)
    assert {i: r.target for i, r in res.items()} == {13: 8, 23: 40, 42: 8, 56: 12, 79: 0, 92: 40}
    assert insn_at(out, 23)[3] == 40


def test_missing_member_poisons_only_its_relocations() -> None:
    target = task_target([("real_parent", 0), ("pid", 8), ("comm", 12)])
    out, res = run("core_task.o", target)
    for index in (23, 92):  # the tgid reads
        assert res[index].poisoned
        assert insn_at(out, index) == (0x85, 0, 0, POISON_HELPER)
    assert not res[13].poisoned and insn_at(out, 13)[3] == 8


def test_renamed_struct_has_no_candidate() -> None:
    target = task_target([("pid", 0)], name="task")
    _out, res = run("core_task.o", target)
    assert all(r.poisoned for r in res.values())
    _, res2 = run("core_field_info.o", target)
    assert res2[1].target == 0 and not res2[1].poisoned  # FIELD_EXISTS: 0, not poison
    assert res2[4].poisoned


def test_incompatible_member_type_does_not_match() -> None:
    # pid as a struct in the target: an int cannot be relocated onto it
    t = target_of(INT, Struct("pid_s", 4, (Member("x", 1, 0),)),
                  Struct("task_struct", 8, (Member("pid", 2, 0),)))
    _, res = run("core_task.o", t)
    assert res[13].poisoned


def test_anonymous_members_are_looked_through() -> None:
    inner = Struct("", 8, (Member("tgid", 1, 0), Member("pid", 1, 32)))
    t = target_of(INT, inner, Struct("task_struct", 24, (Member("x", 1, 0), Member("", 2, 64))))
    _, res = run("core_task.o", t)
    assert res[13].target == 12 and res[23].target == 8


def test_disagreeing_candidates_are_an_error() -> None:
    t = target_of(INT, Struct("task_struct", 8, (Member("pid", 1, 0),)),
                  Struct("task_struct", 8, (Member("pid", 1, 32),)))
    with pytest.raises(CoreRelocationError, match="candidates disagree"):
        run("core_task.o", t)


def test_agreeing_candidates_are_fine() -> None:
    t = target_of(INT, Struct("task_struct", 8, (Member("pid", 1, 0),)),
                  Struct("task_struct", 16, (Member("pid", 1, 0), Member("x", 1, 64))))
    _, res = run("core_task.o", t)
    assert res[13].target == 0 and res[13].target_type_id == 2


def test_bitfield_in_a_hand_built_target() -> None:
    # unsigned int sched_reset_on_fork:1 at bit 45 of an 8-byte unit, flags at 0, pid at 8
    mems = (Member("flags", 2, 0), Member("sched_reset_on_fork", 2, 45, 1), Member("pid", 1, 64),
            Member("comm", 3, 96))
    t = target_of(INT, UINT, Array(4, 1, 16), CHAR, Struct("task_struct", 32, mems))
    _, res = run("core_field_info.o", t)
    # a 4-byte unit holding bit 45..45: bytes 4..7
    assert res[46].target == 4 and res[48].target == 4
    assert res[34].target == 64 - (45 + 1 - 32) and res[36].target == 63
    assert res[32].target == 0  # unsigned
    assert res[9].target == 8 and res[26].target == 16


def test_enum_values_and_missing_enumerators() -> None:
    e = Enum("bpf_map_type", 4, (EnumValue("BPF_MAP_TYPE_ARRAY", 5),))
    out, res = run("core_type_enum.o", target_of(e))
    assert res[31].target == 1 and lddw_value(out, 35) == 5
    assert res[39].poisoned  # RINGBUF missing: ENUMVAL_VALUE poisons (both halves of the lddw)
    assert insn_at(out, 39) == (0x85, 0, 0, POISON_HELPER) == insn_at(out, 40)
    assert res[42].target == 0 and not res[42].poisoned


def test_type_size_and_typedefs() -> None:
    t = target_of(Int("int", 4, SIGNED), Typedef("pid_t", 1), Ptr(0),
                  Struct("list_head", 16, (Member("next", 3, 0), Member("prev", 3, 64))))
    _out, res = run("core_type_enum.o", t)
    assert res[10].target == 4 and res[7].target == 1
    assert res[4].target == 16
    assert res[13].poisoned  # no task_struct: TYPE_SIZE poisons


def test_typedef_to_a_different_kind_is_not_compatible() -> None:
    t = target_of(Struct("s", 8), Typedef("pid_t", 1))
    _, res = run("core_type_enum.o", t)
    assert res[7].target == 0  # typedef pid_t resolves to a struct, the local one to an int


def test_no_target_resolves_only_local_ids() -> None:
    obj, code, relos = fixture("core_type_enum.o")
    assert obj.btf is not None
    _out, results = relocate(code, relos, obj.btf, None)
    by = {r.index: r for r in results}
    assert by[18].target == 13 and not by[18].poisoned
    assert by[1].target == 0 and by[24].poisoned


# ----------------------------------------------------------------------------------- error paths


@dataclass(frozen=True)
class Relo:
    index: int
    kind: CoreReloKind
    type_id: int
    access: str


def local_btf() -> Spec:
    # 1 unsigned int, 2 int, 3 struct s { unsigned int a; int b; }
    return target_of(UINT, INT, Struct("s", 8, (Member("a", 1, 0), Member("b", 2, 32))))


def ldx(size: int, off: int) -> bytes:
    return INSN.pack(0x61 if size == 4 else 0x79, 0x10, off, 0) + INSN.pack(0x95, 0, 0, 0)


def test_unsigned_load_is_widened_to_the_target_size() -> None:
    target = target_of(Int("long unsigned int", 8), Int("long", 8, SIGNED),
                       Struct("s", 24, (Member("x", 2, 0), Member("a", 1, 64), Member("b", 2, 128))))
    relo = Relo(0, CoreReloKind.FIELD_BYTE_OFFSET, 3, "0:0")
    out, (res,) = relocate(ldx(4, 0), [relo], local_btf(), target)
    assert insn_at(out, 0) == (0x79, 0x10, 8, 0) and res.target == 8  # ldxw became ldxdw at offset 8
    with pytest.raises(CoreRelocationError, match="cannot be adjusted"):
        relocate(ldx(4, 4), [Relo(0, CoreReloKind.FIELD_BYTE_OFFSET, 3, "0:1")], local_btf(), target)


def test_instruction_not_holding_the_compilers_value_is_an_error() -> None:
    target = target_of(UINT, INT, Struct("s", 8, (Member("b", 2, 0), Member("a", 1, 32))))
    with pytest.raises(CoreRelocationError, match="instruction 0 has offset 12, expected 4"):
        relocate(ldx(4, 12), [Relo(0, CoreReloKind.FIELD_BYTE_OFFSET, 3, "0:1")], local_btf(), target,
                 where="x.o")


@pytest.mark.parametrize(("access", "match"), [
    ("0:7", "no member #7"), ("a:b", "malformed"), ("", "malformed"), ("0:0:1", "not a struct"),
])
def test_malformed_access_strings(access: str, match: str) -> None:
    with pytest.raises(CoreRelocationError, match=match):
        relocate(ldx(4, 0), [Relo(0, CoreReloKind.FIELD_BYTE_OFFSET, 3, access)], local_btf(), local_btf())


def test_relocation_outside_the_program() -> None:
    with pytest.raises(CoreRelocationError, match="outside the program"):
        relocate(ldx(4, 0), [Relo(9, CoreReloKind.FIELD_BYTE_OFFSET, 3, "0:0")], local_btf(), local_btf())


# ------------------------------------------------------------------------------------ fuzzing


@settings(max_examples=300, deadline=None)
@given(index=st.integers(-2, 70), kind=st.integers(0, 14), type_id=st.integers(0, 40),
       access=st.one_of(st.lists(st.integers(0, 20), max_size=5).map(lambda xs: ":".join(map(str, xs))),
                        st.text(max_size=8)),
       reordered=st.booleans())
def test_arbitrary_records_give_results_or_bpfkit_errors(index: int, kind: int, type_id: int, access: str,
                                                        reordered: bool) -> None:
    obj, code, _ = fixture("core_field_info.o")
    assert obj.btf is not None
    target = task_target([("real_parent", 0), ("pid", 8), ("comm", 12)]) if reordered else obj.btf
    relo = Relo(index, kind, type_id, access)  # type: ignore[arg-type]
    try:
        out, results = relocate(code, [relo], obj.btf, target)
    except BpfkitError:
        return
    assert len(out) == len(code) and len(results) == 1


def test_flavored_target_names_are_candidates_too() -> None:
    t = target_of(INT, Struct("task_struct___v1", 8, (Member("pid", 1, 32),)),
                  Struct("task_struct___v1___x", 8, (Member("pid", 1, 32),)),  # essential: task_struct___v1
                  Struct("task_struct_other", 8, (Member("pid", 1, 0),)))
    _, res = run("core_task.o", t)
    assert res[13].target == 4 and res[13].target_type_id == 2


def test_two_flavors_disagreeing_is_an_error() -> None:
    t = target_of(INT, Struct("task_struct___v1", 8, (Member("pid", 1, 32),)),
                  Struct("task_struct___v2", 8, (Member("pid", 1, 0),)))
    with pytest.raises(CoreRelocationError, match="disagree"):
        run("core_task.o", t)
