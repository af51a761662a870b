"""resolve / sizeof / alignof / member: hand-built cases, and the C compiler as the oracle for vmlinux
(clang compiles `_Static_assert`s of our figures against bpftool's vmlinux.h for x86-64, the
kernel's own target: va_list and long double differ on the BPF target)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bpfkit.btf import (
    Array,
    Composite,
    Const,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Spec,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Volatile,
    load_btf,
)
from bpfkit.btf.marshal import marshal
from bpfkit.errors import BtfError

from .blobs import VMLINUX, vmlinux_bytes


def _spec() -> Spec:
    return load_btf(marshal([
        Int("int", 4, IntEncoding.SIGNED),  # 1
        Int("char", 1, IntEncoding.CHAR),  # 2
        Int("long", 8, IntEncoding.SIGNED),  # 3
        Ptr(2),  # 4 char *
        Array(2, 1, 16),  # 5 char[16]
        Typedef("u8", 2),  # 6
        Const(6),  # 7 const u8
        Volatile(7),  # 8 volatile const u8
        TypeTag("user", 8),  # 9
        Array(3, 1, 3),  # 10 long[3]
        Union("", 8, (Member("lo", 1, 0), Member("whole", 3, 0))),  # 11 anonymous union
        Struct("s", 48, (  # 12
            Member("c", 2, 0), Member("", 11, 64),
            Member("name", 5, 128), Member("flags", 1, 256, 3), Member("mode", 1, 259, 5),
            Member("inner", 13, 320),
        )),
        Struct("in", 8, (Member("x", 1, 0), Member("y", 1, 32))),  # 13
        Struct("packed", 5, (Member("c", 2, 0), Member("i", 1, 8))),  # 14 __attribute__((packed))
        Struct("oddsize", 5, (Member("i", 1, 0), Member("c", 2, 32))),  # 15 packed: size % align != 0
        Int("bits", 4, IntEncoding.NONE, 2, 3),  # 16 old-style (no kind_flag) bitfield type
        Struct("old", 4, (Member("a", 1, 0), Member("b", 16, 8))),  # 17
        Typedef("loop1", 19),  # 18
        Typedef("loop2", 18),  # 19
        FuncProto(1, ()),  # 20
        Func("f", 20),  # 21
        Fwd("opaque"),  # 22
        Enum("e", 2, ()),  # 23
        Float("long double", 16),  # 24
        Array(12, 1, 2),  # 25 struct s[2]
        Struct("self", 8, (Member("me", 26, 0),)),  # 26 contains itself (malformed)
    ]))


def test_resolve_skips_typedefs_modifiers_and_tags() -> None:
    spec = _spec()
    assert spec.resolve(9) == Int("char", 1, IntEncoding.CHAR)
    assert spec.resolve(9).id == 2
    assert spec.resolve(4).id == 4  # a pointer is not a modifier
    with pytest.raises(BtfError, match="modifier chain longer than 32"):
        spec.resolve(18)


@pytest.mark.parametrize(
    ("tid", "size", "align"),
    [(1, 4, 4), (4, 8, 8), (5, 16, 1), (9, 1, 1), (10, 24, 8), (11, 8, 8), (12, 48, 8), (13, 8, 4),
     (14, 5, 1), (15, 5, 1), (17, 4, 4), (23, 2, 2), (24, 16, 16), (25, 96, 8)],
)
def test_sizeof_and_alignof(tid: int, size: int, align: int) -> None:
    spec = _spec()
    assert spec.sizeof(tid) == size
    assert spec.alignof(tid) == align


@pytest.mark.parametrize(
    ("tid", "message"), [(0, "VOID|UNKN"), (20, "FUNC_PROTO"), (21, "FUNC"), (22, "FWD")]
)
def test_types_without_size(tid: int, message: str) -> None:
    spec = _spec()
    with pytest.raises(BtfError, match=f"({message}).* has no size"):
        spec.sizeof(tid)
    with pytest.raises(BtfError, match="has no alignment"):
        spec.alignof(tid)


def test_self_containing_struct_is_an_error_not_a_recursion() -> None:
    with pytest.raises(BtfError, match="contains itself"):
        _spec().alignof(26)


def test_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    types = [Int("int", 4, IntEncoding.SIGNED)]
    for i in range(2, 1500):  # struct s_i { struct s_{i-1} m; }
        types.append(Struct(f"s{i}", 4, (Member("m", i - 1, 0),)))
    spec = load_btf(marshal(types))
    with pytest.raises(BtfError, match="nest deeper than"):
        spec.alignof(len(types))
    assert spec.alignof(100) == 4


def test_member_lookup_through_anonymous_unions_and_paths() -> None:
    spec = _spec()
    whole = spec.member(12, "whole")
    assert (whole.bit_offset, whole.byte_offset, whole.size, whole.indices) == (64, 8, 8, (1, 1))
    assert spec.member(12, "name").byte_offset == 16 and spec.member(12, "name").size == 16
    y = spec.member(12, "inner.y")
    assert (y.byte_offset, y.indices, y.path) == (44, (5, 1), "inner.y")
    assert y.member == Member("y", 1, 32)
    with pytest.raises(BtfError, match="has no member 'nope'"):
        spec.member(12, "nope")
    with pytest.raises(BtfError, match="is not a struct or union"):
        spec.member(12, "c.x")


def test_bitfields_with_kind_flag_and_old_int_encoding() -> None:
    spec = _spec()
    mode = spec.member(12, "mode")
    assert (mode.bit_offset, mode.bitfield_size, mode.is_bitfield, mode.byte_offset) == (259, 5, True, 32)
    b = spec.member(17, "b")  # INT with offset 2, 3 bits, at member bit offset 8
    assert (b.bit_offset, b.bitfield_size) == (10, 3)
    assert not spec.member(17, "a").is_bitfield


# ---------------------------------------------------------------------------- clang as the oracle

CLANG = shutil.which("clang")
BPFTOOL = shutil.which("bpftool")


def _member_names(spec: Spec, t: Composite, depth: int = 0) -> list[str]:
    names = []
    for m in t.members:
        if m.name:
            names.append(m.name)
        elif depth < 8:
            inner = spec.resolve(m.type_id)
            if isinstance(inner, Composite):
                names.extend(_member_names(spec, inner, depth + 1))
    return names


def _bpftool_renders_faithfully(spec: Spec, tid: int, memo: dict[int, bool]) -> bool:
    """False when `tid` holds, by value, an enum whose size is not 4 or 8 (bpftool 7.1 writes such
    packed enums, e.g. `enum rw_hint` of 1 byte, as plain enums) or a sized composite without members:
    vmlinux.h then misstates the layout, so clang cannot be the oracle for it."""
    if tid in memo:
        return memo[tid]
    memo[tid] = True
    t = spec.resolve(tid)
    ok = True
    if isinstance(t, (Enum, Enum64)):
        ok = t.size in (4, 8)
    elif isinstance(t, Array):
        ok = _bpftool_renders_faithfully(spec, t.type_id, memo)
    elif isinstance(t, Composite):
        # a union with a size but no members (release_pages_arg) comes out as an empty union
        ok = bool(t.members or not t.size) and all(
            _bpftool_renders_faithfully(spec, m.type_id, memo) for m in t.members
        )
    memo[tid] = ok
    return ok


@pytest.mark.skipif(CLANG is None or BPFTOOL is None, reason="needs clang and bpftool")
@pytest.mark.skipif(vmlinux_bytes() is None, reason="no readable /sys/kernel/btf/vmlinux")
def test_vmlinux_layout_agrees_with_clang(tmp_path: Path) -> None:
    assert CLANG is not None and BPFTOOL is not None
    header = subprocess.run([BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "c"],
                            check=True, capture_output=True).stdout
    (tmp_path / "vmlinux.h").write_bytes(header)
    spec = load_btf(VMLINUX)
    spec.build_name_index()
    lines = ['#include "vmlinux.h"', "#define CHECK(e) _Static_assert(e, #e)"]
    members = 0
    skipped = 0
    faithful: dict[int, bool] = {}
    for n, t in enumerate(spec.types()):
        if not isinstance(t, (Struct, Union, Typedef)) or not t.name:
            continue
        if not _bpftool_renders_faithfully(spec, t.id, faithful):
            skipped += 1
            continue
        if len(spec.find_ids(t.name)) != 1:
            continue  # bpftool renames clashing names (foo___2); skip the ambiguous ones
        if isinstance(t, Typedef):
            target = spec.resolve(t)
            if isinstance(target, (FuncProto, Fwd)) or target.kind == 0:
                continue
            c_name = t.name
        else:
            c_name = f"{'struct' if isinstance(t, Struct) else 'union'} {t.name}"
        lines.append(f"CHECK(sizeof({c_name}) == {spec.sizeof(t)});")
        lines.append(f"CHECK(_Alignof({c_name}) == {spec.alignof(t)});")
        if isinstance(t, Composite) and n % 4 == 0:
            for name in _member_names(spec, t):
                ref = spec.member(t, name)
                if ref.is_bitfield:
                    continue
                members += 1
                lines.append(f"CHECK(__builtin_offsetof({c_name}, {name}) == {ref.byte_offset});")
                lines.append(f"CHECK(sizeof((({c_name} *)0)->{name}) == {ref.size});")
    assert members > 5000 and skipped < 1000
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    cmd = [CLANG, "-target", "x86_64-linux-gnu", "-fsyntax-only", "-ferror-limit=20", str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
