"""Kernel types from BTF as language types: pointers, struct fields, casts.

The compiler stays pure: it is handed the kernel's BTF as a `Spec` (through a callback, so scripts that
never touch a struct do not pay for loading it) and turns BTF types into `bpfkit.lang.types.Type`s.
A pointer to a struct becomes an integer whose `target` is a RECORD naming the struct's BTF id; a field
access on it is lowered to a ``bpf_probe_read_kernel`` of the field's bytes (see `FieldInfo`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bpfkit.errors import BtfError
from bpfkit.lang.types import STRING, STRLEN, Kind, Type, int_type, pointer_to, record

if TYPE_CHECKING:
    # Imported at run time only by the functions that are handed a Spec (which has loaded the BTF
    # package already): scripts that never touch kernel types do not pay for importing it.
    from bpfkit.btf import Spec

#: Gives the kernel's BTF on demand (None when the system has none).
BtfLookup = Callable[[], "Spec | None"]

#: How deep pointer-to-pointer chains are typed (each level is typed only when reached).
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
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
    return None


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
    return FieldInfo(ref.byte_offset, ref.size if t.kind is Kind.INT else 0, t)
