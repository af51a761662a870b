"""Map keys and values decoded with their BTF types, as bpftool prints them under ``"formatted"``.

The conventions are bpftool's (observed from `bpftool map dump -j`): integers are numbers (hex strings
for bitfields and integers wider than 64 bits), ``_Bool`` is true/false, an enum is the name of its
matching enumerator (else the number), a char array holding a NUL-terminated printable string is that
string (else a list of numbers), pointers are numbers, structs and unions are objects of their members,
a data section (``.bss``, ``.data``) is ``{section: [{variable: value}, ...]}``.
"""

from __future__ import annotations

from typing import Any

from bpfkit.btf import (
    Array,
    Composite,
    Datasec,
    Enum64,
    EnumBase,
    Float,
    Int,
    IntEncoding,
    Ptr,
    Spec,
    Type,
    Var,
)
from bpfkit.errors import BtfError

_MAX_DEPTH = 32


def format_value(spec: Spec, type_id: int, raw: bytes, depth: int = 0) -> Any:
    """`raw` (little-endian bytes of a map key or value) as type `type_id` of `spec`, bpftool-style."""
    if depth > _MAX_DEPTH:
        raise BtfError(f"type {type_id} nests more than {_MAX_DEPTH} levels deep")
    t = spec.resolve(type_id)
    if isinstance(t, Int):
        return _int(t, raw, 0, t.bits if t.offset or t.bits != t.size * 8 else 0)
    if isinstance(t, EnumBase):
        # A 32-bit enum's values are `__s32 val` in struct btf_enum: bpftool prints an unmatched
        # value signed whatever the kind_flag says (clang before 15 leaves it 0).
        signed = t.signed or not isinstance(t, Enum64)
        n = int.from_bytes(raw[: t.size], "little", signed=signed)
        mask = (1 << (8 * t.size)) - 1
        for v in t.values:
            if v.value & mask == n & mask:
                return v.name
        return n
    if isinstance(t, Ptr):
        return int.from_bytes(raw[:8], "little")
    if isinstance(t, Float):
        import struct

        return struct.unpack("<f" if t.size == 4 else "<d", raw[: t.size])[0] if t.size in (4, 8) else \
            "0x" + raw[: t.size][::-1].hex()
    if isinstance(t, Array):
        return _array(spec, t, raw, depth)
    if isinstance(t, Composite):
        return _composite(spec, t, raw, depth)
    if isinstance(t, Datasec):
        out = []
        for sec in t.vars:
            var = spec.type_by_id(sec.type_id)
            name = var.name if isinstance(var, Var) else ""
            vtype = var.type_id if isinstance(var, Var) else sec.type_id
            out.append({name: format_value(spec, vtype, raw[sec.offset:sec.offset + sec.size], depth + 1)})
        return {t.name: out}
    return [f"0x{b:02x}" for b in raw]  # void, functions: not values; show the bytes


def _int(t: Int, raw: bytes, bit_offset: int, bitfield: int) -> Any:
    """An integer; `bitfield` bits wide at `bit_offset` (plus the Int's own offset) when non-zero."""
    if bitfield:
        whole = int.from_bytes(raw, "little")
        bits = (whole >> (bit_offset + t.offset)) & ((1 << bitfield) - 1)
        return f"0x{bits:x}"
    if t.encoding & IntEncoding.BOOL:
        return bool(int.from_bytes(raw[: t.size], "little"))
    if t.size > 8:
        return f"0x{int.from_bytes(raw[: t.size], 'little'):x}"
    return int.from_bytes(raw[: t.size], "little", signed=bool(t.encoding & IntEncoding.SIGNED))


def _is_char(t: Type) -> bool:
    return isinstance(t, Int) and t.size == 1 and t.bits == 8 and not t.encoding & IntEncoding.BOOL


def _array(spec: Spec, t: Array, raw: bytes, depth: int) -> Any:
    elem = spec.resolve(t.type_id)
    if _is_char(elem):
        data = raw[: t.nelems]
        end = data.find(b"\0")
        if end >= 0 and all(0x20 <= b < 0x7F for b in data[:end]):
            return data[:end].decode("ascii")
    step = spec.sizeof(t.type_id)
    return [format_value(spec, t.type_id, raw[i * step:(i + 1) * step], depth + 1) for i in range(t.nelems)]


def _composite(spec: Spec, t: Composite, raw: bytes, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in t.members:
        mt = spec.resolve(m.type_id)
        if m.bitfield_size or (isinstance(mt, Int) and (m.bit_offset % 8 or mt.bits != mt.size * 8)):
            width = m.bitfield_size or (mt.bits if isinstance(mt, Int) else 0)
            out[m.name] = _int(mt, raw, m.bit_offset, width) if isinstance(mt, Int) else \
                f"0x{(int.from_bytes(raw, 'little') >> m.bit_offset) & ((1 << width) - 1):x}"
            continue
        start = m.bit_offset // 8
        out[m.name] = format_value(spec, m.type_id, raw[start:start + spec.sizeof(m.type_id)], depth + 1)
    return out
