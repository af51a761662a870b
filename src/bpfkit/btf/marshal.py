"""Writing BTF: `BtfBuilder` adds types (returning their ids) and `marshal()`s a valid blob.

Strings are deduplicated; a split builder (with a `base` spec) reuses the base's strings and numbers
its types after the base's, as libbpf and the kernel expect of module BTF. Seeding the builder with an
existing string section (`strings=`) keeps every existing offset, so re-marshalling a loaded spec's
types reproduces its bytes exactly.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from typing import Literal

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import (
    BTF_MAGIC,
    BTF_MAX_NAME_OFFSET,
    BTF_MAX_TYPE,
    BTF_MAX_VLEN,
    BTF_VERSION,
    HEADER_FORMAT,
    HEADER_SIZE,
    Kind,
    btf_info,
)

from .spec import Spec
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
    Ptr,
    Type,
    TypeTag,
    Var,
    Void,
)

__all__ = ["BtfBuilder", "marshal"]

ByteOrder = Literal["little", "big"]
_U32 = 0xFFFF_FFFF


def _split_strings(section: bytes, first_offset: int) -> dict[str, int]:
    """Map each string of a string section to its first offset."""
    table: dict[str, int] = {}
    off = first_offset
    for raw in section.split(b"\0")[:-1]:
        s = raw.decode("utf-8", "surrogateescape")
        table.setdefault(s, off)
        off += len(raw) + 1
    return table


class BtfBuilder:
    """Collects types and strings and encodes them as a BTF blob.

    `add(t)` encodes `t` at once and returns its id; references (`type_id` fields) may point at ids
    not added yet, and are checked by `marshal()`.
    """

    def __init__(self, base: Spec | None = None, *, strings: bytes | None = None) -> None:
        self.base = base
        self.first_id = base.type_count if base is not None else 1
        self._str_base = base.str_end if base is not None else 0
        self._base_strings: dict[str, int] | None = None
        self._words: array[int] = array("I")
        self._refs: list[tuple[int, int]] = []  # (referenced id, id of the referring type)
        self._count = 0
        if strings is not None:
            if base is None and not strings.startswith(b"\0"):
                raise BtfError("a seed string section must start with the empty string", 0)
            if strings and not strings.endswith(b"\0"):
                raise BtfError("a seed string section must end with a NUL", len(strings) - 1)
            self._strtab = bytearray(strings)
            self._strings = _split_strings(bytes(strings), self._str_base)
        else:
            self._strtab = bytearray(b"" if base is not None else b"\0")
            self._strings = {} if base is not None else {"": 0}
        self._strings[""] = 0  # nameless types always use offset 0, even where a seed repeats ""

    @property
    def type_count(self) -> int:
        """The next id `add` will hand out (ids below it are taken, base ones included)."""
        return self.first_id + self._count

    def _base_offset(self, s: str) -> int | None:
        if self.base is None:
            return None
        if self._base_strings is None:
            chain: list[Spec] = []
            spec: Spec | None = self.base
            while spec is not None:
                chain.append(spec)
                spec = spec.base
            table: dict[str, int] = {}
            for sp in chain:  # nearest first: a string in several bases keeps the deepest (lowest) offset
                for k, v in _split_strings(sp.raw_strings, sp.str_base).items():
                    table[k] = v
            self._base_strings = table
        return self._base_strings.get(s)

    def add_string(self, s: str) -> int:
        """Offset of `s` in the string section, adding it if new."""
        off = self._strings.get(s)
        if off is not None:
            return off
        base_off = self._base_offset(s)
        if base_off is not None:
            self._strings[s] = base_off
            return base_off
        if "\0" in s:
            raise BtfError(f"string {s!r} contains a NUL")
        off = self._str_base + len(self._strtab)
        if off > BTF_MAX_NAME_OFFSET:
            raise BtfError(f"string section exceeds the BTF maximum offset {BTF_MAX_NAME_OFFSET}")
        self._strtab += s.encode("utf-8", "surrogateescape") + b"\0"
        self._strings[s] = off
        return off

    def _ref(self, type_id: int) -> int:
        if not 0 <= type_id <= BTF_MAX_TYPE:
            raise BtfError(f"type id {type_id} out of range")
        self._refs.append((type_id, self.type_count))
        return type_id

    def add(self, t: Type) -> int:
        """Encode `t` as the next type and return its id."""
        if isinstance(t, Void):
            raise BtfError("void (type id 0) is implicit and cannot be added")
        tid = self.type_count
        if tid > BTF_MAX_TYPE:
            raise BtfError(f"more than {BTF_MAX_TYPE} types")
        w = self._words
        name = self.add_string(getattr(t, "name", ""))
        kind = t.kind
        if isinstance(t, Int):
            if not (0 <= t.offset <= 0xFF and 0 <= t.bits <= 0xFF and 0 <= t.encoding <= 0xF):
                raise BtfError(f"INT {t.name!r}: offset/bits/encoding out of range")
            w.extend((name, btf_info(kind), t.size, t.encoding << 24 | t.offset << 16 | t.bits))
        elif isinstance(t, Composite):
            kflag = any(m.bitfield_size for m in t.members)
            self._check_vlen(t, len(t.members))
            w.extend((name, btf_info(kind, len(t.members), kflag), t.size))
            for m in t.members:
                if kflag:
                    if not (0 <= m.bit_offset <= 0xFFFFFF and 0 <= m.bitfield_size <= 0xFF):
                        raise BtfError(f"{kind.name} {t.name!r}: member {m.name!r} offset/bitfield too large")
                    off = m.bitfield_size << 24 | m.bit_offset
                else:
                    off = m.bit_offset
                w.extend((self.add_string(m.name), self._ref(m.type_id), off))
        elif isinstance(t, EnumBase):
            self._check_vlen(t, len(t.values))
            w.extend((name, btf_info(kind, len(t.values), t.signed), t.size))
            bits = 64 if kind == Kind.ENUM64 else 32
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.signed else (0, (1 << bits) - 1)
            for v in t.values:
                if not lo <= v.value <= hi:
                    raise BtfError(f"{kind.name} {t.name!r}: value {v.name}={v.value} out of range")
                raw = v.value & ((1 << bits) - 1)
                if bits == 32:
                    w.extend((self.add_string(v.name), raw))
                else:
                    w.extend((self.add_string(v.name), raw & _U32, raw >> 32))
        elif isinstance(t, Array):
            w.extend((name, btf_info(kind), 0, self._ref(t.type_id), self._ref(t.index_type_id), t.nelems))
        elif isinstance(t, Fwd):
            w.extend((name, btf_info(kind, 0, t.union), 0))
        elif isinstance(t, Func):
            w.extend((name, btf_info(kind, int(t.linkage)), self._ref(t.type_id)))
        elif isinstance(t, FuncProto):
            n = len(t.params) + t.variadic
            self._check_vlen(t, n)
            w.extend((name, btf_info(kind, n), self._ref(t.return_type_id)))
            for p in t.params:
                w.extend((self.add_string(p.name), self._ref(p.type_id)))
            if t.variadic:
                w.extend((0, 0))
        elif isinstance(t, Var):
            w.extend((name, btf_info(kind), self._ref(t.type_id), int(t.linkage)))
        elif isinstance(t, Datasec):
            self._check_vlen(t, len(t.vars))
            w.extend((name, btf_info(kind, len(t.vars)), t.size))
            for info in t.vars:
                w.extend((self._ref(info.type_id), info.offset, info.size))
        elif isinstance(t, Float):
            w.extend((name, btf_info(kind), t.size))
        elif isinstance(t, DeclTag):
            w.extend((name, btf_info(kind, 0, t.attribute), self._ref(t.type_id), t.component_idx & _U32))
        elif isinstance(t, TypeTag):
            w.extend((name, btf_info(kind, 0, t.attribute), self._ref(t.type_id)))
        elif isinstance(t, Ptr) or kind in (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT):
            w.extend((name, btf_info(kind), self._ref(t.type_id)))  # type: ignore[attr-defined]
        else:
            raise BtfError(f"cannot encode {type(t).__name__}")
        self._count += 1
        return tid

    def _check_vlen(self, t: Type, n: int) -> None:
        if n > BTF_MAX_VLEN:
            raise BtfError(f"{t.kind.name} {getattr(t, 'name', '')!r}: {n} items exceed vlen {BTF_MAX_VLEN}")

    def add_all(self, types: Iterable[Type]) -> list[int]:
        """Add each type in order; returns their ids."""
        return [self.add(t) for t in types]

    def marshal(self, byteorder: ByteOrder = "little") -> bytes:
        """The blob: header, type section, string section. `BtfError` if a reference is dangling."""
        count = self.type_count
        for ref, owner in self._refs:
            if ref >= count:
                raise BtfError(f"type [{owner}] refers to type id {ref}, but the last id is {count - 1}")
        words = array("I", self._words)
        if byteorder != sys.byteorder:
            words.byteswap()
        types = words.tobytes()
        prefix = "<" if byteorder == "little" else ">"
        header = struct.pack(
            prefix + HEADER_FORMAT,
            BTF_MAGIC, BTF_VERSION, 0, HEADER_SIZE, 0, len(types), len(types), len(self._strtab),
        )
        return header + types + bytes(self._strtab)


def marshal(
    types: Iterable[Type],
    *,
    base: Spec | None = None,
    byteorder: ByteOrder = "little",
    strings: bytes | None = None,
) -> bytes:
    """Encode `types` (ids from `base.type_count`, or 1) as one blob; see `BtfBuilder`."""
    b = BtfBuilder(base, strings=strings)
    b.add_all(types)
    return b.marshal(byteorder)
