"""Render BTF types for people: C-ish declarations (`type_str`) and member layouts (`describe`).

`type_str` builds a C declarator from the outside in: pointers prefix `*`, arrays and function
prototypes suffix `[n]` / `(params)` (parenthesising a pointer declarator first), and qualifiers
gather until they reach a pointer (`int *const`) or the base type (`const int`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import Kind

from .types import (
    Array,
    Composite,
    Datasec,
    DeclTag,
    EnumBase,
    Func,
    FuncProto,
    Fwd,
    Ptr,
    Type,
    Typedef,
    TypeTag,
    Var,
    Void,
)

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["describe", "type_str"]

_MAX_DEPTH = 48
_QUALIFIERS = {Kind.CONST: "const", Kind.VOLATILE: "volatile", Kind.RESTRICT: "restrict"}

Lookup = Callable[[int], "Type | None"]


def _lookup_for(spec: Spec | None) -> Lookup:
    if spec is None:
        return lambda tid: Void() if tid == 0 else None
    return spec.type_by_id


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner.startswith("["):
        return base + inner
    return f"{base} {inner}"


def _tag_qualifier(t: TypeTag) -> str:
    return f"__attribute__(({t.name}))" if t.attribute else f'__attribute__((btf_type_tag("{t.name}")))'


def _base_name(t: Type) -> str:
    if isinstance(t, Void):
        return "void"
    if isinstance(t, Composite):
        word = "struct" if t.kind == Kind.STRUCT else "union"
        return f"{word} {t.name}" if t.name else f"{word} {{...}}"
    if isinstance(t, EnumBase):
        return f"enum {t.name}" if t.name else "enum {...}"
    if isinstance(t, Fwd):
        return f"{'union' if t.union else 'struct'} {t.name}"
    return t.name_or_anon


def _params(p: FuncProto, get: Lookup, depth: int) -> str:
    parts = [_decl(get, prm.type_id, prm.name, [], depth + 1) for prm in p.params]
    if p.variadic:
        parts.append("...")
    return ", ".join(parts) if parts else "void"


def _decl(get: Lookup, ref: int | Type, inner: str, quals: list[str], depth: int) -> str:
    """Declaration of `inner` (a declarator, possibly empty) having type `ref`."""
    if depth > _MAX_DEPTH:
        return _join("...", inner)
    t = get(ref) if isinstance(ref, int) else ref
    if t is None:
        return _join(" ".join([*quals, f"type[{ref}]"]), inner)
    if isinstance(t, Ptr):
        q = " ".join(quals)
        return _decl(get, t.type_id, "*" + (f"{q} " if q and inner else q) + inner, [], depth + 1)
    if t.kind in _QUALIFIERS:
        return _decl(get, t.type_id, inner, [*quals, _QUALIFIERS[t.kind]], depth + 1)  # type: ignore[attr-defined]
    if isinstance(t, TypeTag):
        return _decl(get, t.type_id, inner, [*quals, _tag_qualifier(t)], depth + 1)
    if isinstance(t, Array):
        if inner.startswith("*"):
            inner = f"({inner})"
        return _decl(get, t.type_id, f"{inner}[{t.nelems}]", quals, depth + 1)
    if isinstance(t, FuncProto):
        if inner.startswith("*"):
            inner = f"({inner})"
        return _decl(get, t.return_type_id, f"{inner}({_params(t, get, depth)})", [], depth + 1)
    if isinstance(t, Func):
        return _decl(get, t.type_id, inner or t.name, [], depth + 1)
    if isinstance(t, Var):
        return _decl(get, t.type_id, inner or t.name, quals, depth + 1)
    if isinstance(t, Datasec):
        return f'SEC("{t.name}")'
    if isinstance(t, DeclTag):
        target = _decl(get, t.type_id, "", [], depth + 1)
        where = f" component {t.component_idx}" if t.component_idx >= 0 else ""
        return f"decl_tag {t.name!r} on {target}{where}"
    # C qualifiers read best before the base type, type tags after it (as clang and bpftool write them)
    tags = [q for q in quals if q.startswith("__attribute__")]
    plain = [q for q in quals if not q.startswith("__attribute__")]
    return _join(" ".join([*plain, _base_name(t), *tags]), inner)


def type_str(t: Type, name: str = "", *, spec: Spec | None = None) -> str:
    """`t` as a C declaration of `name`, e.g. `int *`, `char comm[16]`, `u32 (*)(void *, int)`.

    References are looked up in `spec` (default: the spec `t` was decoded from); without one they
    print as `type[N]`.
    """
    return _decl(_lookup_for(spec if spec is not None else t.spec), t, name, [], 0)


# ---------------------------------------------------------------------------- describe

_COMMENT_COLUMN = 56  # where the /* offset size */ comments start, tabs counted as 8 columns


def _with_comment(text: str, comment: str) -> str:
    pad = max(1, _COMMENT_COLUMN - len(text.expandtabs(8)))
    return f"{text}{' ' * pad}/* {comment} */"


def _member_lines(spec: Spec, t: Composite, base_bits: int, indent: str, out: list[str], depth: int) -> None:
    get = spec.type_by_id
    for m in t.members:
        off = base_bits + m.bit_offset
        mt = spec.resolve(m.type_id)
        if not m.name and isinstance(mt, Composite) and not mt.name and depth < _MAX_DEPTH:
            word = "struct" if mt.kind == Kind.STRUCT else "union"
            out.append(_with_comment(f"{indent}{word} {{", f"{off // 8:5} {mt.size:5}"))
            _member_lines(spec, mt, off, indent + "\t", out, depth + 1)
            out.append(f"{indent}}};")
            continue
        decl = _decl(get, m.type_id, m.name, [], 0)
        bits = m.bitfield_size
        if not bits and mt.kind == Kind.INT and (mt.offset or mt.bits != mt.size * 8):  # type: ignore[attr-defined]
            bits = mt.bits  # type: ignore[attr-defined]
            off += mt.offset  # type: ignore[attr-defined]
        try:
            size = str(spec.sizeof(m.type_id))
        except BtfError:
            size = "?"
        if bits:
            decl += f":{bits}"
            where = f"{off // 8}:{off % 8}"
        else:
            where = str(off // 8) if off % 8 == 0 else f"{off // 8}:{off % 8}"
        out.append(_with_comment(f"{indent}{decl};", f"{where:>5} {size:>5}"))


def describe(spec: Spec, ref: int | Type) -> str:
    """A multi-line layout: for structs and unions each member's byte offset (`byte:bit` for
    bitfields) and size, anonymous members expanded in place; enumerators for enums; variables for
    data sections; the declaration for anything else."""
    t = spec.type_by_id(ref) if isinstance(ref, int) else ref
    head = f"[{t.id}] " if t.id else ""
    if isinstance(t, Composite):
        try:
            align = str(spec.alignof(t))
        except BtfError:
            align = "?"
        out = [f"{head}{_base_name(t)} {{\t/* size {t.size}, align {align} */"]
        _member_lines(spec, t, 0, "\t", out, 0)
        out.append("};")
        return "\n".join(out)
    if isinstance(t, EnumBase):
        sign = "signed" if t.signed else "unsigned"
        out = [f"{head}{_base_name(t)} {{\t/* size {t.size}, {sign} */"]
        out.extend(f"\t{v.name} = {v.value}," for v in t.values)
        out.append("};")
        return "\n".join(out)
    if isinstance(t, Datasec):
        out = [f'{head}SEC("{t.name}")\t/* size {t.size} */']
        for v in t.vars:
            decl = _decl(spec.type_by_id, v.type_id, "", [], 0)
            out.append(_with_comment(f"\t{decl};", f"{v.offset:5} {v.size:5}"))
        return "\n".join(out)
    text = head + type_str(t, spec=spec)
    if isinstance(t, Typedef):
        text = f"{head}typedef {type_str(spec.type_by_id(t.type_id), t.name, spec=spec)}"
    if isinstance(t, Func):
        text += f"\t/* {t.linkage.name.lower()} */"
    try:
        text += f"\t/* size {spec.sizeof(t)} */"
    except BtfError:
        pass
    return text
