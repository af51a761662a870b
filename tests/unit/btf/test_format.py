"""type_str (C declarations) and describe (layouts)."""

from __future__ import annotations

import pytest

from bpfkit.btf import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    EnumValue,
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
    Spec,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
    load_btf,
)
from bpfkit.btf.marshal import marshal

from .blobs import vmlinux_bytes

TYPES = [
    Int("int", 4, IntEncoding.SIGNED),  # 1
    Int("char", 1, IntEncoding.CHAR),  # 2
    Typedef("u32", 4),  # 3
    Int("unsigned int", 4),  # 4
    Ptr(1),  # 5 int *
    Array(2, 1, 16),  # 6 char[16]
    Ptr(0),  # 7 void *
    FuncProto(3, (Param("", 7), Param("", 1))),  # 8 u32 (void *, int)
    Ptr(8),  # 9 u32 (*)(void *, int)
    Const(1),  # 10 const int
    Ptr(10),  # 11 const int *
    Const(5),  # 12 int *const
    Array(5, 1, 4),  # 13 int *[4]
    Array(1, 1, 4),  # 14 int[4]
    Ptr(14),  # 15 int (*)[4]
    Struct("task", 24, (Member("comm", 6, 0), Member("", 17, 128), Member("flags", 4, 160, 3))),  # 16
    Union("", 4, (Member("pid", 1, 0), Member("tgid", 4, 0))),  # 17
    Ptr(16),  # 18 struct task *
    Volatile(10),  # 19 volatile const int (qualifiers in BTF order, outermost first)
    Restrict(7),  # 20 void *restrict
    Fwd("sock"),  # 21
    Fwd("anon_u", True),  # 22
    FuncProto(1, (Param("fmt", 11),), True),  # 23 int (const int *fmt, ...)
    Func("printk", 23, FuncLinkage.GLOBAL),  # 24
    Var("jiffies", 4),  # 25
    Datasec(".data", 4, (VarSecinfo(25, 0, 4),)),  # 26
    TypeTag("user", 1),  # 27
    Ptr(27),  # 28
    Enum("state", 4, (EnumValue("RUNNING", 0), EnumValue("DEAD", -1)), True),  # 29
    DeclTag("kfunc", 24),  # 30
    FuncProto(0, ()),  # 31 void (void)
    Ptr(9),  # 32 pointer to function pointer
    Array(9, 1, 2),  # 33 array of function pointers
]


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_btf(marshal(TYPES))


@pytest.mark.parametrize(
    ("tid", "text"),
    [
        (0, "void"), (1, "int"), (3, "u32"), (5, "int *"), (6, "char[16]"), (7, "void *"),
        (8, "u32 (void *, int)"), (9, "u32 (*)(void *, int)"), (11, "const int *"), (12, "int *const"),
        (13, "int *[4]"), (15, "int (*)[4]"), (16, "struct task"), (17, "union {...}"),
        (18, "struct task *"), (19, "volatile const int"), (20, "void *restrict"), (21, "struct sock"),
        (22, "union anon_u"), (23, "int (const int *fmt, ...)"), (24, "int printk(const int *fmt, ...)"),
        (25, "unsigned int jiffies"), (26, 'SEC(".data")'),
        (28, 'int __attribute__((btf_type_tag("user"))) *'),
        (29, "enum state"), (30, "decl_tag 'kfunc' on int printk(const int *fmt, ...)"), (31, "void (void)"),
        (32, "u32 (**)(void *, int)"), (33, "u32 (*[2])(void *, int)"),
    ],
)
def test_str_of_types(spec: Spec, tid: int, text: str) -> None:
    t = spec.type_by_id(tid)
    assert str(t) == text
    assert spec.type_str(tid) == text


def test_declarations_with_names(spec: Spec) -> None:
    assert spec.type_str(6, "comm") == "char comm[16]"
    assert spec.type_str(9, "fn") == "u32 (*fn)(void *, int)"
    assert spec.type_str(15, "p") == "int (*p)[4]"
    assert spec.type_str(12, "p") == "int *const p"


def test_types_without_a_spec_print_references_by_id() -> None:
    assert str(Ptr(5)) == "type[5] *"
    assert str(Struct("s", 0)) == "struct s"


def test_describe_struct_layout(spec: Spec) -> None:
    assert spec.describe(16).splitlines() == [
        "[16] struct task {\t/* size 24, align 4 */",
        f"\t{'char comm[16];':<47} /*     0    16 */",
        f"\t{'union {':<47} /*    16     4 */",
        f"\t\t{'int pid;':<39} /*    16     4 */",
        f"\t\t{'unsigned int tgid;':<39} /*    16     4 */",
        "\t};",
        f"\t{'unsigned int flags:3;':<47} /*  20:0     4 */",
        "};",
    ]


def test_describe_other_kinds(spec: Spec) -> None:
    assert spec.describe(29).splitlines() == [
        "[29] enum state {\t/* size 4, signed */", "\tRUNNING = 0,", "\tDEAD = -1,", "};"]
    assert spec.describe(3) == "[3] typedef unsigned int u32\t/* size 4 */"
    assert spec.describe(24) == "[24] int printk(const int *fmt, ...)\t/* global */"
    assert spec.describe(26).splitlines()[1].startswith("\tunsigned int jiffies;")


@pytest.mark.skipif(vmlinux_bytes() is None, reason="no readable /sys/kernel/btf/vmlinux")
def test_every_vmlinux_type_renders() -> None:
    vm = vmlinux_bytes()
    assert vm is not None
    spec = load_btf(vm)
    t = spec.find("task_struct", Struct)
    text = spec.describe(t)
    assert text.startswith(f"[{t.id}] struct task_struct {{")
    assert "pid_t pid;" in text
    for t in spec.types():
        assert str(t)
