"""The types of the language's values, and how each is laid out in BPF memory.

The layout rules are fixed and simple, so the compiler, the BPF code and the runtime agree without
negotiation: an integer occupies 8 bytes wherever it is stored (stack, map key or value, event record);
a string occupies `STRLEN` bytes (NUL-terminated, zero-padded); a tuple is its elements one after another.
Map values of aggregations have their own layouts (`value_size`).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from bpfkit._records import record as record_class

if TYPE_CHECKING:
    from bpfkit.lang.struct_members import StructMember as StructMember

#: Bytes of every string value (bpftrace's default ``BPFTRACE_STRLEN``).
STRLEN = 64


class Kind(enum.Enum):
    """What a value is."""

    INT = "int"
    STR = "string"
    TUPLE = "tuple"
    NONE = "none"
    KSTACK = "kstack"
    USTACK = "ustack"
    KSYM = "ksym"
    USYM = "usym"
    # Aggregations: only ever map values.
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    STATS = "stats"
    HIST = "hist"
    LHIST = "lhist"
    # A struct or union in kernel (or user) memory, known by its BTF type: only ever the base of a
    # field access, never loaded as a whole.
    RECORD = "record"
    # strftime(fmt, nsecs): nanoseconds since boot, shown as wall-clock time in format `fmt`.
    TIMESTAMP = "timestamp"
    # ntop(): an address family (u64) and up to 16 address bytes, shown as text.
    INET = "inet"
    # buf(ptr, n): `size` bytes shown hex-escaped; stored as [u64 length][bytes, 8-aligned].
    BUF = "buffer"
    # cgroup_path(id, filter): a cgroup id (u64), shown as its path in each cgroup hierarchy whose
    # name matches `fmt` (the filter; "" for all).
    CGROUP_PATH = "cgroup_path"
    # A fixed array (BTF or tracepoint field): `size` elements of type `elems[0]`, each `limit` bytes,
    # stored packed (elements keep their width), shown as bpftrace shows arrays: [1,2,3].
    ARRAY = "array"
    # A copy of a kernel struct or union as a value (``@x = curtask->se.load``): `size` bytes laid out
    # as in the kernel, described member by member (`members`), shown as { .a = 1, .b = { ... } }.
    STRUCT = "struct"


AGGREGATIONS = frozenset({Kind.COUNT, Kind.SUM, Kind.MIN, Kind.MAX, Kind.AVG, Kind.STATS, Kind.HIST,
                          Kind.LHIST})


@record_class
class Type:
    """A value's type. `size` is the integer width in bytes (1, 2, 4, 8) for INT.

    `user` marks an integer that is a pointer into user memory (tracepoint ``syscalls`` arguments,
    uprobe arguments), which decides between probe_read_user and probe_read_kernel; `kernel` marks a
    plain integer known to hold a kernel address (cast from a kernel pointer, a kernel struct's field).
    Neither: no address space is known (a literal, a ternary, a builtin such as pid): str()/buf()/join()
    read with the legacy bpf_probe_read(_str), and so does an integer read through an integer-pointer
    cast of it, as bpftrace 0.17; only a struct-pointer cast takes the probe's space (user in uprobe
    and usdt probes, kernel elsewhere). Both survive variables, map values and arithmetic.
    A pointer is an INT with a `target`: the type of what it points to (an integer, another pointer
    or a RECORD). It points into kernel memory unless `user` or `anyspace` (an integer pointer cast
    from a value of no known address space) says otherwise. A RECORD names its BTF type by `btf_id`;
    `cname` spells pointers and records in C for messages.
    """

    kind: Kind
    size: int = 8
    signed: bool = True
    elems: tuple[Type, ...] = ()
    user: bool = False
    kernel: bool = False
    target: Type | None = None
    btf_id: int = 0
    cname: str = ""
    fmt: str = ""
    limit: int = 0
    """kstack/ustack: frames shown (0: all); `fmt` is the stack mode ("perf", or "" for bpftrace).
    ARRAY: bytes per element."""
    members: tuple[StructMember, ...] = ()
    """STRUCT: the members, anonymous structs and unions flattened into their parent."""
    anyspace: bool = False
    """A pointer of no known address space: what it points to is read with bpf_probe_read."""

    @property
    def storage(self) -> int:
        """Bytes this value takes in a stack slot, map key/value or event record."""
        if self.kind is Kind.STR:
            return STRLEN
        if self.kind is Kind.TUPLE:
            return sum(e.storage for e in self.elems)
        if self.kind in (Kind.NONE, Kind.RECORD):
            return 0
        if self.kind is Kind.INET:
            return 24
        if self.kind is Kind.BUF:
            return 8 + (self.size + 7) // 8 * 8
        if self.kind is Kind.ARRAY:
            return (self.size * self.limit + 7) // 8 * 8
        if self.kind is Kind.STRUCT:
            return (self.size + 7) // 8 * 8
        if self.kind in (Kind.USTACK, Kind.USYM):
            return 16  # (stack id or address, pid): user addresses mean something only in their process
        return 8

    @property
    def is_int(self) -> bool:
        return self.kind is Kind.INT

    @property
    def in_memory(self) -> bool:
        """Whether values live in memory (strings, tuples) rather than in a register."""
        return self.kind in (Kind.STR, Kind.TUPLE, Kind.KSTACK, Kind.USTACK, Kind.KSYM, Kind.USYM, Kind.INET,
                             Kind.BUF, Kind.ARRAY, Kind.STRUCT)

    def offsets(self) -> list[int]:
        """Byte offset of each tuple element."""
        out, pos = [], 0
        for e in self.elems:
            out.append(pos)
            pos += e.storage
        return out

    def same_shape(self, other: Type) -> bool:
        """Whether values of the two types can share a map slot or variable (int widths may differ)."""
        if self.kind is not other.kind:
            return False
        if self.kind in (Kind.TIMESTAMP, Kind.CGROUP_PATH):
            return self.fmt == other.fmt
        if self.kind is Kind.BUF:
            return self.size == other.size
        if self.kind is Kind.ARRAY:
            return (self.size, self.limit, self.elems[0].signed) == (other.size, other.limit,
                                                                     other.elems[0].signed)
        if self.kind is Kind.STRUCT:
            return (self.cname, self.size) == (other.cname, other.size)
        if self.kind in (Kind.KSTACK, Kind.USTACK):
            return (self.fmt, self.limit) == (other.fmt, other.limit)
        if self.kind is Kind.TUPLE:
            return len(self.elems) == len(other.elems) and all(
                a.same_shape(b) for a, b in zip(self.elems, other.elems, strict=True))
        return True

    @property
    def is_pointer(self) -> bool:
        return self.kind is Kind.INT and bool(self.cname)

    def __str__(self) -> str:
        if self.cname:
            return self.cname
        if self.kind is Kind.INT:
            return f"{'' if self.signed else 'u'}int{self.size * 8}"
        if self.kind is Kind.STR:
            return f"string[{STRLEN}]"
        if self.kind is Kind.TUPLE:
            return "(" + ",".join(str(e) for e in self.elems) + ")"
        if self.kind is Kind.BUF:
            return f"buffer[{self.size}]"
        if self.kind in (Kind.NONE, Kind.KSTACK, Kind.USTACK, Kind.KSYM, Kind.USYM, Kind.TIMESTAMP,
                         Kind.INET, Kind.CGROUP_PATH):
            return str(self.kind.value)
        return f"{self.kind.value}_t"


INT64 = Type(Kind.INT, 8, True)
UINT64 = Type(Kind.INT, 8, False)
UINT32 = Type(Kind.INT, 4, False)
INT32 = Type(Kind.INT, 4, True)
STRING = Type(Kind.STR)
NONE = Type(Kind.NONE)
KSTACK = Type(Kind.KSTACK)
USTACK = Type(Kind.USTACK)
KSYM = Type(Kind.KSYM)
USYM = Type(Kind.USYM)
#: Frames kept per stack (the kernel's default perf_event_max_stack).
STACK_FRAMES = 127


def int_type(size: int, signed: bool, *, user: bool = False, kernel: bool = False) -> Type:
    return Type(Kind.INT, size, signed, user=user, kernel=kernel)


def pointer_to(target: Type | None, cname: str, *, user: bool = False) -> Type:
    """A pointer to `target` (None: void), spelled `cname` (``struct task_struct *``)."""
    return Type(Kind.INT, 8, False, user=user, target=target, cname=cname)


def record(btf_id: int, cname: str, *, user: bool = False) -> Type:
    return Type(Kind.RECORD, 0, False, user=user, btf_id=btf_id, cname=cname)


INET = Type(Kind.INET)


def buffer(size: int) -> Type:
    return Type(Kind.BUF, size, False)


def timestamp(fmt: str) -> Type:
    return Type(Kind.TIMESTAMP, 8, False, fmt=fmt)


def cgroup_path(filter_: str) -> Type:
    return Type(Kind.CGROUP_PATH, 8, False, fmt=filter_)


def array_of(elem: Type, count: int, elem_size: int) -> Type:
    """`count` elements of `elem`, each `elem_size` bytes (an integer's width, or a struct's size)."""
    return Type(Kind.ARRAY, count, False, elems=(elem,), limit=elem_size, cname=f"{elem}[{count}]")


def tuple_type(elems: tuple[Type, ...]) -> Type:
    return Type(Kind.TUPLE, elems=elems)


def agg(kind: Kind) -> Type:
    return Type(kind, signed=kind is not Kind.COUNT)


#: Cast target names and the integer type each names.
CAST_TYPES = {
    "bool": int_type(1, False), "uint8": int_type(1, False), "uint16": int_type(2, False),
    "uint32": UINT32, "uint64": UINT64, "int8": int_type(1, True), "int16": int_type(2, True),
    "int32": INT32, "int64": INT64,
}


def normalise(t: Type) -> Type:
    """The type a value has once stored: integers widen to 8 bytes (keeping signedness and address
    space); a typed pointer keeps what it points to."""
    if t.kind is Kind.INT and not t.is_pointer and t.size != 8:
        return int_type(8, t.signed, user=t.user, kernel=t.kernel)
    if t.kind is Kind.TUPLE:
        return tuple_type(tuple(normalise(x) for x in t.elems))
    return t


def value_size(t: Type) -> int:
    """Bytes of a map value of type `t` (aggregations included)."""
    if t.kind in (Kind.AVG, Kind.STATS):
        return 16  # (count, total)
    if t.kind in (Kind.MIN, Kind.MAX):
        return 16  # (value, set): a CPU's zeroed copy of a per-CPU value must not count as a sample
    return max(8, t.storage)


def __getattr__(name: str) -> Any:
    # `StructMember` lives in `bpfkit.lang.struct_members`, imported when first asked for (start-up of
    # a cached script: only STRUCT values need it).
    if name == "StructMember":
        from bpfkit.lang.struct_members import StructMember

        globals()[name] = StructMember
        return StructMember
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
