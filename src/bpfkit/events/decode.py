"""Typed decoding of event records: `struct` format strings, ctypes structures, BTF types -> dicts.

Each `*_decoder` function builds, once, a callable that turns a record's bytes (bytes, bytearray or a
memoryview handed out by a ring/perf buffer reader) into Python values; the per-record work is one
`struct` unpack or one ctypes copy, or for BTF a precomputed plan of field readers. Records shorter than
the type raise `DecodeError` naming the type and both sizes (records may be longer: perf samples carry
padding).
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, cast

from bpfkit.btf import Array, Composite, EnumBase, Float, Int, Ptr, Spec, Type
from bpfkit.btf.types import Const, DeclTag, Restrict, Typedef, TypeTag, Volatile
from bpfkit.errors import BpfkitError

Buffer = bytes | bytearray | memoryview
Decoder = Callable[[Buffer], Any]
C = TypeVar("C", bound=ctypes.Structure | ctypes.Union | ctypes.Array[Any])

_MAX_DEPTH = 64
_ORDER: Literal["little", "big"] = sys.byteorder  # the kernel writes native byte order


class DecodeError(BpfkitError, ValueError):
    """A record does not fit the type it is decoded as."""


def _short(what: str, need: int, got: int) -> DecodeError:
    return DecodeError(f"record of {got} bytes is too short for {what} ({need} bytes)")


def struct_decoder(fmt: str, names: Sequence[str] | None = None) -> Decoder:
    """Decode with the `struct` format `fmt` (native order by default, like the kernel's writes).

    Returns a scalar for a one-field format, a tuple otherwise, or a dict when field `names` are given.
    """
    try:
        st = struct.Struct(fmt if fmt[:1] in "@=<>!" else "=" + fmt)
    except struct.error as e:
        raise DecodeError(f"bad struct format {fmt!r}: {e}") from None
    nfields = len(st.unpack(bytes(st.size)))
    if names is not None and len(names) != nfields:
        raise DecodeError(f"format {fmt!r} has {nfields} fields but {len(names)} names were given")
    size, unpack = st.size, st.unpack_from
    label = f"format {fmt!r}"

    def check(data: Buffer) -> None:
        if len(data) < size:
            raise _short(label, size, len(data))

    if names is not None:
        keys = tuple(names)

        def as_dict(data: Buffer) -> dict[str, Any]:
            check(data)
            return dict(zip(keys, unpack(data), strict=True))
        return as_dict
    if nfields == 1:
        def scalar(data: Buffer) -> Any:
            check(data)
            return unpack(data)[0]
        return scalar

    def as_tuple(data: Buffer) -> tuple[Any, ...]:
        check(data)
        return unpack(data)
    return as_tuple


def ctypes_decoder(ctype: type[C]) -> Callable[[Buffer], C]:
    """Decode into a copy of the ctypes structure, union or array `ctype`."""
    size = ctypes.sizeof(ctype)
    label = f"{ctype.__name__}"

    def decode(data: Buffer) -> C:
        if len(data) < size:
            raise _short(label, size, len(data))
        return cast(C, ctype.from_buffer_copy(data[:size] if len(data) != size else data))
    return decode


# --- BTF ------------------------------------------------------------------------------------------------

_Reader = Callable[[Buffer, int], Any]
_QUALIFIERS = (Typedef, Const, Volatile, Restrict, TypeTag, DeclTag)


def _int_reader(size: int, signed: bool) -> _Reader:
    def read(data: Buffer, off: int) -> int:
        return int.from_bytes(data[off:off + size], _ORDER, signed=signed)
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}.get(size)
    if fmt is None:
        return read
    unpack = struct.Struct("=" + (fmt if signed else fmt.upper())).unpack_from

    def fast(data: Buffer, off: int) -> int:
        return int(unpack(data, off)[0])
    return fast


class _Planner:
    def __init__(self, spec: Spec, enum_names: bool) -> None:
        self.spec = spec
        self.enum_names = enum_names

    def resolve(self, t: Type) -> Type:
        for _ in range(_MAX_DEPTH):
            if not isinstance(t, _QUALIFIERS):
                return t
            t = self.spec.type_by_id(t.type_id)
        raise DecodeError(f"BTF type chain too deep at type [{t.id}]")

    def reader(self, t: Type, depth: int = 0) -> _Reader:
        if depth > _MAX_DEPTH:
            raise DecodeError(f"BTF type nesting too deep at type [{t.id}]")
        t = self.resolve(t)
        if isinstance(t, Int):
            if t.offset or t.bits != t.size * 8:
                return self._bits(t.size, t.offset, t.bits, t.signed)
            if t.encoding & 4:  # BTF_INT_BOOL
                inner = _int_reader(t.size, False)
                return lambda data, off: bool(inner(data, off))
            return _int_reader(t.size, t.signed)
        if isinstance(t, EnumBase):
            return self._enum(t)
        if isinstance(t, Ptr):
            return _int_reader(8, False)
        if isinstance(t, Float):
            fmt = {4: "=f", 8: "=d", 2: "=e"}.get(t.size)
            if fmt is None:
                return lambda data, off: bytes(data[off:off + t.size])
            unpack_f = struct.Struct(fmt).unpack_from
            return lambda data, off: unpack_f(data, off)[0]
        if isinstance(t, Array):
            return self._array(t, depth)
        if isinstance(t, Composite):
            return self._composite(t, depth)
        raise DecodeError(f"cannot decode BTF type [{t.id}] of kind {t.kind.name} as an event field")

    def _bits(self, size: int, bit_off: int, nbits: int, signed: bool) -> _Reader:
        mask = (1 << nbits) - 1

        def read(data: Buffer, off: int) -> int:
            v = (int.from_bytes(data[off:off + size], _ORDER) >> bit_off) & mask
            if signed and v >> (nbits - 1):
                v -= 1 << nbits
            return v
        return read

    def _enum(self, t: EnumBase) -> _Reader:
        inner = _int_reader(t.size, t.signed)
        if not self.enum_names:
            return inner
        names = {v.value: v.name for v in t.values}

        def read(data: Buffer, off: int) -> Any:
            v = inner(data, off)
            return names.get(v, v)
        return read

    def _array(self, t: Array, depth: int) -> _Reader:
        elem = self.resolve(self.spec.type_by_id(t.type_id))
        n = t.nelems
        if isinstance(elem, Int) and elem.size == 1 and (elem.encoding & 2 or elem.name in ("char",
                                                                                              "signed char")):
            def chars(data: Buffer, off: int) -> bytes:  # a C string: up to the first NUL
                raw = bytes(data[off:off + n])
                nul = raw.find(b"\0")
                return raw if nul < 0 else raw[:nul]
            return chars
        esize = self.spec.sizeof(elem)
        read_elem = self.reader(elem, depth + 1)

        def items(data: Buffer, off: int) -> list[Any]:
            return [read_elem(data, off + i * esize) for i in range(n)]
        return items

    def _composite(self, t: Composite, depth: int) -> _Reader:
        fields: list[tuple[str, int, _Reader]] = []
        anon = 0
        for m in t.members:
            mt = self.resolve(self.spec.type_by_id(m.type_id))
            if m.bitfield_size:
                if not isinstance(mt, (Int, EnumBase)):
                    raise DecodeError(f"bitfield {m.name!r} of {t.name or 'anonymous'} is not an integer")
                byte = m.bit_offset // 8 // mt.size * mt.size
                shift = m.bit_offset - byte * 8
                signed = mt.signed if isinstance(mt, Int) else bool(mt.signed)
                fields.append((m.name, byte, self._bits(mt.size, shift, m.bitfield_size, signed)))
                continue
            if m.bit_offset % 8:
                raise DecodeError(f"member {m.name!r} of {t.name or 'anonymous'} is not byte aligned")
            name = m.name
            if not name:
                name = f"__anon{anon}"
                anon += 1
            fields.append((name, m.bit_offset // 8, self.reader(mt, depth + 1)))

        def read(data: Buffer, off: int) -> dict[str, Any]:
            return {name: r(data, off + o) for name, o, r in fields}
        return read


def btf_decoder(spec: Spec, type_: Type | int | str, *, enum_names: bool = True) -> Decoder:
    """Decode records laid out as BTF type `type_` (a Type, a type id, or a struct name in `spec`).

    Structs and unions become dicts (anonymous members as ``__anon<n>``), arrays lists, char arrays the
    bytes up to the first NUL, integers ints (bitfields included), enums their enumerator names (or the
    number when no name matches; ints with ``enum_names=False``), pointers their address.
    """
    if isinstance(type_, str):
        matches = spec.find_all(type_)
        found = [t for t in matches if isinstance(t, Composite)] or matches
        if not found:
            raise DecodeError(f"no BTF type named {type_!r}")
        t = found[0]
    elif isinstance(type_, int):
        t = spec.type_by_id(type_)
    else:
        t = type_
    planner = _Planner(spec, enum_names)
    read = planner.reader(t)
    size = spec.sizeof(t)
    label = f"BTF type {spec.type_str(t)!r}"

    def decode(data: Buffer) -> Any:
        if len(data) < size:
            raise _short(label, size, len(data))
        return read(data, 0)
    return decode
