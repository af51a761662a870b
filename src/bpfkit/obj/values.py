"""Python values <-> the bytes of a BTF-typed variable (for setting global variables before load).

Encoding follows the C types: integers (range-checked, signedness from BTF), bools, enums (by value or
enumerator name), pointers (as integers), floats, char arrays from `str`/`bytes` (NUL-padded), other
arrays from sequences, structs and unions from dicts of member values (members not named keep their
current bytes, bitfields included). Raw `bytes` of the exact size are accepted for any type.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from bpfkit.btf import Array, Composite, EnumBase, Float, Int, IntEncoding, Ptr, Spec, Type
from bpfkit.errors import BtfError

_MAX_DEPTH = 64


def _is_char(t: Type) -> bool:
    return isinstance(t, Int) and t.size == 1 and not t.encoding & IntEncoding.BOOL


def encode_value(btf: Spec, type_id: int, value: object, current: bytes, byteorder: str = "little") -> bytes:
    """`value` as the bytes of type `type_id`; `current` (the variable's bytes now) fills what
    `value` leaves unspecified. `BtfError` names what does not fit."""
    buf = bytearray(current)
    _encode(btf, type_id, value, buf, 0, byteorder, 0, "value")
    return bytes(buf)


def _encode(btf: Spec, type_id: int, value: object, buf: bytearray, off: int, bo: str, depth: int,
            path: str) -> None:
    if depth > _MAX_DEPTH:
        raise BtfError(f"{path}: types nest too deeply")
    t = btf.resolve(type_id)
    size = btf.sizeof(t)
    char_array = isinstance(t, Array) and _char_array(btf, t)
    if isinstance(value, (bytes, bytearray, memoryview)) and not char_array:
        raw = bytes(value)
        if len(raw) != size:
            raise BtfError(f"{path}: {len(raw)} bytes given for a {size}-byte {btf.type_str(t)}")
        buf[off : off + size] = raw
        return
    if isinstance(t, Int):
        buf[off : off + size] = _int_bytes(t, value, bo, path)
    elif isinstance(t, EnumBase):
        if isinstance(value, str):
            match = next((v.value for v in t.values if v.name == value), None)
            if match is None:
                raise BtfError(f"{path}: {value!r} is not an enumerator of {btf.type_str(t)}")
            value = match
        buf[off : off + size] = _ranged(value, size, t.signed, bo, path)
    elif isinstance(t, Ptr):
        buf[off : off + size] = _ranged(value, size, False, bo, path)
    elif isinstance(t, Float):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or size not in (4, 8):
            raise BtfError(f"{path}: expected a number for a {size}-byte float, got {value!r}")
        fmt = ("<" if bo == "little" else ">") + ("f" if size == 4 else "d")
        buf[off : off + size] = struct.pack(fmt, float(value))
    elif isinstance(t, Array):
        _encode_array(btf, t, value, buf, off, bo, depth, path)
    elif isinstance(t, Composite):
        _encode_composite(btf, t, value, buf, off, bo, depth, path)
    else:
        raise BtfError(f"{path}: cannot encode a value of {btf.type_str(t)}")


def _char_array(btf: Spec, t: Array) -> bool:
    return _is_char(btf.resolve(t.type_id))


def _encode_array(btf: Spec, t: Array, value: object, buf: bytearray, off: int, bo: str, depth: int,
                  path: str) -> None:
    if _char_array(btf, t) and isinstance(value, (str, bytes, bytearray, memoryview)):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) > t.nelems:
            raise BtfError(f"{path}: {len(raw)} bytes do not fit in char[{t.nelems}]")
        buf[off : off + t.nelems] = raw + bytes(t.nelems - len(raw))
        return
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise BtfError(f"{path}: expected a sequence for {btf.type_str(t)}, got {value!r}")
    if len(value) > t.nelems:
        raise BtfError(f"{path}: {len(value)} elements do not fit in [{t.nelems}]")
    step = btf.sizeof(t.type_id)
    for i, item in enumerate(value):
        _encode(btf, t.type_id, item, buf, off + i * step, bo, depth + 1, f"{path}[{i}]")
    # Elements not given are zero, as in a C initializer.
    rest = off + len(value) * step
    buf[rest : off + t.nelems * step] = bytes(off + t.nelems * step - rest)


def _encode_composite(btf: Spec, t: Composite, value: object, buf: bytearray, off: int, bo: str, depth: int,
                      path: str) -> None:
    if not isinstance(value, Mapping):
        raise BtfError(f"{path}: expected a dict of members for {btf.type_str(t)}, got {value!r}")
    for key, item in value.items():
        try:
            m = t.member(str(key))
        except KeyError:
            raise BtfError(f"{path}: {btf.type_str(t)} has no member {key!r}") from None
        sub = f"{path}.{key}"
        if m.bitfield_size:
            _set_bits(buf, off, m.bit_offset, m.bitfield_size, item, _signed(btf.resolve(m.type_id)), bo, sub)
        else:
            if m.bit_offset % 8:
                raise BtfError(f"{sub}: member is not byte-aligned")
            _encode(btf, m.type_id, item, buf, off + m.bit_offset // 8, bo, depth + 1, sub)


def _signed(t: Type) -> bool:
    if isinstance(t, Int):
        return bool(t.encoding & IntEncoding.SIGNED)
    return isinstance(t, EnumBase) and t.signed


def _set_bits(buf: bytearray, off: int, bit_offset: int, bits: int, value: object, signed: bool, bo: str,
              path: str) -> None:
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise BtfError(f"{path}: expected an integer for a {bits}-bit field, got {value!r}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        kind = "signed" if signed else "unsigned"
        raise BtfError(f"{path}: {value} does not fit in a {kind} {bits}-bit field")
    if bo != "little":
        raise BtfError(f"{path}: bitfields of big-endian objects are not supported")
    first, last = bit_offset // 8, (bit_offset + bits - 1) // 8
    start = off + first
    word = int.from_bytes(buf[start : off + last + 1], "little")
    shift = bit_offset - first * 8
    mask = ((1 << bits) - 1) << shift
    word = (word & ~mask) | ((value & ((1 << bits) - 1)) << shift)
    buf[start : off + last + 1] = word.to_bytes(last - first + 1, "little")


def _int_bytes(t: Int, value: object, bo: str, path: str) -> bytes:
    if t.encoding & IntEncoding.BOOL and not isinstance(value, (bool, int)):
        raise BtfError(f"{path}: expected a bool, got {value!r}")
    if t.bits != t.size * 8 or t.offset:
        raise BtfError(f"{path}: integer type {t.name!r} with {t.bits} bits at offset {t.offset} is not "
                       "supported")
    return _ranged(value, t.size, bool(t.encoding & IntEncoding.SIGNED), bo, path)


def _ranged(value: object, size: int, signed: bool, bo: str, path: str) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise BtfError(f"{path}: expected an integer, got {value!r}")
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        kind = "signed" if signed else "unsigned"
        raise BtfError(f"{path}: {value} does not fit in a {kind} {size}-byte integer")
    return value.to_bytes(size, "little" if bo == "little" else "big", signed=signed)


def decode_value(btf: Spec, type_id: int, raw: bytes, byteorder: str = "little", depth: int = 0) -> Any:
    """The Python value of `raw` as type `type_id`: int, bool, float, bytes (char arrays), list (other
    arrays) or dict (structs and unions; bitfields decoded)."""
    if depth > _MAX_DEPTH:
        raise BtfError("types nest too deeply")
    t = btf.resolve(type_id)
    bo: Any = "little" if byteorder == "little" else "big"
    if isinstance(t, Int):
        n = int.from_bytes(raw[: t.size], bo, signed=bool(t.encoding & IntEncoding.SIGNED))
        return bool(n) if t.encoding & IntEncoding.BOOL else n
    if isinstance(t, EnumBase):
        return int.from_bytes(raw[: t.size], bo, signed=t.signed)
    if isinstance(t, Ptr):
        return int.from_bytes(raw[:8], bo)
    if isinstance(t, Float) and t.size in (4, 8):
        fmt = ("<" if bo == "little" else ">") + ("f" if t.size == 4 else "d")
        return struct.unpack(fmt, raw[: t.size])[0]
    if isinstance(t, Array):
        if _char_array(btf, t):
            return bytes(raw[: t.nelems])
        step = btf.sizeof(t.type_id)
        return [decode_value(btf, t.type_id, raw[i * step : (i + 1) * step], byteorder, depth + 1)
                for i in range(t.nelems)]
    if isinstance(t, Composite):
        out: dict[str, Any] = {}
        for m in t.members:
            if m.bitfield_size:
                bits = (int.from_bytes(raw, "little") >> m.bit_offset) & ((1 << m.bitfield_size) - 1)
                if _signed(btf.resolve(m.type_id)) and bits >> (m.bitfield_size - 1):
                    bits -= 1 << m.bitfield_size
                out[m.name] = bits
            elif m.name:
                start = m.bit_offset // 8
                size = btf.sizeof(m.type_id)
                out[m.name] = decode_value(btf, m.type_id, raw[start : start + size], byteorder, depth + 1)
        return out
    return bytes(raw)
