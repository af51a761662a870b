"""`dump_raw`: the text of `bpftool btf dump file X format raw`, one line per type or member.

The format is bpftool's (checked line for line against bpftool 7.1 on the whole vmlinux BTF):
`[id] KIND 'name' key=value ...`, with members, enumerators, parameters and section variables on
tab-indented lines below their type. Split BTF prints only its own types, as bpftool does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import FuncLinkage, IntEncoding, Kind, VarLinkage

from .types import (
    Array,
    Composite,
    Datasec,
    DeclTag,
    EnumBase,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Type,
    Var,
)

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["dump_raw", "raw_lines"]

_INT_ENCODINGS = {
    IntEncoding.NONE: "(none)",
    IntEncoding.SIGNED: "SIGNED",
    IntEncoding.CHAR: "CHAR",
    IntEncoding.BOOL: "BOOL",
}
_FUNC_LINKAGE = {FuncLinkage.STATIC: "static", FuncLinkage.GLOBAL: "global", FuncLinkage.EXTERN: "extern"}
_VAR_LINKAGE = {VarLinkage.STATIC: "static", VarLinkage.GLOBAL_ALLOCATED: "global",
                VarLinkage.GLOBAL_EXTERN: "extern"}


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def raw_lines(spec: Spec, t: Type) -> list[str]:
    """The bpftool raw lines of one decoded type (its header line, then member lines)."""
    head = f"[{t.id}] {t.kind.name} {_q(getattr(t, 'name', ''))}"
    if isinstance(t, Int):
        enc = _INT_ENCODINGS.get(t.encoding, "UNKN")
        return [f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} encoding={enc}"]
    if isinstance(t, Composite):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            line = f"\t{_q(m.name)} type_id={m.type_id} bits_offset={m.bit_offset}"
            if m.bitfield_size:
                line += f" bitfield_size={m.bitfield_size}"
            lines.append(line)
        return lines
    if isinstance(t, EnumBase):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        lines = [f"{head} encoding={enc} size={t.size} vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if t.kind == Kind.ENUM64 else ""
        lines.extend(f"\t{_q(v.name)} val={v.value}{suffix}" for v in t.values)
        return lines
    if isinstance(t, Array):
        return [f"{head} type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"]
    if isinstance(t, Fwd):
        return [f"{head} fwd_kind={'union' if t.union else 'struct'}"]
    if isinstance(t, Func):
        return [f"{head} type_id={t.type_id} linkage={_FUNC_LINKAGE[t.linkage]}"]
    if isinstance(t, FuncProto):
        params = [*t.params]
        lines = [f"{head} ret_type_id={t.return_type_id} vlen={len(params) + t.variadic}"]
        lines.extend(f"\t{_q(p.name)} type_id={p.type_id}" for p in params)
        if t.variadic:
            lines.append("\t'(anon)' type_id=0")
        return lines
    if isinstance(t, Var):
        return [f"{head} type_id={t.type_id}, linkage={_VAR_LINKAGE[t.linkage]}"]
    if isinstance(t, Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for v in t.vars:
            vt = spec.type_by_id(v.type_id)
            target = f"{vt.kind.name} {_q(getattr(vt, 'name', ''))}"
            lines.append(f"\ttype_id={v.type_id} offset={v.offset} size={v.size} ({target})")
        return lines
    if isinstance(t, Float):
        return [f"{head} size={t.size}"]
    if isinstance(t, DeclTag):
        return [f"{head} type_id={t.type_id} component_idx={t.component_idx}"]
    if hasattr(t, "type_id"):  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
        return [f"{head} type_id={t.type_id}"]
    raise BtfError(f"type [{t.id}]: kind {t.kind.name} has no raw form")  # pragma: no cover


def dump_raw(spec: Spec) -> Iterator[str]:
    """Yield the lines of `bpftool btf dump ... format raw` for `spec`'s own types."""
    for t in spec.types():
        yield from raw_lines(spec, t)
