"""`dump_c`: BTF to C, checked three ways on small hand-built blobs.

1. The exact C text of each tricky case (anonymous types, bitfields, packing, function pointers...).
2. The same blob through `bpftool btf dump file X format c` gives the same text (bpftool is the
   reference), except where bpftool 7.1's header is wrong, which the cases say.
3. clang compiles the header (`-target bpf -g`) and the BTF it emits for each struct and union has the
   sizes, member offsets, bitfield sizes and member type shapes of the blob we started from.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.btf import (
    Array,
    Composite,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
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
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Volatile,
    load_btf,
)
from bpfkit.btf.cdump import HEADER_GUARD, dump_c
from bpfkit.btf.marshal import marshal
from bpfkit.errors import BtfError

BPFTOOL = shutil.which("bpftool") or ("/usr/sbin/bpftool" if Path("/usr/sbin/bpftool").exists() else None)
CLANG = shutil.which("clang") or ("/usr/bin/clang" if Path("/usr/bin/clang").exists() else None)

INT = Int("int", 4, IntEncoding.SIGNED)
UINT = Int("unsigned int", 4)
CHAR = Int("char", 1, IntEncoding.CHAR)
SHORT = Int("short int", 2, IntEncoding.SIGNED)
ULL = Int("long long unsigned int", 8)


@dataclass(frozen=True)
class Case:
    name: str
    types: list[Type]
    text: str
    bpftool_differs: str = ""  # why bpftool 7.1's text is different (and wrong) for this blob


CASES = [
    Case("function pointers", [
        INT,
        FuncProto(0, (Param("", 1),)),  # [2] void (int)
        Ptr(2),  # [3]
        Array(3, 1, 4),  # [4] void (*[4])(int)
        Struct("ops", 32, (Member("handlers", 4, 0),)),
        Typedef("handler_t", 3),  # [6]
        Array(6, 1, 2),
        Struct("ops2", 16, (Member("h", 7, 0),)),
        Ptr(4),  # [9] pointer to an array of function pointers
        Struct("ops3", 8, (Member("pa", 9, 0),)),
    ], """\
struct ops {
	void (*handlers[4])(int);
};

typedef void (*handler_t)(int);

struct ops2 {
	handler_t h[2];
};

struct ops3 {
	void (*(*pa)[4])(int);
};

"""),
    Case("declarators", [
        INT, CHAR,
        Const(2), Array(3, 1, 4), Struct("ca", 4, (Member("a", 4, 0),)),  # [5] GCC's const char[4]
        FuncProto(0, ()), Volatile(6), Ptr(7), Struct("nr", 8, (Member("die", 8, 0),)),  # [9] noreturn
        Array(1, 1, 3), Array(10, 1, 2), Struct("md", 24, (Member("m", 11, 0),)),  # [12] int[2][3]
        Ptr(10), Struct("pa", 8, (Member("p", 13, 0),)),  # [14] int (*)[3]
        FuncProto(1, (Param("", 1),)), Ptr(15), FuncProto(16, (Param("", 2),)), Ptr(17),
        Struct("ff", 8, (Member("get", 18, 0),)),  # [19] returns a function pointer
        FuncProto(1, (Param("fmt", 21),), True), Ptr(3), Typedef("printf_t", 20), Ptr(20),
        Struct("v", 8, (Member("pr", 23, 0),)),  # [24] variadic, named parameters
        FuncProto(0, (Param("", 0),)), Typedef("vfn_t", 25),  # [26] a lone void parameter
    ], """\
struct ca {
	const char a[4];
};

struct nr {
	void (*die)(void);
};

struct md {
	int m[2][3];
};

struct pa {
	int (*p)[3];
};

struct ff {
	int (* (*get)(char))(int);
};

typedef int printf_t(const char *fmt, ...);

struct v {
	int (*pr)(const char *fmt, ...);
};

typedef void vfn_t(void);

"""),
    Case("flexible arrays", [
        INT, Array(1, 1, 0), Struct("flex", 4, (Member("n", 1, 0), Member("data", 2, 32))),
        Array(3, 1, 0), Struct("outer", 4, (Member("n", 1, 0), Member("items", 4, 32))),
    ], """\
struct flex {
	int n;
	int data[0];
};

struct outer {
	int n;
	struct flex items[0];
};

"""),
    Case("enums", [
        Enum("sgn", 4, (EnumValue("MINUS", -1), EnumValue("MIN", -(2**31)), EnumValue("MAX", 2**31 - 1)),
             True),
        Enum("uns", 4, (EnumValue("UMAX", 2**32 - 1),), False),
        Enum64("e64", 8, (EnumValue("NEG", -5), EnumValue("HI", 1 << 62)), True),
        Enum64("u64", 8, (EnumValue("BIG", 2**64 - 1), EnumValue("SMALL", 1)), False),
        Enum64("small64", 8, (EnumValue("S1", 1),), False),
        Enum("big32", 8, (EnumValue("W1", 1),), False),
        Enum("byte", 1, (EnumValue("B1", 1),), False),
        Enum("half", 2, (EnumValue("H1", 1),), False),
        Enum("", 4, (EnumValue("ANON_A", 0), EnumValue("ANON_B", 1)), False),  # unreferenced: top level
        Enum("fwd_enum", 4, (), False),
        Struct("sized", 4, (Member("b", 7, 0), Member("h", 8, 16))),
    ], """\
enum sgn {
	MINUS = -1,
	MIN = -2147483648,
	MAX = 2147483647,
};

enum uns {
	UMAX = 4294967295,
};

enum e64 {
	NEG = -5LL,
	HI = 4611686018427387904LL,
};

enum u64 {
	BIG = 18446744073709551615ULL,
	SMALL = 1ULL,
};

enum small64 {
	S1 = 1ULL,
} __attribute__((mode(word)));

enum big32 {
	W1 = 1,
} __attribute__((mode(word)));

enum byte {
	B1 = 1,
} __attribute__((mode(byte)));

enum half {
	H1 = 1,
} __attribute__((mode(HI)));

enum {
	ANON_A = 0,
	ANON_B = 1,
};

enum fwd_enum;

struct sized {
	enum byte b;
	enum half h;
};

""", bpftool_differs="no mode() for enums whose size is not int's: struct sized comes out 8 bytes, not 4"),
    Case("type tags", [
        INT, TypeTag("user", 1), Ptr(2), Const(2), Ptr(4), TypeTag("rcu", 5),
        Struct("s", 16, (Member("p", 3, 0), Member("q", 6, 64))),
    ], """\
struct s {
	int __attribute__((btf_type_tag("user"))) *p;
	const int __attribute__((btf_type_tag("user"))) * __attribute__((btf_type_tag("rcu"))) q;
};

""", bpftool_differs="writes 'intconst  __attribute__...', which is not C"),
    Case("typedefs of anonymous types", [
        INT, Struct("", 4, (Member("counter", 1, 0),)), Typedef("atomic_t", 2),
        Union("", 4, (Member("i", 1, 0), Member("u", 1, 0))), Typedef("u_t", 4),
        Enum("", 4, (EnumValue("X0", 0),)), Typedef("e_t", 6), Ptr(2), Typedef("anon_ptr_t", 8),
    ], """\
typedef struct {
	int counter;
} atomic_t;

typedef union {
	int i;
	int u;
} u_t;

typedef enum {
	X0 = 0,
} e_t;

typedef struct {
	int counter;
} *anon_ptr_t;

"""),
    Case("packed and over-aligned structs", [
        INT, CHAR, SHORT,
        Struct("pk", 5, (Member("c", 2, 0), Member("i", 1, 8))),
        Struct("outer", 6, (Member("c", 2, 0), Member("p", 4, 8))),
        Struct("tailpk", 6, (Member("i", 1, 0), Member("s", 3, 32))),
        Struct("nat", 8, (Member("c", 2, 0), Member("i", 1, 32))),
        Struct("aligned16", 16, (Member("i", 1, 0),)),
        Struct("embed", 32, (Member("c", 2, 0), Member("a", 8, 128))),
    ], """\
struct pk {
	char c;
	int i;
} __attribute__((packed));

struct outer {
	char c;
	struct pk p;
};

struct tailpk {
	int i;
	short int s;
} __attribute__((packed));

struct nat {
	char c;
	int i;
};

struct aligned16 {
	int i;
	long: 64;
};

struct embed {
	char c;
	long: 64;
	struct aligned16 a;
};

"""),
    Case("bitfields", [
        INT, UINT, CHAR, ULL,
        Struct("bf", 8, (Member("a", 2, 0, 3), Member("b", 2, 3, 5), Member("c", 2, 16, 1),
                         Member("d", 1, 32))),
        Struct("bf2", 16, (Member("x", 3, 0), Member("y", 4, 20, 12), Member("z", 4, 64, 40))),
        Struct("bf3", 8, (Member("a", 2, 0, 1), Member("b", 2, 40, 2))),
    ], """\
struct bf {
	unsigned int a: 3;
	unsigned int b: 5;
	short: 8;
	unsigned int c: 1;
	int d;
};

struct bf2 {
	char x;
	short: 0;
	char: 4;
	long long unsigned int y: 12;
	long: 32;
	long long unsigned int z: 40;
};

struct bf3 {
	unsigned int a: 1;
	int: 31;
	char: 8;
	unsigned int b: 2;
};

"""),
    Case("name clashes", [
        INT,
        Struct("dup", 4, (Member("a", 1, 0),)),
        Struct("dup", 8, (Member("a", 1, 0), Member("b", 1, 32))),
        Union("dup", 4, (Member("u", 1, 0),)),
        Enum("dup", 4, (EnumValue("V", 0),)),
        Typedef("dup", 1),  # [6] typedef names and enumerators share a namespace
        Typedef("dup", 2),
        Enum("", 4, (EnumValue("dup", 0), EnumValue("V", 1))),
        Fwd("dup"),  # [9] a forward declaration keeps the plain name
        Struct("user", 8, (Member("p", 11, 0),)), Ptr(9),
        Struct("user2", 8, (Member("q", 13, 0),)), Ptr(3),
        Fwd("fu", True), Ptr(14), Struct("user3", 8, (Member("r", 15, 0),)),
    ], """\
struct dup {
	int a;
};

struct dup___2 {
	int a;
	int b;
};

union dup___3 {
	int u;
};

enum dup___4 {
	V = 0,
};

typedef int dup;

typedef struct dup dup___2;

enum {
	dup___3 = 0,
	V___2 = 1,
};

struct dup;

struct user {
	struct dup *p;
};

struct user2 {
	struct dup___2 *q;
};

union fu;

struct user3 {
	union fu *r;
};

"""),
    Case("forward declarations for cycles", [
        INT,
        Struct("a", 8, (Member("b", 3, 0),)), Ptr(5), Ptr(2),
        Struct("b", 16, (Member("a", 4, 0), Member("self", 3, 64))),
        Typedef("node_t", 7), Struct("node", 16, (Member("next", 8, 0), Member("v", 1, 64))), Ptr(6),
    ], """\
struct b;

struct a {
	struct b *b;
};

struct b {
	struct a *a;
	struct b *self;
};

struct node;

typedef struct node node_t;

struct node {
	node_t *next;
	int v;
};

"""),
    Case("unions that need attributes", [
        INT, CHAR,
        Union("u8", 8, (Member("c", 2, 0),)),  # [3] larger than its member: __aligned(8) in the source
        Array(2, 1, 5),
        Union("u6", 6, (Member("i", 1, 0), Member("c", 4, 0))),  # [5] __packed __aligned(2)
        Struct("holder", 16, (Member("c", 2, 0), Member("u", 3, 64))),
        Union("u5", 5, (Member("i", 1, 0), Member("c", 4, 0))),  # [7] __packed
        Struct("holder2", 12, (Member("c", 2, 0), Member("u", 5, 8), Member("w", 7, 56))),
    ], """\
union u8 {
	char c;
} __attribute__((aligned(8)));

union u6 {
	int i;
	char c[5];
} __attribute__((packed, aligned(2)));

struct holder {
	char c;
	union u8 u;
};

union u5 {
	int i;
	char c[5];
} __attribute__((packed));

struct holder2 {
	char c;
	union u6 u;
	union u5 w;
} __attribute__((packed));

""", bpftool_differs="no attributes on unions: u8 comes out 1 byte, u6 8 and u5 8 (the `long: 0` it adds "
                     "before u8 is redundant once u8 is aligned)"),
    Case("empty structs", [
        INT, Struct("empty", 0, ()), Struct("sized", 4, ()),
        Struct("has_empty", 4, (Member("e", 2, 0), Member("i", 1, 0))),
        Union("uempty", 0, ()), Struct("", 0, ()),
        Struct("anon_holder", 4, (Member("i", 1, 0), Member("", 6, 32))),
    ], """\
struct empty {};

struct sized {
	int: 32;
};

struct has_empty {
	struct empty e;
	int i;
};

union uempty {};

struct anon_holder {
	int i;
	struct {};
};

"""),
    Case("nested anonymous members", [
        INT,
        Struct("", 8, (Member("x", 1, 0), Member("", 3, 32))),
        Union("", 4, (Member("y", 1, 0), Member("z", 1, 0))),
        Struct("outer", 12, (Member("a", 1, 0), Member("", 2, 32))),
        Struct("", 4, (Member("w", 1, 0),)), Array(5, 1, 2),
        Struct("arr_of_anon", 8, (Member("items", 6, 0),)),
        Ptr(5), Struct("ptr_to_anon", 8, (Member("p", 8, 0),)),
    ], """\
struct outer {
	int a;
	struct {
		int x;
		union {
			int y;
			int z;
		};
	};
};

struct arr_of_anon {
	struct {
		int w;
	} items[2];
};

struct ptr_to_anon {
	struct {
		int w;
	} *p;
};

"""),
    Case("va_list as GCC records it", [
        UINT, Ptr(0),
        Struct("__va_list_tag", 24, (Member("gp_offset", 1, 0), Member("fp_offset", 1, 32),
                                     Member("overflow_arg_area", 2, 64), Member("reg_save_area", 2, 128))),
        INT, Array(3, 4, 1), Typedef("__builtin_va_list", 5), Typedef("va_list", 6),
        Const(12), Ptr(8),
        Struct("warn_args", 32, (Member("fmt", 9, 0), Member("args", 7, 64))),
        Typedef("__gnuc_va_list", 0),
        CHAR,  # [12]
    ], """\
struct __va_list_tag {
	unsigned int gp_offset;
	unsigned int fp_offset;
	void *overflow_arg_area;
	void *reg_save_area;
};

typedef struct __va_list_tag va_list[1];

struct warn_args {
	const char *fmt;
	va_list args;
};

typedef __builtin_va_list __gnuc_va_list;

""", bpftool_differs="keeps the compiler's own (8-byte on BPF) va_list: struct warn_args comes out 16 bytes"),
    Case("functions, variables and tags define nothing", [
        INT, Struct("arg", 4, (Member("v", 1, 0),)), Ptr(2),
        FuncProto(1, (Param("a", 3),)), Func("handler", 4, FuncLinkage.GLOBAL),
        Var("counter", 1, VarLinkage.GLOBAL_ALLOCATED), Datasec(".data", 4, (VarSecinfo(6, 0, 4),)),
        DeclTag("kfunc", 5, -1),
    ], """\
struct arg {
	int v;
};

"""),
]


def _spec(case: Case) -> Spec:
    return load_btf(marshal(case.types))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_c_text(case: Case) -> None:
    assert dump_c(_spec(case), guard="") == case.text


def test_header_guard_and_preserve_access_index() -> None:
    text = dump_c(load_btf(marshal([INT, Struct("s", 4, (Member("a", 1, 0),))])))
    assert text == f"""\
#ifndef {HEADER_GUARD}
#define {HEADER_GUARD}

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

struct s {{
	int a;
}};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* {HEADER_GUARD} */
"""


def test_split_btf_dumps_the_base_too() -> None:
    base = load_btf(marshal([INT, Struct("base_s", 4, (Member("a", 1, 0),)), Typedef("base_t", 2),
                             Struct("dup", 4, (Member("d", 1, 0),))]))
    mod = Struct("mod_s", 12, (Member("s", 2, 0), Member("t", 3, 32), Member("p", 6, 64)))
    split = load_btf(marshal([mod, Struct("dup", 4, (Member("x", 1, 0),))], base=base), base)
    assert dump_c(split, guard="") == """\
struct base_s {
	int a;
};

typedef struct base_s base_t;

struct dup {
	int d;
};

struct dup___2 {
	int x;
};

struct mod_s {
	struct base_s s;
	base_t t;
	struct dup___2 p;
};

"""


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ([INT, Struct("s", 8, (Member("self", 2, 0),))], r"type \[2\] STRUCT 's': unsatisfiable type cycle"),
        ([INT, Struct("", 8, (Member("a", 3, 0),)), Struct("", 8, (Member("b", 2, 0),))],
         "unsatisfiable type cycle"),
        ([INT, FuncProto(1, (Param("", 3),)), Ptr(2)], "nest too deeply"),  # a prototype taking itself
        ([Typedef("t", 2), Ptr(1)], "nest too deeply"),  # typedef t *t
        ([INT, FuncProto(1, ()), Func("f", 2), Struct("s", 4, (Member("m", 3, 0),))],
         r"FUNC 'f' cannot be part of a C declaration"),
    ],
    ids=["struct in itself", "anonymous loop", "prototype loop", "typedef loop", "function member"],
)
def test_types_c_cannot_express_are_btf_errors(types: list[Type], message: str) -> None:
    with pytest.raises(BtfError, match=message):
        dump_c(load_btf(marshal(types)))


def _any_types(n: int) -> st.SearchStrategy[Type]:
    ref = st.integers(0, n)
    name = st.sampled_from(["", "a", "b", "dup"])
    members = st.lists(st.builds(Member, name, ref, st.integers(0, 256).map(lambda b: b * 8),
                                 st.sampled_from([0, 0, 1, 7])), max_size=3).map(tuple)
    return st.one_of(
        st.just(INT), st.just(CHAR),
        st.builds(Ptr, ref), st.builds(Array, ref, st.just(1), st.integers(0, 4)),
        st.builds(Struct, name, st.integers(0, 64), members),
        st.builds(Union, name, st.integers(0, 64), members),
        st.builds(Enum, name, st.sampled_from([1, 4, 8]),
                  st.lists(st.builds(EnumValue, st.sampled_from(["A", "B"]), st.integers(0, 9)), max_size=2)
                  .map(tuple)),
        st.builds(Fwd, st.sampled_from(["a", "b"]), st.booleans()),
        st.builds(Typedef, st.sampled_from(["a", "t"]), ref), st.builds(Const, ref), st.builds(Volatile, ref),
        st.builds(TypeTag, st.just("user"), ref),
        st.builds(FuncProto, ref, st.lists(st.builds(Param, name, ref), max_size=2).map(tuple),
                  st.booleans()),
        st.builds(Func, st.just("f"), ref), st.builds(Var, st.just("v"), ref),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 10).flatmap(lambda n: st.lists(_any_types(n), min_size=n, max_size=n)))
def test_any_blob_gives_text_or_a_btf_error(types: list[Type]) -> None:
    try:
        spec = load_btf(marshal(types))
    except BtfError:
        return
    try:
        text = dump_c(spec)
    except BtfError:
        return
    assert text.startswith(f"#ifndef {HEADER_GUARD}\n") and text.endswith(f"#endif /* {HEADER_GUARD} */\n")


# ---------------------------------------------------------------------------- oracles


def _bpftool_c(data: bytes, tmp_path: Path) -> str:
    assert BPFTOOL is not None
    path = tmp_path / "case.btf"
    path.write_bytes(data)
    run = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path), "format", "c"],
                         capture_output=True, text=True, check=True)
    return run.stdout


@pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_text_as_bpftool(case: Case, tmp_path: Path) -> None:
    data = marshal(case.types)
    ours = dump_c(load_btf(data))
    theirs = _bpftool_c(data, tmp_path)
    if case.bpftool_differs:
        assert ours != theirs, "bpftool now agrees: drop the bpftool_differs note"
    else:
        assert ours == theirs


def _shape(spec: Spec, tid: int, depth: int = 0) -> str:
    """A type's structure without qualifiers, tags and parameter names (which C compilers drop or
    keep as they like): `ptr(array[4](ptr(proto(void; int))))`; named types by name."""
    t = spec.type_by_id(tid)
    while isinstance(t, (Const, Volatile, Restrict, TypeTag)):
        t = spec.type_by_id(t.type_id)
    if depth > 20:
        return "..."
    if isinstance(t, Ptr):
        return f"ptr({_shape(spec, t.type_id, depth + 1)})"
    if isinstance(t, Array):
        return f"array[{t.nelems}]({_shape(spec, t.type_id, depth + 1)})"
    if isinstance(t, FuncProto):
        params = [_shape(spec, p.type_id, depth + 1) for p in t.params] + (["..."] if t.variadic else [])
        return f"proto({_shape(spec, t.return_type_id, depth + 1)}; {', '.join(params)})"
    if isinstance(t, Composite) and not t.name:
        inner = ", ".join(f"{m.name}@{m.bit_offset}:{m.bitfield_size}={_shape(spec, m.type_id, depth + 1)}"
                          for m in t.members)
        return f"{type(t).__name__.lower()}{{{inner}}}"
    if isinstance(t, Typedef) and t.name == "__builtin_va_list":
        return _shape(spec, t.type_id, depth + 1)
    if isinstance(t, Int):
        return f"int{t.size * 8}"  # compilers spell `short int` as `short`, and so on
    if isinstance(t, Fwd):
        return f"{'union' if t.union else 'struct'} {t.name.split('___')[0]}"
    name = (getattr(t, "name", "") or "void").split("___")[0]  # renamed as CO-RE flavours are
    return f"{type(t).__name__.lower()} {name}" if isinstance(t, (Composite, Enum, Enum64)) else name


def _layouts(spec: Spec) -> dict[tuple[str, str], tuple[int, list[tuple[str, int, int, str]]]]:
    """Uniquely named structs and unions (and typedefs of them): size and (name, bit offset, bitfield
    size, shape) of members."""
    seen: dict[tuple[str, str], list[Composite]] = {}
    for t in spec.types():
        if isinstance(t, Composite) and t.name:
            seen.setdefault((type(t).__name__, t.name), []).append(t)
        elif isinstance(t, Typedef):
            target = spec.resolve(t)
            if isinstance(target, Composite):
                seen.setdefault(("Typedef", t.name), []).append(target)
    return {key: (ts[0].size, [(m.name, m.bit_offset, m.bitfield_size, _shape(spec, m.type_id))
                               for m in ts[0].members])
            for key, ts in seen.items() if len(ts) == 1}


def clang_btf(header: str, tmp_path: Path) -> Spec:
    """Compile `header` for BPF with a global of each struct and union it defines; the object's BTF."""
    assert CLANG is not None
    src = tmp_path / "use.c"
    (tmp_path / "types.h").write_text(header)
    uses = [f"{kind} {name} __use{i};" for i, (kind, name) in
            enumerate(re.findall(r"^(struct|union) (\w+) \{", header, re.M))]
    uses += [f"{name} __use_{name};" for name in re.findall(r"^\} (\w+);", header, re.M)]
    src.write_text('#include "types.h"\n' + "\n".join(uses) + "\n")
    obj = tmp_path / "use.o"
    run = subprocess.run([CLANG, "-target", "bpf", "-g", "-O2", "-Werror", "-c", str(src), "-o", str(obj)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    section = ELFFile(io.BytesIO(obj.read_bytes())).get_section_by_name(".BTF")
    return load_btf(bytes(section.data()))


@pytest.mark.skipif(CLANG is None, reason="clang is not installed")
@pytest.mark.parametrize("case", [c for c in CASES if "struct" in c.text or "union" in c.text],
                         ids=lambda c: c.name)
def test_clang_lays_out_every_struct_as_the_btf_says(case: Case, tmp_path: Path) -> None:
    spec = _spec(case)
    want = _layouts(spec)
    got = _layouts(clang_btf(dump_c(spec), tmp_path))
    names = {key for key in want if sum(1 for k in want if k[1] == key[1]) == 1}  # not renamed ___N
    assert names
    for key in sorted(names):
        assert got.get(key) == want[key], key
