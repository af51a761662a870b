"""Kernel types from BTF as language types: pointers, struct fields, casts.

The compiler stays pure: it is handed the kernel's BTF as a `Spec` (through a callback, so scripts that
never touch a struct do not pay for loading it) and turns BTF types into `bpfkit.lang.types.Type`s.
A pointer to a struct becomes an integer whose `target` is a RECORD naming the struct's BTF id; a field
access on it is lowered to a ``bpf_probe_read_kernel`` of the field's bytes (see `FieldInfo`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bpfkit._records import record as record_class
from bpfkit._records import replace
from bpfkit.errors import BtfError
from bpfkit.lang.types import STRING, STRLEN, Kind, StructMember, Type, array_of, int_type, pointer_to, record
from bpfkit.uapi.limits import PCPU_MIN_UNIT_SIZE

if TYPE_CHECKING:
    # Imported at run time only by the functions that are handed a Spec (which has loaded the BTF
    # package already): scripts that never touch kernel types do not pay for importing it.
    from bpfkit.btf import Spec
    from bpfkit.btf.types import Composite

#: Gives the kernel's BTF on demand (None when the system has none).
BtfLookup = Callable[[], "Spec | None"]

#: How deep pointer-to-pointer chains are typed (each level is typed only when reached).
_MAX_DEPTH = 8


@record_class
class FieldInfo:
    """How to read one field: `offset` bytes from the struct's address, `size` bytes to read.

    For a bitfield, `bit_shift` and `bit_size` pick the bits out of the `size` bytes read
    (little-endian). A RECORD-typed field is not read: its address is the struct's plus `offset`.
    """

    offset: int
    size: int
    type: Type
    bit_shift: int = 0
    bit_size: int = 0


def describe(spec: Spec, type_id: int) -> str:
    """C spelling of BTF type `type_id` (``struct task_struct``, ``unsigned int``)."""
    return spec.type_str(type_id)


def lang_type(spec: Spec, type_id: int, *, user: bool = False, depth: int = 0) -> Type | None:
    """The language type of a value of BTF type `type_id`, or None when it cannot be a value.

    Integers and enums keep their width and signedness; pointers keep what they point to; structs
    and unions become RECORDs; arrays of chars become strings.
    """
    from bpfkit.btf.types import Array, EnumBase, Int, Ptr, Struct, Union

    t = spec.resolve(type_id)
    if isinstance(t, Int):
        if t.size in (1, 2, 4, 8):
            return int_type(t.size, t.signed)
        return None
    if isinstance(t, EnumBase):
        return int_type(t.size, t.signed) if t.size in (1, 2, 4, 8) else None
    if isinstance(t, Ptr):
        cname = describe(spec, type_id)
        # A `__user` pointer (BTF type tag "user", kernels built with clang) points into user memory:
        # what it points to is read with bpf_probe_read_user.
        user = user or _user_tagged(spec, t.type_id)
        if depth >= _MAX_DEPTH:
            return pointer_to(None, cname, user=user)
        target = spec.resolve(t.type_id) if t.type_id else None
        inner = lang_type(spec, t.type_id, user=user, depth=depth + 1) if target is not None else None
        return pointer_to(inner, cname, user=user)
    if isinstance(t, Struct | Union):
        return record(t.id, describe(spec, t.id), user=user)
    if isinstance(t, Array):
        elem = spec.resolve(t.type_id)
        if isinstance(elem, Int) and elem.size == 1:
            return STRING
        et = lang_type(spec, t.type_id, user=user, depth=depth + 1) if depth < _MAX_DEPTH else None
        if et is None or not t.nelems or et.kind not in (Kind.INT, Kind.RECORD):
            return None  # arrays of arrays, flexible arrays: not values
        return array_of(et, t.nelems, et.size if et.kind is Kind.INT else spec.sizeof(t.type_id))
    return None


def _user_tagged(spec: Spec, type_id: int) -> bool:
    """Whether the modifiers of pointee `type_id` (const, volatile, type tags) include ``user``."""
    from bpfkit.btf.types import Const, Restrict, TypeTag, Volatile

    for _ in range(_MAX_DEPTH):
        if not type_id:
            return False
        t = spec.type_by_id(type_id)
        if isinstance(t, TypeTag) and t.name == "user":
            return True
        if not isinstance(t, Const | Volatile | Restrict | TypeTag):
            return False
        type_id = t.type_id
    return False


#: The largest struct value assembled on the 512-byte BPF stack (where a statement may need room for
#: more than the copy). Larger ones are staged in a per-CPU scratch map (`bpfkit.lang.big_values`) to be
#: copied to a map, printed or printf'ed; a variable holds their address; map keys and tuples refuse them.
MAX_STRUCT_VALUE = 448
#: The most the scratch map holds for one statement (an event's id and all its arguments): the largest
#: per-CPU map value the kernel creates.
MAX_PERCPU_VALUE = PCPU_MIN_UNIT_SIZE
#: The largest struct copied as a value at all: it must fit the scratch map's per-CPU value after the
#: 8 bytes of an event's id.
MAX_STRUCT_COPY = MAX_PERCPU_VALUE - 8


def struct_value(spec: Spec, btf_id: int, cname: str, *, user: bool = False, depth: int = 0) -> Type:
    """The STRUCT value type of BTF struct/union `btf_id`: every member that can be shown (integers,
    pointers, enums, char arrays, arrays, nested structs; anonymous members flattened); `BtfError`
    when the struct is too large to copy at all (`MAX_STRUCT_COPY`). A `user` struct is copied from
    user memory, and its pointer members point into user memory too."""
    from bpfkit.btf.types import Composite

    t = spec.resolve(btf_id)
    assert isinstance(t, Composite)
    if t.size > MAX_STRUCT_COPY:
        raise BtfError(f"'{cname}' is {t.size} bytes: too large to copy as a value (at most "
                       f"{MAX_STRUCT_COPY}); read its fields instead")
    return Type(Kind.STRUCT, t.size, False, user=user, cname=cname, btf_id=t.id,
                members=tuple(_members(spec, t, 0, depth, user)))


def _members(spec: Spec, t: Composite, base_bits: int, depth: int, user: bool) -> list[StructMember]:
    from bpfkit.btf.types import Composite, Int

    out: list[StructMember] = []
    for m in t.members:
        bits = base_bits + m.bit_offset
        mt = spec.resolve(m.type_id)
        if not m.name and isinstance(mt, Composite):  # anonymous struct/union: its members are ours
            out += _members(spec, mt, bits, depth, user)
            continue
        size = spec.sizeof(m.type_id)
        bitfield = m.bitfield_size
        if not bitfield and isinstance(mt, Int) and mt.bits != mt.size * 8:  # old-style bitfield
            bitfield, bits = mt.bits, bits + mt.offset
        if bitfield:
            start, shift = bits // 8, bits % 8
            need = next(s for s in (1, 2, 4, 8, 16) if s >= (shift + bitfield + 7) // 8)
            lt = lang_type(spec, m.type_id)
            if need <= 8 and lt is not None and lt.is_int:
                out.append(StructMember(m.name, start, need, int_type(need, lt.signed), shift, bitfield))
            continue
        if isinstance(mt, Composite):
            if depth < _MAX_DEPTH:
                nested = struct_value(spec, mt.id, describe(spec, mt.id), user=user, depth=depth + 1)
                out.append(StructMember(m.name, bits // 8, size, nested))
            continue
        lt = lang_type(spec, m.type_id, user=user)
        if lt is None or lt.kind is Kind.RECORD or (lt.kind is Kind.ARRAY
                                                     and lt.elems[0].kind is Kind.RECORD):
            continue  # a struct behind a pointer, an array of structs: not shown
        out.append(StructMember(m.name, bits // 8, size, lt))
    return out


def named_type(spec: Spec, name: str, pointer: int) -> Type | None:
    """The type a cast names: ``struct task_struct`` with `pointer` stars (None if BTF lacks it)."""
    from bpfkit.btf.types import Composite, Struct, Union

    kind: type[Composite] | None = None
    bare = name
    if name.startswith("struct "):
        kind, bare = Struct, name[len("struct "):].strip()
    elif name.startswith("union "):
        kind, bare = Union, name[len("union "):].strip()
    ids = [i for i in spec.find_ids(bare) if kind is None or isinstance(spec.type_by_id(i), kind)]
    if not ids:
        return None
    # Prefer a complete definition (forward declarations share the name).
    ids.sort(key=lambda i: not isinstance(spec.type_by_id(i), Composite))
    base_id = ids[0]
    base = record(base_id, name) if kind is not None else lang_type(spec, base_id)
    if base is None:
        return None
    t = base
    for level in range(pointer):
        t = pointer_to(t, name + " " + "*" * (level + 1))
    return t


def in_user_memory(t: Type) -> Type:
    """Pointer `t` as a pointer into user memory (a cast of a user address): what it points to, down
    a chain of pointers to a struct, lies in user memory too, so every read through it, its fields,
    copies and pointer members uses bpf_probe_read_user. Integers pointed to stay plain values."""
    if t.kind is Kind.RECORD:
        return replace(t, user=True)
    if not t.is_pointer:
        return t
    target = in_user_memory(t.target) if t.target is not None else None
    return replace(t, user=True, target=target)


def field(spec: Spec, rec: Type, name: str) -> FieldInfo:
    """Field `name` of RECORD `rec`; `BtfError` (naming the struct) when it is missing or unreadable."""
    assert rec.kind is Kind.RECORD
    ref = spec.member(rec.btf_id, name)
    t = lang_type(spec, ref.type_id, user=rec.user)
    if t is None:
        raise BtfError(f"field '{name}' of type '{describe(spec, ref.type_id)}' in '{rec.cname}' "
                       "cannot be read by bpfkit yet")
    if ref.is_bitfield:
        start = ref.bit_offset // 8
        shift = ref.bit_offset % 8
        need = (shift + ref.bitfield_size + 7) // 8
        size = next(s for s in (1, 2, 4, 8, 16) if s >= need)
        if size > 8:
            raise BtfError(f"bitfield '{name}' in '{rec.cname}' spans more than 8 bytes")
        return FieldInfo(start, size, int_type(8, t.signed), shift, ref.bitfield_size)
    if t.kind is Kind.STR:
        return FieldInfo(ref.byte_offset, min(ref.size, STRLEN - 1), t)
    return FieldInfo(ref.byte_offset, ref.size if t.kind in (Kind.INT, Kind.ARRAY) else 0, t)
