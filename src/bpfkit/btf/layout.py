"""Type resolution and C layout over a `Spec`: resolve, sizeof, alignof, member lookup.

Sizes and alignments follow the C compiler for the BPF and x86-64 targets: scalars align to their
size, pointers are 8 bytes, arrays align as their element, structs and unions as their most aligned
member; a struct whose size or member offsets break that alignment was packed and aligns to 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._records import record
from bpfkit.errors import BtfError
from bpfkit.uapi.btf import Kind

from .types import Array, Composite, Datasec, EnumBase, Float, Int, Member, Ptr, Type, Var

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["MODIFIER_KINDS", "POINTER_SIZE", "MemberRef", "alignof", "member", "resolve", "sizeof"]

POINTER_SIZE = 8
"""Bytes in a pointer: BTF does not record it; the BPF target and x86-64 use 8."""
MAX_RESOLVE_DEPTH = 32
"""Longest chain of typedefs/modifiers (or array nesting) followed before calling it a loop."""
MAX_NESTING = 200
"""Deepest nesting of structs by value followed before giving up (keeps recursion bounded)."""
MODIFIER_KINDS = frozenset({Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG})


def _type(spec: Spec, t: int | Type) -> Type:
    return spec.type_by_id(t) if isinstance(t, int) else t


def _label(t: Type) -> str:
    return f"[{t.id}] {t.kind.name} {t.name_or_anon!r}"


def resolve(spec: Spec, t: int | Type) -> Type:
    """Skip typedef, const, volatile, restrict and type_tag wrappers around `t`."""
    cur = _type(spec, t)
    for _ in range(MAX_RESOLVE_DEPTH):
        if cur.kind not in MODIFIER_KINDS:
            return cur
        cur = spec.type_by_id(cur.type_id)  # type: ignore[attr-defined]
    raise BtfError(f"{_label(_type(spec, t))}: modifier chain longer than {MAX_RESOLVE_DEPTH} (a loop?)")


def sizeof(spec: Spec, t: int | Type) -> int:
    """Size in bytes; `BtfError` for void, functions, forward declarations and tags."""
    cur = resolve(spec, t)
    count = 1
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(cur, (Int, EnumBase, Composite, Float, Datasec)):
            return count * cur.size
        if isinstance(cur, Ptr):
            return count * POINTER_SIZE
        if isinstance(cur, Array):
            count *= cur.nelems
            cur = resolve(spec, cur.type_id)
            continue
        if isinstance(cur, Var):
            cur = resolve(spec, cur.type_id)
            continue
        raise BtfError(f"{_label(cur)} has no size")
    raise BtfError(f"{_label(_type(spec, t))}: nesting deeper than {MAX_RESOLVE_DEPTH} (a loop?)")


def _scalar_align(size: int) -> int:
    # The largest power of two dividing the size, as compilers align int, enum and float types.
    return min(size & -size, 16) if size > 0 else 1


def alignof(spec: Spec, t: int | Type) -> int:
    """Alignment in bytes; a struct whose layout cannot be naturally aligned was packed and gives 1."""
    return _align(spec, resolve(spec, t), set(), {}, 0)


def _align(spec: Spec, t: Type, active: set[int], memo: dict[int, int], depth: int) -> int:
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(t, (Int, EnumBase, Float)):
            return _scalar_align(t.size)
        if isinstance(t, Ptr):
            return POINTER_SIZE
        if isinstance(t, (Array, Var)):
            t = resolve(spec, t.type_id)
            continue
        if isinstance(t, Composite):
            if depth > MAX_NESTING:
                raise BtfError(f"{_label(t)}: structs nest deeper than {MAX_NESTING}")
            return _composite_align(spec, t, active, memo, depth)
        raise BtfError(f"{_label(t)} has no alignment")
    raise BtfError(f"{_label(t)}: nesting deeper than {MAX_RESOLVE_DEPTH} (a loop?)")


def _composite_align(spec: Spec, t: Composite, active: set[int], memo: dict[int, int], depth: int) -> int:
    key = t.id
    if key and key in memo:
        return memo[key]
    if key in active and key:
        raise BtfError(f"{_label(t)} contains itself")
    active.add(key)
    align = 1
    packed = False
    for m in t.members:
        mt = resolve(spec, m.type_id)
        a = _align(spec, mt, active, memo, depth + 1)
        if a > align:
            align = a
        if not m.bitfield_size and not _is_int_bitfield(mt) and m.bit_offset % (a * 8):
            packed = True
    active.discard(key)
    if packed or t.size % align:
        align = 1
    if key:
        memo[key] = align
    return align


def _is_int_bitfield(t: Type) -> bool:
    return isinstance(t, Int) and (t.offset != 0 or t.bits != t.size * 8)


@record
class MemberRef:
    """A member reached by a path such as `se.vruntime`, offsets counted from the outermost type.

    `indices` are the member indices taken at each level, anonymous struct/union levels included
    (the shape of a CO-RE access string). `bitfield_size` is non-zero for bitfields, whether the
    struct encodes them with kind_flag or, in old BTF, with an INT of fewer bits.
    """

    path: str
    member: Member
    type_id: int
    bit_offset: int
    bitfield_size: int
    size: int
    indices: tuple[int, ...]

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8

    @property
    def is_bitfield(self) -> bool:
        return self.bitfield_size != 0


def _search(spec: Spec, t: Composite, name: str, depth: int) -> tuple[list[int], list[Member], int] | None:
    """Find direct or anonymous-nested member `name`: (indices, members, bit offset) or None."""
    for i, m in enumerate(t.members):
        if m.name == name:
            return [i], [m], m.bit_offset
    if depth >= MAX_RESOLVE_DEPTH:
        raise BtfError(f"{_label(t)}: anonymous members nest deeper than {MAX_RESOLVE_DEPTH}")
    for i, m in enumerate(t.members):
        if not m.name:
            inner = resolve(spec, m.type_id)
            if isinstance(inner, Composite):
                found = _search(spec, inner, name, depth + 1)
                if found is not None:
                    idx, mems, off = found
                    return [i, *idx], [m, *mems], m.bit_offset + off
    return None


def member(spec: Spec, t: int | Type, path: str) -> MemberRef:
    """Look up member `path` (dot-separated) in struct/union `t`; `BtfError` if it is missing."""
    cur = resolve(spec, t)
    bit_offset = 0
    indices: list[int] = []
    last: Member | None = None
    for part in path.split("."):
        if not isinstance(cur, Composite):
            raise BtfError(f"{_label(cur)} is not a struct or union, so has no member {part!r} ({path})")
        found = _search(spec, cur, part, 0)
        if found is None:
            raise BtfError(f"{_label(cur)} has no member {part!r}")
        idx, mems, off = found
        indices.extend(idx)
        bit_offset += off
        last = mems[-1]
        cur = resolve(spec, last.type_id)
    assert last is not None
    bitfield = last.bitfield_size
    if not bitfield and isinstance(cur, Int) and _is_int_bitfield(cur):
        bitfield = cur.bits
        bit_offset += cur.offset
    size = sizeof(spec, last.type_id)
    return MemberRef(path, last, last.type_id, bit_offset, bitfield, size, tuple(indices))
