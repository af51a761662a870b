"""Key and value codecs for maps: Python values to the kernel's bytes and back.

A map's key or value type is declared as one of:
  * ``None``: raw bytes of the exact size (ints and objects with ``fileno()`` are also accepted on the
    way in, as native-endian unsigned integers);
  * a `struct` format string (``"I"``, ``"<QQ"``): one field decodes to a scalar, several to a tuple;
  * ``int``: a native-endian unsigned integer of the map's size;
  * a ctypes type (Structure, Array or scalar like ``c_uint32``);
  * any object with ``size``, ``encode`` and ``decode`` (the `Codec` protocol).
Per-CPU maps hold one value per possible CPU, each padded to 8 bytes; `PerCpuCodec` maps them to lists.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from bpfkit.errors import BpfkitError


class CodecError(BpfkitError, ValueError):
    """A key or value has the wrong type or size for its map."""


@runtime_checkable
class Codec(Protocol):
    """Converts between Python values and the fixed-size bytes the kernel stores."""

    size: int

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


TypeSpec = Any
"""What a map's key or value type may be declared as (see the module docstring)."""


class RawCodec:
    """Bytes of exactly `size`; ints (and fds via ``fileno()``) are accepted when encoding."""

    def __init__(self, size: int, what: str = "value") -> None:
        self.size = size
        self.what = what

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if len(data) != self.size:
                raise CodecError(f"{self.what} must be {self.size} bytes, got {len(data)}")
            return data
        if hasattr(value, "fileno") and not isinstance(value, int):
            value = value.fileno()
        if isinstance(value, int):
            if self.size not in (1, 2, 4, 8):
                raise CodecError(f"{self.what} is {self.size} bytes: give bytes, not an int")
            try:
                return value.to_bytes(self.size, sys.byteorder, signed=value < 0)
            except OverflowError:
                raise CodecError(f"{self.what} {value} does not fit in {self.size} bytes") from None
        raise CodecError(f"{self.what} must be bytes or int, got {type(value).__name__}")

    def decode(self, data: bytes) -> bytes:
        return bytes(data)


class IntCodec:
    """A native-endian integer of `size` bytes."""

    def __init__(self, size: int, signed: bool = False, what: str = "value") -> None:
        if size not in (1, 2, 4, 8):
            raise CodecError(f"{what} is {size} bytes: an int type needs 1, 2, 4 or 8")
        self.size = size
        self.signed = signed
        self.what = what

    def encode(self, value: Any) -> bytes:
        if hasattr(value, "fileno") and not isinstance(value, int):
            value = value.fileno()
        if not isinstance(value, int):
            raise CodecError(f"{self.what} must be an int, got {type(value).__name__}")
        try:
            return value.to_bytes(self.size, sys.byteorder, signed=self.signed or value < 0)
        except OverflowError:
            raise CodecError(f"{self.what} {value} does not fit in {self.size} bytes") from None

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data, sys.byteorder, signed=self.signed)


class StructCodec:
    """A `struct` format; one field is a scalar, more are a tuple."""

    def __init__(self, fmt: str, what: str = "value") -> None:
        try:
            self._struct = struct.Struct(fmt)
        except struct.error as e:
            raise CodecError(f"{what} format {fmt!r} is not a struct format: {e}") from None
        self.fmt = fmt
        self.size = self._struct.size
        self.what = what
        zero = self._struct.unpack(bytes(self.size))
        self._scalar = len(zero) == 1
        self._bytes_field = self._scalar and isinstance(zero[0], bytes)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)) and not self._bytes_field:
            return RawCodec(self.size, self.what).encode(value)
        args = (value,) if self._scalar else tuple(value) if isinstance(value, Sequence) else (value,)
        try:
            return self._struct.pack(*args)
        except struct.error as e:
            raise CodecError(f"{self.what} {value!r} does not fit format {self.fmt!r}: {e}") from None

    def decode(self, data: bytes) -> Any:
        fields = self._struct.unpack(data)
        return fields[0] if self._scalar else fields


class CtypesCodec:
    """A ctypes type: Structures and Arrays decode to instances, scalars (``c_uint32``) to their value."""

    def __init__(self, ctype: type[Any], what: str = "value") -> None:
        self.ctype = ctype
        self.size = ctypes.sizeof(ctype)
        self.what = what
        self._simple = issubclass(ctype, ctypes._SimpleCData)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, self.ctype):
            return bytes(value)  # type: ignore[call-overload]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return RawCodec(self.size, self.what).encode(value)
        if self._simple:
            try:
                return bytes(self.ctype(value))
            except TypeError as e:
                raise CodecError(f"{self.what} {value!r} is not a {self.ctype.__name__}: {e}") from None
        raise CodecError(f"{self.what} must be a {self.ctype.__name__} or bytes, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        obj = self.ctype.from_buffer_copy(data)
        return obj.value if self._simple else obj


class PerCpuCodec:
    """One value per possible CPU, each in a slot rounded up to 8 bytes (kernel/bpf/syscall.c,
    bpf_map_value_size). Encodes a sequence of `ncpus` values; decodes to a list."""

    def __init__(self, inner: Codec, value_size: int, ncpus: int, what: str = "value") -> None:
        self.inner = inner
        self.ncpus = ncpus
        self.stride = (value_size + 7) & ~7
        self.size = self.stride * ncpus
        self.what = what
        self._pad = bytes(self.stride - value_size)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, str)) or not isinstance(value, Sequence):
            raise CodecError(f"per-CPU {self.what} must be a list of {self.ncpus} values (one per possible "
                             f"CPU), got {type(value).__name__}")
        if len(value) != self.ncpus:
            raise CodecError(f"per-CPU {self.what} must have {self.ncpus} entries (possible CPUs), "
                             f"got {len(value)}")
        return b"".join(self.inner.encode(v) + self._pad for v in value)

    def decode(self, data: bytes) -> list[Any]:
        n = self.inner.size
        return [self.inner.decode(data[i:i + n]) for i in range(0, self.size, self.stride)]


def make_codec(spec: TypeSpec, size: int, what: str = "value") -> Codec:
    """The codec for a declared key/value type `spec` of a map whose key/value is `size` bytes."""
    codec: Codec
    if spec is None:
        codec = RawCodec(size, what)
    elif isinstance(spec, str):
        codec = StructCodec(spec, what)
    elif spec is int:
        codec = IntCodec(size, False, what)
    elif isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union, ctypes.Array,
                                                       ctypes._SimpleCData)):
        codec = CtypesCodec(spec, what)
    elif isinstance(spec, Codec):
        codec = spec
    else:
        raise CodecError(f"cannot use {spec!r} as a {what} type: give None (bytes), a struct format, int, "
                         "a ctypes type or a codec")
    if codec.size != size:
        raise CodecError(f"{what} type {spec!r} is {codec.size} bytes but the {what} is {size} bytes")
    return codec
