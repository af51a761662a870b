"""Hand-encoded BTF blobs for the tests, written word by word from btf.h (not with BtfBuilder), so
that the reader and the writer are each checked against an independent encoding."""

from __future__ import annotations

import struct
from pathlib import Path

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
    Volatile,
)

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def vmlinux_bytes() -> bytes | None:
    """The running kernel's BTF, or None where there is none (or it is unreadable)."""
    try:
        return VMLINUX.read_bytes()
    except OSError:
        return None


class Strings:
    """A string section under construction; `add` returns the offset (no dedup: offsets are explicit)."""

    def __init__(self, first: bytes = b"\0") -> None:
        self.data = bytearray(first)
        self.base = 0

    def add(self, s: str) -> int:
        off = self.base + len(self.data)
        self.data += s.encode() + b"\0"
        return off


def info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return kflag << 31 | kind << 24 | vlen


def blob(words: list[int], strings: bytes, order: str = "<", *, hdr_len: int = 24, flags: int = 0) -> bytes:
    """header + type section (`words`) + string section."""
    types = struct.pack(f"{order}{len(words)}I", *words)
    hdr = struct.pack(f"{order}HBBIIIII", 0xEB9F, 1, flags, hdr_len, 0, len(types), len(types), len(strings))
    return hdr + b"\0" * (hdr_len - 24) + types + strings


def all_kinds(order: str = "<") -> tuple[bytes, list[Type]]:
    """A blob with every kind (and both kind_flag forms where it matters), and the types it holds."""
    s = Strings()
    w: list[int] = []
    exp: list[Type] = []

    def rec(*words: int) -> None:
        w.extend(words)

    n_int, n_uint, n_char = s.add("int"), s.add("unsigned int"), s.add("char")
    rec(n_int, info(1), 4, 1 << 24 | 32)  # [1] int, signed
    exp.append(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    rec(n_uint, info(1), 4, 32)  # [2]
    exp.append(Int("unsigned int", 4, IntEncoding.NONE, 0, 32))
    rec(n_char, info(1), 1, 2 << 24 | 8)  # [3] char
    exp.append(Int("char", 1, IntEncoding.CHAR, 0, 8))
    rec(0, info(2), 1)  # [4] int *
    exp.append(Ptr(1))
    rec(0, info(3), 0, 3, 2, 16)  # [5] char[16]
    exp.append(Array(3, 2, 16))
    n_s, n_a, n_b, n_c = s.add("pair"), s.add("a"), s.add("b"), s.add("c")
    rec(n_s, info(4, 4, 1), 16, n_a, 1, 0, n_b, 2, 3 << 24 | 32, 0, 7, 64, n_c, 5, 96)  # [6] struct, kflag
    exp.append(Struct("pair", 16, (Member("a", 1, 0), Member("b", 2, 32, 3), Member("", 7, 64),
                                   Member("c", 5, 96))))
    n_x, n_y = s.add("x"), s.add("y")
    rec(0, info(5, 2), 4, n_x, 1, 0, n_y, 2, 0)  # [7] anonymous union
    exp.append(Union("", 4, (Member("x", 1, 0), Member("y", 2, 0))))
    n_e, n_m1, n_big = s.add("sgn"), s.add("MINUS_ONE"), s.add("BIG")
    rec(n_e, info(6, 2, 1), 4, n_m1, 0xFFFFFFFF, n_big, 0x7FFFFFFF)  # [8] signed enum
    exp.append(Enum("sgn", 4, (EnumValue("MINUS_ONE", -1), EnumValue("BIG", 0x7FFFFFFF)), True))
    n_u, n_max = s.add("uns"), s.add("MAX")
    rec(n_u, info(6, 1), 4, n_max, 0xFFFFFFFF)  # [9] unsigned enum
    exp.append(Enum("uns", 4, (EnumValue("MAX", 0xFFFFFFFF),), False))
    n_e64, n_neg, n_hi = s.add("e64"), s.add("NEG"), s.add("HI")
    rec(n_e64, info(19, 2, 1), 8, n_neg, 0xFFFFFFFB, 0xFFFFFFFF, n_hi, 0, 0x40000000)  # [10]
    exp.append(Enum64("e64", 8, (EnumValue("NEG", -5), EnumValue("HI", 1 << 62)), True))
    n_fs, n_fu = s.add("fstruct"), s.add("funion")
    rec(n_fs, info(7), 0)  # [11]
    exp.append(Fwd("fstruct", False))
    rec(n_fu, info(7, 0, 1), 0)  # [12]
    exp.append(Fwd("funion", True))
    n_u32 = s.add("u32")
    rec(n_u32, info(8), 2)  # [13] typedef unsigned int u32
    exp.append(Typedef("u32", 2))
    rec(0, info(9), 1)  # [14] volatile int
    exp.append(Volatile(1))
    rec(0, info(10), 1)  # [15] const int
    exp.append(Const(1))
    rec(0, info(11), 4)  # [16] int *restrict
    exp.append(Restrict(4))
    n_p1, n_p2 = s.add("ctx"), s.add("n")
    rec(0, info(13, 2), 13, n_p1, 17, n_p2, 1)  # [17] u32 (void *ctx, int n)  (param type 17 -> fixed below)
    exp.append(FuncProto(13, (Param("ctx", 18), Param("n", 1))))
    w[-3] = 18
    rec(0, info(2), 0)  # [18] void *
    exp.append(Ptr(0))
    n_f = s.add("handler")
    rec(n_f, info(12, 1), 17)  # [19] global func
    exp.append(Func("handler", 17, FuncLinkage.GLOBAL))
    rec(0, info(13, 2), 1, n_p1, 4, 0, 0)  # [20] int (int *ctx, ...)
    exp.append(FuncProto(1, (Param("ctx", 4),), True))
    n_v = s.add("counter")
    rec(n_v, info(14), 2, 1)  # [21] global var
    exp.append(Var("counter", 2, VarLinkage.GLOBAL_ALLOCATED))
    n_d = s.add(".data")
    rec(n_d, info(15, 1), 4, 21, 0, 4)  # [22] datasec
    exp.append(Datasec(".data", 4, (VarSecinfo(21, 0, 4),)))
    n_dbl = s.add("double")
    rec(n_dbl, info(16), 8)  # [23]
    exp.append(Float("double", 8))
    n_t1, n_t2 = s.add("kfunc"), s.add("nonnull")
    rec(n_t1, info(17), 19, 0xFFFFFFFF)  # [24] decl tag on the func
    exp.append(DeclTag("kfunc", 19, -1))
    rec(n_t2, info(17, 0, 1), 17, 1)  # [25] attribute decl tag on parameter 1
    exp.append(DeclTag("nonnull", 17, 1, True))
    n_user = s.add("user")
    rec(n_user, info(18), 1)  # [26] type tag
    exp.append(TypeTag("user", 1))
    n_as = s.add("address_space(1)")
    rec(n_as, info(18, 0, 1), 1)  # [27] attribute type tag
    exp.append(TypeTag("address_space(1)", 1, True))
    rec(0, info(2), 26)  # [28] int __tag *
    exp.append(Ptr(26))
    return blob(w, bytes(s.data), order), exp
