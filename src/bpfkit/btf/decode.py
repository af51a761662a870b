"""Decoding one BTF type record into its record class (the per-kind half of `Spec.type_by_id`).

Each decoder reads 32-bit words (already in host byte order) at word position `p` of the type
section, checks every referenced type id and name offset, and raises `BtfError` with the absolute byte
offset of the offending field. Record lengths were checked by the load-time walk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import FuncLinkage, IntEncoding, Kind, VarLinkage

from .types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
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
    VarSecinfo,
    Volatile,
)

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["decode_type"]

_FUNC_LINKAGES = tuple(FuncLinkage)
_VAR_LINKAGES = tuple(VarLinkage)
_INT_ENCODINGS = tuple(IntEncoding(i) for i in range(16))
_VARIADIC = Param("", 0)


def _s32(v: int) -> int:
    return v - 0x1_0000_0000 if v & 0x8000_0000 else v


def _bad_ref(spec: Spec, tid: int, what: str, ref: int, word: int) -> BtfError:
    return BtfError(
        f"type [{tid}]: {what} type id {ref} out of range (last id {spec.type_count - 1})",
        spec._type_start + word * 4,
    )


def _ref(spec: Spec, tid: int, what: str, word: int) -> int:
    ref: int = spec._words[word]
    if ref >= spec.type_count:
        raise _bad_ref(spec, tid, what, ref, word)
    return ref


def _int(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    v = w[p + 3]
    return Int(name, w[p + 2], _INT_ENCODINGS[v >> 24 & 0xF], v >> 16 & 0xFF, v & 0xFF, id=tid, spec=spec)


def _ptr(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Ptr(_ref(spec, tid, "target", p + 2), name, id=tid, spec=spec)


def _array(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Array(
        _ref(spec, tid, "element", p + 3),
        _ref(spec, tid, "index", p + 4),
        spec._words[p + 5],
        name,
        id=tid,
        spec=spec,
    )


def _composite(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    count = spec.type_count
    names = spec._names
    members = []
    q = p + 3
    end = q + 3 * (info & 0xFFFF)
    kflag = info >> 31
    while q < end:
        mname = names.get(w[q])
        if mname is None:
            mname = spec._name(w[q], q)
        mtype = w[q + 1]
        if mtype >= count:
            raise _bad_ref(spec, tid, "member", mtype, q + 1)
        off = w[q + 2]
        if kflag:
            members.append(Member(mname, mtype, off & 0xFFFFFF, off >> 24))
        else:
            members.append(Member(mname, mtype, off))
        q += 3
    cls = Struct if info >> 24 & 31 == Kind.STRUCT else Union
    return cls(name, w[p + 2], tuple(members), id=tid, spec=spec)


def _enum(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    signed = bool(info >> 31)
    values = []
    q = p + 3
    for _ in range(info & 0xFFFF):
        v = w[q + 1]
        values.append(EnumValue(spec._name(w[q], q), _s32(v) if signed else v))
        q += 2
    return Enum(name, w[p + 2], tuple(values), signed, id=tid, spec=spec)


def _enum64(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    signed = bool(info >> 31)
    values = []
    q = p + 3
    for _ in range(info & 0xFFFF):
        v = w[q + 2] << 32 | w[q + 1]
        if signed and v >> 63:
            v -= 1 << 64
        values.append(EnumValue(spec._name(w[q], q), v))
        q += 3
    return Enum64(name, w[p + 2], tuple(values), signed, id=tid, spec=spec)


def _fwd(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Fwd(name, bool(info >> 31), id=tid, spec=spec)


def _typedef(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Typedef(name, _ref(spec, tid, "target", p + 2), id=tid, spec=spec)


def _volatile(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Volatile(_ref(spec, tid, "target", p + 2), name, id=tid, spec=spec)


def _const(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Const(_ref(spec, tid, "target", p + 2), name, id=tid, spec=spec)


def _restrict(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Restrict(_ref(spec, tid, "target", p + 2), name, id=tid, spec=spec)


def _func(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    linkage = info & 0xFFFF
    if linkage >= len(_FUNC_LINKAGES):
        raise BtfError(f"type [{tid}] FUNC {name!r}: unknown linkage {linkage}", spec._type_start + p * 4 + 4)
    proto = spec._words[p + 2]
    if proto >= spec.type_count:
        raise _bad_ref(spec, tid, "prototype", proto, p + 2)
    return Func(name, proto, _FUNC_LINKAGES[linkage], id=tid, spec=spec)


def _func_proto(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    count = spec.type_count
    cache = spec._params  # the same (name, type) parameter recurs across thousands of prototypes
    params = []
    q = p + 3
    end = q + 2 * (info & 0xFFFF)
    while q < end:
        name_off = w[q]
        ptype = w[q + 1]
        prm = cache.get(name_off << 32 | ptype)
        if prm is None:
            if ptype >= count:
                raise _bad_ref(spec, tid, "parameter", ptype, q + 1)
            pname = spec._names.get(name_off)
            if pname is None:
                pname = spec._name(name_off, q)
            prm = cache[name_off << 32 | ptype] = Param(pname, ptype)
        params.append(prm)
        q += 2
    variadic = bool(params) and params[-1] == _VARIADIC
    if variadic:
        params.pop()
    return FuncProto(_ref(spec, tid, "return", p + 2), tuple(params), variadic, name, id=tid, spec=spec)


def _var(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    linkage = spec._words[p + 3]
    if linkage >= len(_VAR_LINKAGES):
        raise BtfError(f"type [{tid}] VAR {name!r}: unknown linkage {linkage}", spec._type_start + p * 4 + 12)
    return Var(name, _ref(spec, tid, "variable", p + 2), _VAR_LINKAGES[linkage], id=tid, spec=spec)


def _datasec(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    w = spec._words
    infos = []
    q = p + 3
    for _ in range(info & 0xFFFF):
        infos.append(VarSecinfo(_ref(spec, tid, "variable", q), w[q + 1], w[q + 2]))
        q += 3
    return Datasec(name, w[p + 2], tuple(infos), id=tid, spec=spec)


def _float(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return Float(name, spec._words[p + 2], id=tid, spec=spec)


def _decl_tag(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    target = _ref(spec, tid, "tagged", p + 2)
    return DeclTag(name, target, _s32(spec._words[p + 3]), bool(info >> 31), id=tid, spec=spec)


def _type_tag(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:
    return TypeTag(name, _ref(spec, tid, "tagged", p + 2), bool(info >> 31), id=tid, spec=spec)


def _unknown(spec: Spec, tid: int, p: int, info: int, name: str) -> Type:  # pragma: no cover - walk rejects
    raise BtfError(f"type [{tid}]: unknown kind {info >> 24 & 31}", spec._type_start + p * 4 + 4)


Decoder = Callable[["Spec", int, int, int, str], Type]
_DECODERS: dict[Kind, Decoder] = {
    Kind.INT: _int,
    Kind.PTR: _ptr,
    Kind.ARRAY: _array,
    Kind.STRUCT: _composite,
    Kind.UNION: _composite,
    Kind.ENUM: _enum,
    Kind.FWD: _fwd,
    Kind.TYPEDEF: _typedef,
    Kind.VOLATILE: _volatile,
    Kind.CONST: _const,
    Kind.RESTRICT: _restrict,
    Kind.FUNC: _func,
    Kind.FUNC_PROTO: _func_proto,
    Kind.VAR: _var,
    Kind.DATASEC: _datasec,
    Kind.FLOAT: _float,
    Kind.DECL_TAG: _decl_tag,
    Kind.TYPE_TAG: _type_tag,
    Kind.ENUM64: _enum64,
}
DECODERS: list[Decoder] = [_DECODERS.get(k, _unknown) for k in range(32)]  # type: ignore[call-overload]


def decode_type(spec: Spec, tid: int, p: int) -> Type:
    """Decode the record of type `tid` at word position `p`."""
    w = spec._words
    info = w[p + 1]
    name = spec._names.get(w[p])
    if name is None:
        name = spec._name(w[p], p)
    decoded: Type = DECODERS[info >> 24 & 31](spec, tid, p, info, name)
    return decoded
