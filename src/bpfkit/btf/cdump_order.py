"""Ordering for the C dump: which types get a top-level definition, and in what order.

C needs a type defined before it is embedded (by value, as a member, array element or typedef target)
but only declared before it is pointed to. So the dump walks the types in id order and, for each one,
first visits what it needs "strongly" (embedded types), then queues itself. A named struct or union
reached through a pointer is a weak need: a forward declaration (written by the emitter) satisfies it,
which is also what breaks the cycles of self-referencing structs. Anonymous structs, unions and enums
are never queued: they are written inline where they are used (an anonymous enum that nothing refers
to is queued, since its enumerators are useful constants).

The visit returns whether the type was a strong need; a typedef reached through a pointer is queued
only if what it names is already complete (or is a scalar), mirroring a struct's forward declaration.
The resulting order is the one bpftool (libbpf's btf_dump) produces for the same blob.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import Kind

from .types import (
    Array,
    Composite,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Ptr,
    Restrict,
    Typedef,
    TypeTag,
    Var,
    Void,
    Volatile,
)

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["order_types", "scan_types"]

_VISITING = 1
_DONE = 2

_PASS_THROUGH = (Const, Volatile, Restrict, TypeTag)
_NOT_DEFINITIONS = (Func, Var, Datasec, DeclTag)
# Roots that define nothing and that no definition needs (functions, variables, sections, tags).
_SKIPPED_ROOTS = frozenset({Kind.FUNC, Kind.VAR, Kind.DATASEC, Kind.DECL_TAG})


# Word positions of type references in a record, by kind (include/uapi/linux/btf.h): `struct btf_type`
# is (name_off, info, size_or_type), then per-kind words.
_TYPE_IN_WORD_2 = frozenset({Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.FUNC,
                             Kind.VAR, Kind.DECL_TAG, Kind.TYPE_TAG})


def scan_types(spec: Spec) -> tuple[bytearray, bytearray]:
    """(kind, referenced) flags per type id, base types included, read straight from the type section.

    `referenced[i]` is 1 if some type refers to type i: only anonymous enums care (one nothing refers
    to is dumped at top level). Reading the words directly, without decoding records, keeps this to a
    fraction of the dump's time (vmlinux has some 50k functions and 30k prototypes to step over).
    """
    n = spec.type_count
    kinds = bytearray(n)
    referenced = bytearray(n)
    chain: list[Spec] = []
    s: Spec | None = spec
    while s is not None:
        chain.append(s)
        s = s.base
    word2, array, composites, proto, datasec = _TYPE_IN_WORD_2, Kind.ARRAY, (Kind.STRUCT, Kind.UNION), \
        Kind.FUNC_PROTO, Kind.DATASEC
    for s in chain:
        words = s._words  # the reader's host-order view of the type section (package-internal)
        tid = s.first_id
        for pos in s._offs:
            info = words[pos + 1]
            kind = info >> 24 & 31
            kinds[tid] = kind
            vlen = info & 0xFFFF
            try:
                if kind in word2:
                    referenced[words[pos + 2]] = 1
                elif kind == array:
                    referenced[words[pos + 3]] = 1
                    referenced[words[pos + 4]] = 1
                elif kind in composites:
                    for q in range(pos + 4, pos + 4 + 3 * vlen, 3):
                        referenced[words[q]] = 1
                elif kind == proto:
                    referenced[words[pos + 2]] = 1
                    for q in range(pos + 4, pos + 4 + 2 * vlen, 2):
                        referenced[words[q]] = 1
                elif kind == datasec:
                    for q in range(pos + 3, pos + 3 + 3 * vlen, 3):
                        referenced[words[q]] = 1
            except IndexError:
                raise BtfError(f"type [{tid}] {Kind(kind).name}: refers to a type id past the last "
                               f"({n - 1})") from None
            tid += 1
    return kinds, referenced


def _proto_refs(spec: Spec, tid: int) -> list[int]:
    """The return and parameter type ids of prototype `tid`, read from its record (variadic `...`
    included, as type 0)."""
    while tid < spec.first_id and spec.base is not None:
        spec = spec.base
    words = spec._words
    pos = spec._offs[tid - spec.first_id]
    vlen = words[pos + 1] & 0xFFFF
    return [words[pos + 2], *words[pos + 4 : pos + 4 + 2 * vlen : 2]]


class _Orderer:
    """One ordering pass; `state` and `queue` persist across the roots of `order_types`."""

    def __init__(self, spec: Spec, referenced: bytearray) -> None:
        self.get = spec.type_by_id
        self.state = bytearray(spec.type_count)
        self.state[0] = _DONE  # void needs no definition and is always usable
        self.referenced = referenced
        self.queue: list[int] = []

    def visit(self, tid: int, through_ptr: bool) -> bool:
        """Order `tid`; True if it is complete now (a strong need was met), False if only declared."""
        state = self.state[tid]
        if state == _DONE:
            return True
        t = self.get(tid)
        if state == _VISITING:
            if isinstance(t, Composite) and through_ptr and t.name:
                return False  # a pointer back into a struct being defined: a forward declaration does
            raise BtfError(f"type [{tid}] {t.kind.name} {t.name_or_anon!r}: unsatisfiable type cycle "
                           "(it contains itself by value)")
        if isinstance(t, Ptr):
            strong = self.visit(t.type_id, True)
            self.state[tid] = _DONE
            return strong
        if isinstance(t, _PASS_THROUGH):
            return self.visit(t.type_id, through_ptr)
        if isinstance(t, Composite):
            if through_ptr and t.name:
                return False
            self.state[tid] = _VISITING
            for m in t.members:
                self.visit(m.type_id, False)
            if t.name:
                self.queue.append(tid)
            self.state[tid] = _DONE
            return True
        if isinstance(t, Typedef):
            strong = self.visit(t.type_id, through_ptr)
            if through_ptr and not strong:
                return False
            self.queue.append(tid)
            self.state[tid] = _DONE
            return True
        if isinstance(t, Array):
            return self.visit(t.type_id, False)
        if isinstance(t, FuncProto):
            strong = self.visit(t.return_type_id, through_ptr) or t.variadic
            for p in t.params:
                if self.visit(p.type_id, through_ptr):
                    strong = True
            return strong
        if isinstance(t, (Enum, Enum64, Fwd)):
            if t.name or not self.referenced[tid]:
                self.queue.append(tid)
            self.state[tid] = _DONE
            return True
        if isinstance(t, (Int, Float)):
            self.state[tid] = _DONE
            return False
        if isinstance(t, _NOT_DEFINITIONS):
            self.state[tid] = _DONE
            return False
        if isinstance(t, Void):  # pragma: no cover - id 0 is marked done up front
            return True
        raise BtfError(f"type [{tid}]: kind {t.kind.name} cannot be dumped as C")  # pragma: no cover


def order_types(spec: Spec, roots: Iterable[int]) -> list[int]:
    """Ids to define at top level, in an order where each comes after everything it embeds.

    `roots` are visited in order (bpftool visits every id of the blob). Raises `BtfError` on a type
    that contains itself by value, or when types nest too deeply to follow.
    """
    kinds, referenced = scan_types(spec)
    orderer = _Orderer(spec, referenced)
    skipped = _SKIPPED_ROOTS
    proto = Kind.FUNC_PROTO
    try:
        for tid in roots:
            kind = kinds[tid]
            if kind == proto:  # as visit() does, without decoding some 30k prototypes of vmlinux
                for ref in _proto_refs(spec, tid):
                    orderer.visit(ref, False)
            elif kind not in skipped:  # saves decoding some 50k functions of vmlinux
                orderer.visit(tid, False)
    except RecursionError:
        raise BtfError("types nest too deeply to order (a reference loop?)") from None
    return orderer.queue
