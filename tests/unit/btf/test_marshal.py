"""BtfBuilder / marshal: byte-exact against hand-encoded blobs and vmlinux, property round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.btf import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
    load_btf,
)
from bpfkit.btf.marshal import BtfBuilder, marshal
from bpfkit.errors import BtfError

from .blobs import all_kinds, vmlinux_bytes

VM = vmlinux_bytes()


@pytest.mark.parametrize("order", ["<", ">"])
def test_marshal_reproduces_the_hand_encoded_blob(order: str) -> None:
    data, expected = all_kinds(order)
    assert marshal(expected, byteorder="little" if order == "<" else "big") == data


def test_builder_hands_out_ids_and_dedups_strings() -> None:
    b = BtfBuilder()
    assert b.add(Int("int", 4, IntEncoding.SIGNED)) == 1
    assert b.add(Ptr(1)) == 2
    assert b.add(Typedef("int", 1)) == 3
    assert b.add_string("int") == 1 and b.add_string("") == 0
    assert b.add_string("new") == 5
    spec = load_btf(b.marshal())
    assert spec.find_ids("int") == [1, 3]
    assert spec.raw_strings == b"\0int\0new\0"


@pytest.mark.skipif(VM is None, reason="no readable /sys/kernel/btf/vmlinux")
def test_vmlinux_remarshals_to_identical_bytes_with_its_string_section() -> None:
    assert VM is not None
    spec = load_btf(VM)
    types = spec.all_types()
    assert marshal(types, strings=spec.raw_strings) == VM
    # With a fresh string section the strings are re-laid out, but every type survives.
    fresh = marshal(types)
    again = load_btf(fresh)
    assert again.all_types() == types
    assert len(again.raw_strings) <= len(spec.raw_strings)
    big = marshal(types, byteorder="big", strings=spec.raw_strings)
    assert load_btf(big).all_types() == types


def test_split_builder_continues_the_base() -> None:
    base = load_btf(all_kinds()[0])
    b = BtfBuilder(base)
    assert b.type_count == 29
    ptr = b.add(Ptr(6))
    s = b.add(Struct("mod", 8, (Member("int", 1, 0), Member("next", ptr, 0))))
    assert (ptr, s) == (29, 30)
    assert b.add_string("int") == base.raw_strings.index(b"\0int\0") + 1  # reused from the base
    split = load_btf(b.marshal(), base=base)
    assert split.type_by_id(30) == Struct("mod", 8, (Member("int", 1, 0), Member("next", 29, 0)))
    assert split.raw_strings == b"mod\0next\0"


@pytest.mark.parametrize(
    ("t", "message"),
    [
        (Void(), "void"),
        (Ptr(7), "refers to type id 7"),
        (Enum("e", 4, (EnumValue("A", -1),)), "value A=-1 out of range"),
        (Enum("e", 4, (EnumValue("A", 1 << 31),), True), "out of range"),
        (Enum64("e", 8, (EnumValue("A", 1 << 64),)), "out of range"),
        (Struct("s", 4, (Member("a", 0, 1 << 24, 1),)), "offset/bitfield too large"),
        (Struct("s", 4, tuple(Member("", 0, 0) for _ in range(70000))), "exceed vlen 65535"),
        (Typedef("a\0b", 0), "contains a NUL"),
        (Int("i", 4, IntEncoding.NONE, 0, 300), "out of range"),
    ],
)
def test_unencodable_types_are_btf_errors(t: Type, message: str) -> None:
    with pytest.raises(BtfError, match=message):
        marshal([t])


# ---------------------------------------------------------------------------- properties

NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
MAYBE_NAME = st.one_of(st.just(""), NAMES)


def _types(n: int) -> st.SearchStrategy[Type]:
    ref = st.integers(0, n)
    u32 = st.integers(0, 2**32 - 1)
    member = st.builds(Member, MAYBE_NAME, ref, st.integers(0, 2**24 - 1), st.integers(0, 255))
    plain = st.builds(Member, MAYBE_NAME, ref, u32)
    params = st.lists(st.builds(Param, MAYBE_NAME, st.integers(1, n)), max_size=4)

    def enum(cls: type, bits: int) -> st.SearchStrategy[Type]:
        return st.booleans().flatmap(lambda signed: st.builds(
            cls, NAMES, st.sampled_from([1, 2, 4, 8]),
            st.lists(st.builds(EnumValue, NAMES, st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
                               if signed else st.integers(0, 2**bits - 1)), max_size=4).map(tuple),
            st.just(signed)))

    return st.one_of(
        st.builds(Int, NAMES, st.sampled_from([1, 2, 4, 8, 16]), st.sampled_from(list(IntEncoding)),
                  st.integers(0, 255), st.integers(0, 255)),
        st.builds(Ptr, ref),
        st.builds(Array, ref, ref, u32),
        st.builds(Struct, MAYBE_NAME, u32, st.lists(member, max_size=4).map(tuple)),
        st.builds(Union, MAYBE_NAME, u32, st.lists(plain, max_size=4).map(tuple)),
        enum(Enum, 32),
        enum(Enum64, 64),
        st.builds(Fwd, NAMES, st.booleans()),
        st.builds(Typedef, NAMES, ref),
        st.builds(Volatile, ref), st.builds(Const, ref), st.builds(Restrict, ref),
        st.builds(Func, NAMES, ref, st.sampled_from(list(FuncLinkage))),
        st.builds(FuncProto, ref, params.map(tuple), st.booleans()),
        st.builds(Var, NAMES, ref, st.sampled_from(list(VarLinkage))),
        st.builds(Datasec, NAMES, u32, st.lists(st.builds(VarSecinfo, ref, u32, u32), max_size=3).map(tuple)),
        st.builds(Float, NAMES, st.sampled_from([2, 4, 8, 16])),
        st.builds(DeclTag, NAMES, ref, st.integers(-1, 5), st.booleans()),
        st.builds(TypeTag, NAMES, ref, st.booleans()),
    )


TYPE_LISTS = st.integers(1, 12).flatmap(lambda n: st.lists(_types(n), min_size=n, max_size=n))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TYPE_LISTS, st.sampled_from(["little", "big"]))
def test_round_trip(types: list[Type], order: str) -> None:
    data = marshal(types, byteorder=order)  # type: ignore[arg-type]
    spec = load_btf(data)
    assert spec.all_types() == types
    assert marshal(spec.types(), byteorder=order, strings=spec.raw_strings) == data  # type: ignore[arg-type]
