"""Map keys and values typed by the object's BTF, for `BPF`'s dict-like maps: integers (through
typedefs, enums included) become ints both ways, anything else decodes to dicts/lists
(`bpfkit.events.decode.btf_decoder`) and encodes from bytes (or a dict of integer fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bpfkit.btf import Composite, EnumBase, Int, Spec
from bpfkit.btf.layout import resolve
from bpfkit.events.decode import btf_decoder
from bpfkit.kernel.codec import CodecError, IntCodec, PerCpuCodec, RawCodec


class BtfCodec:
    """A value of BTF type `type_id`: decodes to Python values, encodes bytes or a dict of its fields
    (integers, and bytes for arrays: what decoding gives back)."""

    def __init__(self, spec: Spec, type_id: int, size: int, what: str) -> None:
        self.size = size
        self.what = what
        self._spec = spec
        self._type_id = type_id
        self._decode = btf_decoder(spec, type_id)
        self._raw = RawCodec(size, what)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, dict):
            return self._encode_dict(value)
        return self._raw.encode(value)

    def _encode_dict(self, value: dict[str, Any]) -> bytes:
        t = resolve(self._spec, self._type_id)
        if not isinstance(t, Composite):
            raise CodecError(f"{self.what}: a dict needs a struct type")
        out = bytearray(self.size)
        members = {m.name: m for m in t.members}
        for name, v in value.items():
            m = members.get(name)
            if m is None:
                raise CodecError(f"{self.what}: no field {name!r}")
            mt = resolve(self._spec, m.type_id)
            off = m.bit_offset // 8
            if isinstance(v, (bytes, bytearray)) and not m.bit_offset % 8:
                size = self._spec.sizeof(mt)
                if len(v) > size:
                    raise CodecError(f"{self.what}: field {name!r} holds {size} bytes, got {len(v)}")
                out[off:off + len(v)] = v
                continue
            if not isinstance(mt, (Int, EnumBase)) or m.bit_offset % 8 or not isinstance(v, int):
                raise CodecError(f"{self.what}: field {name!r} can only be set from bytes")
            size = mt.size
            out[off:off + size] = v.to_bytes(size, "little", signed=v < 0)
        return bytes(out)

    def decode(self, data: bytes) -> Any:
        return self._decode(data)


def codec_for(spec: Spec | None, type_id: int, size: int, what: str) -> Any:
    """The codec for a key or value of BTF type `type_id` (raw bytes without BTF)."""
    if spec is None or not type_id:
        return IntCodec(size, False, what) if size in (1, 2, 4, 8) else RawCodec(size, what)
    t = resolve(spec, type_id)
    if isinstance(t, (Int, EnumBase)) and t.size == size and size in (1, 2, 4, 8):
        signed = bool(int(t.encoding) & 1) if isinstance(t, Int) else bool(getattr(t, "signed", False))
        return IntCodec(size, signed, what)
    return BtfCodec(spec, type_id, size, what)


def apply_btf_codecs(m: Any, spec: Spec | None, mspec: Any) -> None:
    """Give map `m` key and value codecs from its BTF types in `spec` (described by `mspec`)."""
    if mspec is None or m.key_size == 0:
        return
    label = f"map {m.name!r}"
    m.key_codec = codec_for(spec, mspec.btf_key_type_id, m.key_size, f"{label} key")
    inner = codec_for(spec, mspec.btf_value_type_id, m.value_size, f"{label} value")
    # Same sizes as the raw codecs they replace, so the map's buffers stay right.
    m.value_codec = PerCpuCodec(inner, m.value_size, m.ncpus, f"{label} value") if m.is_percpu else inner


def decoder_for(spec: Spec | None, type_name: str) -> Callable[[Any], Any]:
    """Decode records as BTF type `type_name` (``struct event`` or ``event``) of `spec`."""
    if spec is None:
        raise CodecError("the object has no BTF: compile with -g to decode events by type")
    name = type_name.split()[-1]
    if not spec.find_ids(name):
        raise CodecError(f"no type {type_name!r} in the object's BTF: BTF records the types of globals and "
                         f"function signatures only; use it in one (e.g. `{type_name} *__keep_type;`)")
    return btf_decoder(spec, name)


__all__ = ["BtfCodec", "apply_btf_codecs", "codec_for", "decoder_for"]
