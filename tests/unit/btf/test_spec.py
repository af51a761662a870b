"""load_btf / Spec: header and both byte orders, lazy decoding, ids, names, split BTF, vmlinux."""

from __future__ import annotations

import pytest

from bpfkit.btf import (
    Composite,
    Enum,
    EnumBase,
    Func,
    FuncProto,
    Int,
    Kind,
    Member,
    Ptr,
    Spec,
    Struct,
    Type,
    Typedef,
    Union,
    Void,
    load_btf,
)
from bpfkit.errors import BtfError

from .blobs import Strings, all_kinds, blob, info, vmlinux_bytes

VMLINUX = vmlinux_bytes()
needs_vmlinux = pytest.mark.skipif(VMLINUX is None, reason="no readable /sys/kernel/btf/vmlinux")


@pytest.mark.parametrize("order", ["<", ">"])
def test_every_kind_decodes_to_its_dataclass(order: str) -> None:
    data, expected = all_kinds(order)
    spec = load_btf(data)
    assert spec.byteorder == ("little" if order == "<" else "big")
    assert len(spec) == len(expected)
    assert (spec.first_id, spec.type_count) == (1, len(expected) + 1)
    assert spec.all_types() == expected
    for tid, t in enumerate(spec.types(), 1):
        assert t.id == tid and t.spec is spec
        assert spec.kind_of(tid) == t.kind


def test_type_zero_is_void_and_ids_past_the_end_are_errors() -> None:
    spec = load_btf(all_kinds()[0])
    assert spec.type_by_id(0) == Void()
    assert spec[0].kind == Kind.UNKN
    with pytest.raises(BtfError, match="no type id 29"):
        spec.type_by_id(29)
    with pytest.raises(BtfError, match="no type id -1"):
        spec.type_by_id(-1)


def test_header_tail_of_zeros_is_accepted_and_offsets_are_relative_to_it() -> None:
    s = Strings()
    n = s.add("int")
    data = blob([n, info(1), 4, 1 << 24 | 32], bytes(s.data), hdr_len=32)
    spec = load_btf(data)
    assert spec.header_len == 32
    assert spec.find("int") == Int("int", 4, 1, 0, 32)


def test_decoding_is_lazy_and_cached() -> None:
    spec = load_btf(all_kinds()[0])
    assert spec._cache == {}
    a = spec.type_by_id(6)
    assert list(spec._cache) == [6]
    assert spec.type_by_id(6) is a


def test_find_by_name_and_kind() -> None:
    spec = load_btf(all_kinds()[0])
    assert spec.find("pair").id == 6
    assert spec.find("pair", Kind.STRUCT).size == 16
    t = spec.find("pair", Struct)
    assert isinstance(t, Struct) and t.member("b") == Member("b", 2, 32, 3)
    assert spec.find_ids("u32") == [13]
    assert spec.find_ids("u32", Typedef) == [13]
    assert spec.find_ids("u32", Kind.STRUCT) == []
    assert spec.find_all("handler") == [Func("handler", 17, 1)]
    with pytest.raises(BtfError, match="no type named 'pair' of kind UNION"):
        spec.find("pair", Union)
    with pytest.raises(BtfError, match="no type named 'nope'"):
        spec.find("nope")
    # base classes stand for all their kinds
    assert spec.find("pair", Composite).id == 6
    assert spec.find_ids("e64", EnumBase) == [10] and spec.find_ids("e64", Enum) == []
    assert spec.find_ids("uns", Type) == [9]
    with pytest.raises(BtfError, match="no type named 'u32' of kind STRUCT/UNION"):
        spec.find("u32", Composite)
    assert [t.id for t in spec] == list(range(1, 29))
    # member and enumerator names are strings too, but not type names
    assert spec.find_ids("a") == [] and spec.find_ids("MAX") == []
    assert spec.find_ids("") == []


def test_find_returns_every_type_of_a_shared_name_in_id_order() -> None:
    s = Strings()
    n = s.add("dup")
    words = [n, info(8), 2, n, info(1), 4, 32, n, info(4), 0]
    spec = load_btf(blob(words, bytes(s.data)))
    assert spec.find_ids("dup") == [1, 2, 3]
    assert spec.find("dup").kind == Kind.TYPEDEF
    assert spec.find("dup", Struct).id == 3


@pytest.mark.parametrize("suffixed", [3, 12])  # few in-string candidates, then enough for a set
def test_names_pointing_inside_longer_strings_are_found(suffixed: int) -> None:
    # A tail-merging producer may store "task" as the end of "a0_task": name_off points inside it.
    s = Strings()
    longer = [s.add(f"a{i}_task") for i in range(suffixed)]
    whole = s.add("task")
    inner = longer[1] + len("a1_")
    words = [inner, info(4), 0, whole, info(8), 1, longer[0], info(4), 0]
    spec = load_btf(blob(words, bytes(s.data)))
    assert spec.type_by_id(1).name == "task"  # type: ignore[attr-defined]
    assert spec.find_ids("task") == [1, 2]
    assert spec.find_ids("a0_task") == [3]
    spec.build_name_index()
    assert spec.find_ids("task") == [1, 2]


def test_full_name_index_gives_the_same_answers_as_scanning() -> None:
    data, expected = all_kinds()
    scanned = load_btf(data)
    indexed = load_btf(data)
    indexed.build_name_index()
    for t in expected:
        name = getattr(t, "name", "")
        if name:
            assert indexed.find_ids(name) == scanned.find_ids(name), name
    # many distinct lookups switch to the index by themselves
    for i in range(100):
        scanned.find_ids(f"missing{i}")
    assert scanned._name_index is not None
    assert scanned.find_ids("pair") == [6]


def _split_pair() -> tuple[Spec, Spec]:
    base_data, _ = all_kinds()
    base = load_btf(base_data)
    s = Strings(first=b"")
    s.base = base.str_end
    n_mod = s.add("mod_state")
    n_next = s.add("next")
    int_off = base.raw_strings.index(b"\0int\0") + 1  # a base string, by its base offset
    words = [
        0, info(2), 30,  # [29] struct mod_state *
        n_mod, info(4, 2), 16, int_off, 1, 0, n_next, 29, 64,  # [30] struct mod_state {int int; ...}
        int_off, info(8), 30,  # [31] typedef struct mod_state int (a name shared with the base)
    ]
    return base, load_btf(blob(words, bytes(s.data)), base=base)


def test_split_btf_continues_ids_and_string_offsets_of_its_base() -> None:
    base, split = _split_pair()
    assert (split.first_id, split.type_count, len(split)) == (29, 32, 3)
    assert split.str_base == base.str_end
    t = split.find("mod_state", Struct)
    assert t.id == 30
    assert t.members == (Member("int", 1, 0), Member("next", 29, 64))
    assert split.type_by_id(1) == base.type_by_id(1)  # base ids resolve through the base
    assert split.type_by_id(29) == Ptr(30)
    assert split.find_ids("int") == [1, 31]
    assert split.find_ids("int", Int) == [1]
    assert [t.id for t in split.types()] == [29, 30, 31]
    assert split.string(split.str_base) == "mod_state"
    with pytest.raises(BtfError, match="no type id 32"):
        split.type_by_id(32)


def test_split_btf_needs_its_base_for_references() -> None:
    _, split = _split_pair()
    with pytest.raises(BtfError):
        load_btf(split.data)  # without the base: string offsets and ids are out of range


@needs_vmlinux
def test_vmlinux_loads_and_finds_task_struct_decoding_only_it() -> None:
    assert VMLINUX is not None
    spec = load_btf(VMLINUX)
    assert len(spec) > 10_000
    t = spec.find("task_struct", Struct)
    assert list(spec._cache) == [t.id]
    assert t.size > 1000 and any(m.name == "pid" for m in t.members)
    assert spec.find("bpf_func_id", Enum).values[0].name == "BPF_FUNC_unspec"
    func = spec.find("bpf_prog_run", Func) if spec.find_ids("bpf_prog_run") else None
    assert func is None or isinstance(spec.type_by_id(func.type_id), FuncProto)


@needs_vmlinux
def test_vmlinux_from_path_and_validate() -> None:
    spec = load_btf("/sys/kernel/btf/vmlinux")
    spec.validate()
    kinds = {t.kind for t in spec.types()}
    assert {Kind.INT, Kind.PTR, Kind.STRUCT, Kind.FUNC, Kind.FUNC_PROTO, Kind.ENUM} <= kinds


def test_missing_file_is_a_btf_error() -> None:
    with pytest.raises(BtfError, match="cannot read /nonexistent/btf"):
        load_btf("/nonexistent/btf")
