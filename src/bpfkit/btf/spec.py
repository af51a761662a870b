"""Lazy BTF reader: `load_btf` indexes a blob in one pass, `Spec` decodes types on demand.

Loading does a single walk over the type section that records where each type starts (a 32-bit word
position per type); nothing else is decoded. `Spec.type_by_id` then decodes exactly one record, and
`Spec.find` looks names up by searching the string section and a packed array of name offsets in C
(bytes.find), so finding `task_struct` in vmlinux touches one record. Blobs of either byte order load;
split BTF (kernel modules) continues the type ids and string offsets of its base spec.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from bpfkit.errors import BtfError
from bpfkit.uapi.btf import (
    BTF_MAGIC,
    BTF_MAX_NAME_OFFSET,
    BTF_MAX_TYPE,
    BTF_VERSION,
    HEADER_FORMAT,
    HEADER_SIZE,
    KIND_EXTRA_WORDS,
    Kind,
)

from .decode import decode_type
from .types import Param, Type, Void

if TYPE_CHECKING:
    from .layout import MemberRef

__all__ = ["Spec", "load_btf"]

T = TypeVar("T", bound=Type)

_NATIVE = sys.byteorder
_BAD_STEP = 1 << 30  # walk step for unknown kinds (past any type section): the slow path then explains
# Indexed by info >> 24 (kind and kind_flag): record length in words = base + vlen * mult.
_STEP_BASE = [_BAD_STEP] * 256
_STEP_MULT = [0] * 256
for _kind, (_fixed, _per) in KIND_EXTRA_WORDS.items():
    for _high in (0, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0):  # kind_flag and the unused bits 29-30
        _STEP_BASE[_kind | _high] = 3 + _fixed
        _STEP_MULT[_kind | _high] = _per
del _kind, _fixed, _per, _high

_FIND_SCANS_BEFORE_INDEX = 32  # distinct names looked up by scanning before building a full name index
_INNER_SCANS_BEFORE_SET = 8  # in-string candidates searched one by one before building a set of name offsets

if array("I").itemsize != 4:  # pragma: no cover - every CPython platform bpfkit targets has 32-bit I
    raise ImportError("bpfkit.btf needs array('I') to be 32 bits wide")


def _kinds_of(kind: Kind | type[Type]) -> frozenset[int]:
    """The BTF kinds a `find` filter accepts: a `Kind`, or a type class and its subclasses
    (`Composite` means struct or union, `EnumBase` enum or enum64)."""
    if isinstance(kind, int):
        return frozenset((int(kind),))
    found: set[int] = set()
    todo: list[type[Type]] = [kind]
    while todo:
        cls = todo.pop()
        if cls.kind:
            found.add(int(cls.kind))
        todo.extend(cls.__subclasses__())
    return frozenset(found)


class Spec:
    """Types and strings of one BTF blob (plus its `base`, for split BTF).

    Type ids run from `first_id` to `type_count - 1`; lower ids (and 0, `void`) belong to the base.
    Decoded types are cached; every decode checks its references and names and raises `BtfError` with
    the byte offset in the blob on malformed input.
    """

    __slots__ = (
        "_cache",
        "_data",
        "_find_cache",
        "_name_index",
        "_nameoff_set",
        "_nameoffs",
        "_nameoffs_array",
        "_names",
        "_offs",
        "_params",
        "_scans",
        "_str_start",
        "_strs",
        "_type_start",
        "_words",
        "base",
        "byteorder",
        "first_id",
        "header_len",
        "str_base",
        "str_end",
        "type_count",
    )

    def __init__(self, data: bytes, base: Spec | None = None) -> None:
        """Index `data` (a whole BTF blob); prefer `load_btf`."""
        self._data = data
        self.base = base
        self.type_count: int
        self.str_end: int
        self.first_id: int = base.type_count if base is not None else 1
        self.str_base: int = base.str_end if base is not None else 0
        self._cache: dict[int, Type] = {}
        self._find_cache: dict[str, list[int]] = {}
        self._name_index: dict[bytes, list[int]] | None = None
        self._nameoffs: bytes | None = None
        self._names: dict[int, str] = {0: ""}
        self._params: dict[int, Param] = {}
        self._nameoff_set: frozenset[int] | None = None
        self._scans = 0
        self._parse_header()
        self._walk()

    # ---------------------------------------------------------------- parsing

    def _parse_header(self) -> None:
        data = self._data
        if len(data) < HEADER_SIZE:
            raise BtfError(f"truncated header: {len(data)} bytes, a BTF header needs {HEADER_SIZE}", 0)
        if data[0] == 0x9F and data[1] == 0xEB:
            order = "little"
        elif data[0] == 0xEB and data[1] == 0x9F:
            order = "big"
        else:
            raise BtfError(f"bad magic 0x{data[0]:02x}{data[1]:02x}, expected 0x{BTF_MAGIC:04x}", 0)
        self.byteorder = order
        fmt = ("<" if order == "little" else ">") + HEADER_FORMAT
        _magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(fmt, data)
        if version != BTF_VERSION:
            raise BtfError(f"unsupported BTF version {version}, expected {BTF_VERSION}", 2)
        if flags:
            raise BtfError(f"unsupported header flags 0x{flags:x}", 3)
        if hdr_len < HEADER_SIZE or hdr_len > len(data):
            raise BtfError(f"header length {hdr_len} out of range {HEADER_SIZE}..{len(data)}", 4)
        if any(data[HEADER_SIZE:hdr_len]):
            raise BtfError("unknown non-zero fields in the header tail", HEADER_SIZE)
        self.header_len = hdr_len
        size = len(data) - hdr_len
        if type_off % 4 or type_len % 4:
            raise BtfError(f"type section (off {type_off}, len {type_len}) is not 4-byte aligned", 8)
        if type_off + type_len > size:
            raise BtfError(f"type section (off {type_off}, len {type_len}) overruns the {size} data bytes", 8)
        if str_off + str_len > size:
            raise BtfError(f"string section (off {str_off}, len {str_len}) overruns the {size} data bytes",
                           16)
        if type_len and str_len and type_off < str_off + str_len and str_off < type_off + type_len:
            raise BtfError("type and string sections overlap", 8)
        self._str_start = hdr_len + str_off
        self._strs = bytes(data[self._str_start : self._str_start + str_len])
        if self.base is None and (not str_len or self._strs[0] != 0):
            raise BtfError("string section must start with the empty string", self._str_start)
        if str_len and self._strs[-1] != 0:
            raise BtfError("string section is not NUL-terminated", self._str_start + str_len - 1)
        self.str_end = self.str_base + str_len
        if self.str_end - 1 > BTF_MAX_NAME_OFFSET:
            raise BtfError(f"string section of {str_len} bytes exceeds the BTF maximum", 20)
        self._type_start = hdr_len + type_off
        section = memoryview(data)[self._type_start : self._type_start + type_len]
        if order == _NATIVE:
            self._words: Any = section.cast("I")
        else:
            words = array("I")
            words.frombytes(section)
            words.byteswap()
            self._words = words

    def _walk(self) -> None:
        """The one pass at load: record each type's word position."""
        w = self._words
        n = len(w)
        offs = array("I")
        app = offs.append
        names = array("I")
        name_app = names.append
        base_steps = _STEP_BASE
        mult_steps = _STEP_MULT
        pos = 0
        try:
            # No `pos < n` test: reading w[n] ends the loop (IndexError), which is cheaper per type.
            while True:
                name_app(w[pos])
                app(pos)
                info = w[pos + 1]
                kind = info >> 24
                pos += base_steps[kind] + (info & 0xFFFF) * mult_steps[kind]
        except IndexError:
            pass
        if pos != n:
            self._explain_walk()
        self._offs = offs
        self._nameoffs_array = names
        self.type_count = self.first_id + len(offs)
        if self.type_count - 1 > BTF_MAX_TYPE:
            raise BtfError(f"{self.type_count - 1} types exceed the BTF maximum of {BTF_MAX_TYPE}", 12)

    def _explain_walk(self) -> None:
        """Slow path after a failed walk: find the bad record and say what is wrong with it."""
        w = self._words
        n = len(w)
        pos = 0
        tid = self.first_id
        while pos < n:
            where = self._type_start + pos * 4
            if pos + 3 > n:
                raise BtfError(f"type [{tid}]: truncated record header ({(n - pos) * 4} of 12 bytes)", where)
            info = w[pos + 1]
            kind = info >> 24 & 31
            if kind == 0 or kind > max(KIND_EXTRA_WORDS):
                raise BtfError(f"type [{tid}]: unknown kind {kind}", where + 4)
            step = _STEP_BASE[info >> 24] + (info & 0xFFFF) * _STEP_MULT[info >> 24]
            if pos + step > n:
                raise BtfError(
                    f"type [{tid}] {Kind(kind).name}: vlen {info & 0xFFFF} needs {step * 4} bytes, "
                    f"only {(n - pos) * 4} left in the type section",
                    where,
                )
            pos += step
            tid += 1
        raise BtfError("type section walk failed", self._type_start)  # pragma: no cover

    # ---------------------------------------------------------------- basics

    @property
    def data(self) -> bytes:
        """The blob this spec was loaded from."""
        return bytes(self._data)

    @property
    def raw_strings(self) -> bytes:
        """This blob's own string section (offsets in it start at `str_base`)."""
        return self._strs

    def __len__(self) -> int:
        """Number of types in this blob (not counting void or base types)."""
        return len(self._offs)

    def __repr__(self) -> str:
        split = f", base with {self.first_id - 1} types" if self.base is not None else ""
        return f"<btf.Spec {len(self._offs)} types, {self.byteorder}-endian{split}>"

    def string(self, offset: int) -> str:
        """The NUL-terminated string at `offset` (base strings first, for split BTF)."""
        if offset < self.str_base:
            assert self.base is not None
            return self.base.string(offset)
        local = offset - self.str_base
        strs = self._strs
        if local >= len(strs):
            raise BtfError(f"string offset {offset} out of range (string section ends at {self.str_end})")
        end = strs.index(0, local)  # the section is NUL-terminated, checked at load
        return strs[local:end].decode("utf-8", "surrogateescape")

    def _name(self, offset: int, word: int) -> str:
        """Name at string `offset` for the field at word `word` of the type section (cached)."""
        local = offset - self.str_base
        strs = self._strs
        if 0 <= local < len(strs):  # the common case, inlined from string()
            name = strs[local : strs.index(0, local)].decode("utf-8", "surrogateescape")
        else:
            try:
                name = self.string(offset)
            except BtfError as e:
                raise BtfError(e.message, self._type_start + word * 4) from None
        self._names[offset] = name
        return name

    def kind_of(self, type_id: int) -> Kind:
        """The kind of `type_id` without decoding it."""
        if type_id < self.first_id:
            if type_id == 0:
                return Kind.UNKN
            if self.base is None:
                raise BtfError(f"no type id {type_id}")
            return self.base.kind_of(type_id)
        pos = self._pos(type_id)
        return Kind(self._words[pos + 1] >> 24 & 31)

    def _pos(self, type_id: int) -> int:
        j = type_id - self.first_id
        if j < 0 or j >= len(self._offs):
            raise BtfError(f"no type id {type_id} (ids run to {self.type_count - 1})")
        return int(self._offs[j])

    # ---------------------------------------------------------------- decoding

    def type_by_id(self, type_id: int) -> Type:
        """Decode (once) and return type `type_id`; 0 is `Void`."""
        t = self._cache.get(type_id)
        if t is not None:
            return t
        if type_id < self.first_id:
            if type_id == 0:
                t = Void(id=0, spec=self)
            elif self.base is not None and type_id > 0:
                return self.base.type_by_id(type_id)
            else:
                raise BtfError(f"no type id {type_id}")
        else:
            t = decode_type(self, type_id, self._pos(type_id))
        self._cache[type_id] = t
        return t

    __getitem__ = type_by_id

    def types(self) -> Iterator[Type]:
        """Decode and yield this blob's own types in id order (base types are not repeated)."""
        cache = self._cache
        tid = self.first_id
        for pos in self._offs:  # type_by_id without its range checks, for bulk decoding
            t = cache.get(tid)
            if t is None:
                t = cache[tid] = decode_type(self, tid, pos)
            yield t
            tid += 1

    def __iter__(self) -> Iterator[Type]:
        """This blob's own types, as `types()`."""
        return self.types()

    def all_types(self) -> list[Type]:
        """All of this blob's own types, decoded (and so validated)."""
        return list(self.types())

    def validate(self) -> None:
        """Decode every type, raising `BtfError` on the first malformed one."""
        for _ in self.types():
            pass

    # ---------------------------------------------------------------- names

    def _string_offsets(self, raw: bytes) -> tuple[list[int], list[int]]:
        """Offsets of the strings equal to `raw`: those starting a string, and those inside a longer
        string (a tail-merging producer could point a name there), base strings included."""
        starts, inner = self.base._string_offsets(raw) if self.base is not None else ([], [])
        strs = self._strs
        tail = raw + b"\0"
        p = strs.find(tail)
        while p != -1:
            if p == 0:
                if self.base is not None:  # a split string section need not start with ""
                    starts.append(self.str_base)
            elif strs[p - 1] == 0:
                starts.append(self.str_base + p)
            else:
                inner.append(self.str_base + p)
            p = strs.find(tail, p + 1)
        return starts, inner

    def _name_offsets_blob(self) -> bytes:
        if self._nameoffs is None:
            self._nameoffs = self._nameoffs_array.tobytes()
        return self._nameoffs

    def _build_name_index(self) -> dict[bytes, list[int]]:
        """Map every type name to its ids (own types only), decoding all names at once."""
        strs = self._strs
        nameoffs = self._nameoffs_array
        index: dict[bytes, list[int]] = {}
        base = self.str_base
        tid = self.first_id
        for off in nameoffs:
            if off:
                local = off - base
                if local >= 0:
                    name = strs[local : strs.find(0, local)]
                else:
                    assert self.base is not None
                    name = self.base.string(off).encode("utf-8", "surrogateescape")
                lst = index.get(name)
                if lst is None:
                    index[name] = [tid]
                else:
                    lst.append(tid)
            tid += 1
        return index

    def _own_ids_named(self, name: str) -> list[int]:
        if self._name_index is not None:
            return self._name_index.get(name.encode("utf-8", "surrogateescape"), [])
        cached = self._find_cache.get(name)
        if cached is not None:
            return cached
        self._scans += 1
        if self._scans > _FIND_SCANS_BEFORE_INDEX:
            self._name_index = self._build_name_index()
            self._find_cache.clear()
            return self._own_ids_named(name)
        raw = name.encode("utf-8", "surrogateescape")
        ids: list[int] = []
        blob = self._name_offsets_blob()
        offsets, inner = self._string_offsets(raw)
        if inner:  # a name could point into a longer string; check whether any type's does
            if self._nameoff_set is None and len(inner) <= _INNER_SCANS_BEFORE_SET:
                offsets += inner  # a few blob scans cost less than a set of every name offset
            else:
                if self._nameoff_set is None:
                    self._nameoff_set = frozenset(self._nameoffs_array)
                offsets += [off for off in inner if off in self._nameoff_set]
        for off in offsets:
            pat = off.to_bytes(4, _NATIVE)
            p = blob.find(pat)
            while p != -1:
                if not p & 3:
                    ids.append(self.first_id + (p >> 2))
                p = blob.find(pat, p + 1)
        ids.sort()
        self._find_cache[name] = ids
        return ids

    def find_ids(self, name: str, kind: Kind | type[Type] | None = None) -> list[int]:
        """Ids of every type called `name` (of `kind`, a `Kind` or a type class), base types first."""
        if not name:
            return []
        ids = self.base.find_ids(name, kind) if self.base is not None else []
        own = self._own_ids_named(name)
        if kind is None:
            return ids + own
        want = _kinds_of(kind)
        w = self._words
        offs = self._offs
        first = self.first_id
        ids.extend(i for i in own if w[offs[i - first] + 1] >> 24 & 31 in want)
        return ids

    @overload
    def find_all(self, name: str, kind: type[T]) -> list[T]: ...
    @overload
    def find_all(self, name: str, kind: Kind | None = None) -> list[Type]: ...
    def find_all(self, name: str, kind: Kind | type[Type] | None = None) -> list[Any]:
        """Every type called `name`, optionally only of `kind`."""
        return [self.type_by_id(i) for i in self.find_ids(name, kind)]

    @overload
    def find(self, name: str, kind: type[T]) -> T: ...
    @overload
    def find(self, name: str, kind: Kind | None = None) -> Type: ...
    def find(self, name: str, kind: Kind | type[Type] | None = None) -> Any:
        """The first (lowest id) type called `name` of `kind`; `BtfError` if there is none.

        Cost without a full index: one search of the string section and of a packed name-offset array
        (both in C), then one record decode. After many distinct lookups a full name index is built.
        """
        ids = self.find_ids(name, kind)
        if not ids:
            what = ""
            if kind is not None:
                what = " of kind " + "/".join(sorted(Kind(k).name for k in _kinds_of(kind)))
            raise BtfError(f"no type named {name!r}{what}")
        return self.type_by_id(ids[0])

    def build_name_index(self) -> None:
        """Index all names now (about as costly as 30 scans); later lookups are dict hits."""
        if self._name_index is None:
            self._name_index = self._build_name_index()
        if self.base is not None:
            self.base.build_name_index()

    # ---------------------------------------------------------------- layout (see layout.py)

    def resolve(self, t: int | Type) -> Type:
        """`t` with typedefs, const, volatile, restrict and type tags skipped."""
        from .layout import resolve

        return resolve(self, t)

    def sizeof(self, t: int | Type) -> int:
        """Size in bytes of `t`, as the C compiler computes it."""
        from .layout import sizeof

        return sizeof(self, t)

    def alignof(self, t: int | Type) -> int:
        """Alignment in bytes of `t`, as the C compiler computes it (packed structs give 1)."""
        from .layout import alignof

        return alignof(self, t)

    def member(self, t: int | Type, path: str) -> MemberRef:
        """Member `path` ("a.b.c") of struct/union `t`, looking through anonymous members."""
        from .layout import member

        return member(self, t, path)

    def type_str(self, t: int | Type, name: str = "") -> str:
        """`t` as a C declaration of `name` (or an abstract declarator when `name` is empty)."""
        from .format import type_str

        return type_str(self.type_by_id(t) if isinstance(t, int) else t, name, spec=self)

    def describe(self, t: int | Type) -> str:
        """A multi-line layout of `t`: members with byte offsets, sizes and bitfields."""
        from .format import describe

        return describe(self, t)


def load_btf(
    source: bytes | bytearray | memoryview | str | os.PathLike[str], base: Spec | None = None
) -> Spec:
    """Load a raw BTF blob (bytes, or a path such as `/sys/kernel/btf/vmlinux`) into a lazy `Spec`.

    `base` is the spec a split blob (a module's BTF) builds on. Raises `BtfError` on malformed input.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BtfError(f"cannot read {path}: {e.strerror}", where=path) from e
        try:
            return Spec(data, base)
        except BtfError as e:
            where = f"{path}: offset {e.offset}" if e.offset is not None else path
            raise BtfError(e.message, e.offset, where=where) from None
    data = source if isinstance(source, bytes) else bytes(source)
    return Spec(data, base)
