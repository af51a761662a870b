"""`bpfkit map ...`: maps, in bpftool's shape.

    bpfkit map list [-j|-p]
    bpfkit map show [id N | pinned PATH | name NAME]
    bpfkit map dump MAP
    bpfkit map lookup MAP key [hex] BYTES...
    bpfkit map update MAP key [hex] BYTES... value [hex] BYTES... [any|exist|noexist]
    bpfkit map delete MAP key [hex] BYTES...
    bpfkit map create PATH type TYPE key SIZE value SIZE entries N name NAME [flags FLAGS]
    bpfkit map pin MAP PATH
    bpfkit map freeze MAP

MAP is ``id N``, ``pinned PATH`` or ``name NAME``. Bytes are C numbers (``1 0 0 0``, ``0x1f``) or,
after ``hex``, hex pairs. A per-CPU map's value given on the command line is stored on every CPU.
JSON keys and formats are bpftool's (``bytes_key``, keys and values as ``["0x01", ...]``); a map with
BTF also gets bpftool's ``formatted`` key and value (`bpfkit.cli.btf_format`).
"""

from __future__ import annotations

import argparse
import errno as _errno
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from bpfkit.btf import Spec
from bpfkit.cli.btf_format import format_value
from bpfkit.cli.output import (
    UsageError,
    emit_json,
    hex_bytes,
    json_bytes,
    json_parent,
    parse_bytes,
    parse_int,
    split_words,
    table,
    take_ref,
    wants_json,
)
from bpfkit.errors import BpfkitError, KernelError
from bpfkit.kernel import introspect, objects
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.introspect import Kind, MapEntry
from bpfkit.kernel.maps import KEYLESS_TYPES, Map
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, UpdateFlags

_BATCH = 4096
_HEX_JSON = [f'"0x{b:02x}"' for b in range(256)]
_UPDATE_FLAGS = {"any": UpdateFlags.ANY, "exist": UpdateFlags.EXIST, "noexist": UpdateFlags.NOEXIST}


def map_type_name(value: MapType | int) -> str:
    """A map type as bpftool prints it (``percpu_array``), or its number."""
    return value.name.lower() if isinstance(value, MapType) else str(value)


def map_record(entry: MapEntry) -> dict[str, Any]:
    """One map as bpftool's ``map show -j`` has it."""
    i = entry.info
    rec: dict[str, Any] = {"id": i.id, "type": map_type_name(i.type)}
    if i.name:
        rec["name"] = i.name
    rec.update(flags=i.flags, bytes_key=i.key_size, bytes_value=i.value_size, max_entries=i.max_entries,
               bytes_memlock=entry.memlock, frozen=int(entry.frozen))
    if i.btf_id:
        rec["btf_id"] = i.btf_id
    return rec


def open_map(kind: str, value: str) -> Fd:
    """A new fd for the map named by a reference (``id 42``, ``pinned PATH``, ``name counts``)."""
    if kind == "id":
        return introspect.open_id(Kind.MAP, parse_int(value, "map id"))
    if kind == "pinned":
        return objects.get_pinned(value, "map")
    found = [e.info.id for e in introspect.maps_info() if e.info.name == value]
    if len(found) != 1:
        raise UsageError(f"{len(found)} maps are named {value!r}: name one by id" if found
                         else f"no map is named {value!r}")
    return introspect.open_id(Kind.MAP, found[0])


def _map(words: list[str]) -> tuple[Map, list[str]]:
    ref, rest = take_ref(words, "map")
    return Map.from_fd(open_map(*ref)), rest


def _entries(words: list[str]) -> list[MapEntry]:
    if not words:
        return list(introspect.maps_info())
    (kind, value), rest = take_ref(words, "map")
    if rest:
        raise UsageError(f"unexpected words after the map: {' '.join(rest)}")
    if kind == "name":
        found = [e for e in introspect.maps_info() if e.info.name == value]
        if not found:
            raise UsageError(f"no map is named {value!r}")
        return found
    with open_map(kind, value) as fd:
        return [introspect.map_entry(fd)]


def cmd_show(args: argparse.Namespace) -> int:
    entries = _entries(args.words)
    if wants_json(args):
        records = [map_record(e) for e in entries]
        emit_json(args, records if args.verb == "list" or not args.words or len(records) > 1
                  else records[0])
        return 0
    rows: list[list[object]] = []
    for e in entries:
        i = e.info
        rows.append([i.id, map_type_name(i.type), i.name or "-", f"{i.flags:#x}", i.key_size, i.value_size,
                     i.max_entries, e.memlock, "yes" if e.frozen else "no", i.btf_id or "-"])
    sys.stdout.write(table(rows, ["ID", "TYPE", "NAME", "FLAGS", "KEY", "VALUE", "MAX_ENTRIES", "MEMLOCK",
                                  "FROZEN", "BTF_ID"]))
    return 0


# --- dump ---------------------------------------------------------------------------------------------------

def elements(m: Map) -> Iterator[tuple[bytes, Any]]:
    """Every (key, value) of `m` as bytes (per-CPU values: a list of bytes), in batches where the map
    type has batch operations, else key by key. Refuses maps without keys before anything is read."""
    if m.type in KEYLESS_TYPES:
        raise UsageError(f"map {m.name or m.id}: a {map_type_name(m.type)} map has no keys to dump")
    return _elements(m)


def _elements(m: Map) -> Iterator[tuple[bytes, Any]]:
    try:
        yield from m.lookup_batch(_BATCH)
        return
    except KernelError as e:
        if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP, _errno.ENOTSUP, 524):  # 524: ENOTSUPP
            raise
    yield from m.items()


def _json_element(key: bytes, value: Any) -> str:
    k = ",".join(map(_HEX_JSON.__getitem__, key))
    if isinstance(value, list):
        vals = ",".join(f'{{"cpu":{cpu},"value":[{",".join(map(_HEX_JSON.__getitem__, v))}]}}'
                        for cpu, v in enumerate(value))
        return f'{{"key":[{k}],"values":[{vals}]}}'
    return f'{{"key":[{k}],"value":[{",".join(map(_HEX_JSON.__getitem__, value))}]}}'


def element_record(key: bytes, value: Any, fmt: Formatter | None = None) -> dict[str, Any]:
    """One element as bpftool's ``map dump -j`` has it (with ``formatted`` when the map has BTF)."""
    rec: dict[str, Any]
    if isinstance(value, list):
        rec = {"key": json_bytes(key), "values": [{"cpu": c, "value": json_bytes(v)}
                                                   for c, v in enumerate(value)]}
    else:
        rec = {"key": json_bytes(key), "value": json_bytes(value)}
    if fmt is not None:
        rec["formatted"] = fmt.element(key, value)
    return rec


class Formatter:
    """Decodes a map's keys and values with the map's BTF types (bpftool's ``formatted``)."""

    def __init__(self, spec: Spec, key_type_id: int, value_type_id: int) -> None:
        self.spec, self.key_type_id, self.value_type_id = spec, key_type_id, value_type_id

    @classmethod
    def of(cls, m: Map) -> Formatter | None:
        """The formatter of map `m`, or None when it has no BTF value type (or BTF bpfkit cannot read)."""
        info = m.info()
        if not info.btf_id or not info.btf_value_type_id:
            return None
        try:
            spec = Spec(introspect.btf_data(info.btf_id))
            spec.resolve(info.btf_value_type_id)
        except BpfkitError:
            return None
        return cls(spec, info.btf_key_type_id, info.btf_value_type_id)

    def element(self, key: bytes, value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.key_type_id:
            out["key"] = format_value(self.spec, self.key_type_id, key)
        if isinstance(value, list):
            out["values"] = [{"cpu": c, "value": format_value(self.spec, self.value_type_id, v)}
                             for c, v in enumerate(value)]
        else:
            out["value"] = format_value(self.spec, self.value_type_id, value)
        return out


def _text_element(key: bytes, value: Any, out: TextIO, fmt: Formatter | None = None) -> None:
    out.write(_text_lines(key, value, fmt))


def _text_lines(key: bytes, value: Any, fmt: Formatter | None = None) -> str:
    """One element for people: hex bytes, or, for a map with BTF, its decoded key and value."""
    if fmt is not None:
        f = fmt.element(key, value)
        k = json.dumps(f["key"]) if "key" in f else key.hex(" ")
        if "values" in f:
            return f"key: {k}\n" + "".join(f"value (CPU {c['cpu']:02d}): {json.dumps(c['value'])}\n"
                                           for c in f["values"])
        return f"key: {k}  value: {json.dumps(f['value'])}\n"
    if isinstance(value, list):
        cpus = "".join(f"value (CPU {cpu:02d}): {v.hex(' ')}\n" for cpu, v in enumerate(value))
        return f"key:\n{key.hex(' ')}\n{cpus}"
    return f"key: {key.hex(' ')}  value: {value.hex(' ')}\n"


def _chunks(lines: Iterator[str], sep: str = "", size: int = 4096) -> Iterator[str]:
    """`lines` joined by `sep`, `size` at a time: one write per chunk, not per element."""
    buf: list[str] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= size:
            yield sep.join(buf)
            buf.clear()
    if buf:
        yield sep.join(buf)


def cmd_dump(args: argparse.Namespace) -> int:
    m, rest = _map(args.words)
    with m:
        if rest:
            raise UsageError(f"unexpected words after the map: {' '.join(rest)}")
        out = sys.stdout
        fmt = Formatter.of(m)
        if getattr(args, "pretty", False):
            emit_json(args, [element_record(k, v, fmt) for k, v in elements(m)])
        elif wants_json(args):
            items = elements(m)
            out.write("[")
            first = True
            if fmt is not None:
                records = (json.dumps(element_record(k, v, fmt), separators=(",", ":")) for k, v in items)
            else:
                records = (_json_element(k, v) for k, v in items)
            for chunk in _chunks(records, ","):
                out.write(chunk if first else "," + chunk)
                first = False
            out.write("]\n")
        else:
            count = 0

            def lines() -> Iterator[str]:
                nonlocal count
                for k, v in elements(m):
                    count += 1
                    yield _text_lines(k, v, fmt)

            for chunk in _chunks(lines()):
                out.write(chunk)
            out.write(f"Found {count} element{'s' if count != 1 else ''}\n")
    return 0


# --- element commands -------------------------------------------------------------------------------------

def _value_bytes(m: Map, words: list[str]) -> Any:
    data = parse_bytes(words, m.value_size, "value")
    return [data] * m.ncpus if m.is_percpu else data


def cmd_lookup(args: argparse.Namespace) -> int:
    m, rest = _map(args.words)
    with m:
        key = parse_bytes(split_words(rest, ["key"]).get("key", []), m.key_size, "key")
        try:
            value = m.lookup(key)
        except KeyError:
            raise KernelError("bpf(BPF_MAP_LOOKUP_ELEM)", _errno.ENOENT,
                              f"key {hex_bytes(key)} is not in map {m.name or m.id}") from None
        fmt = Formatter.of(m)
    if wants_json(args):
        emit_json(args, element_record(key, value, fmt))
    else:
        _text_element(key, value, sys.stdout, fmt)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    m, rest = _map(args.words)
    with m:
        parts = split_words(rest, ["key", "value", *_UPDATE_FLAGS])
        chosen = [f for f in _UPDATE_FLAGS if f in parts]
        if len(chosen) > 1:
            raise UsageError(f"give at most one of any|exist|noexist, got {' '.join(chosen)}")
        if any(parts[f] for f in chosen):
            raise UsageError("any|exist|noexist come last")
        if "value" not in parts:
            raise UsageError("bpfkit map update MAP key BYTES... value BYTES... [any|exist|noexist]")
        key = parse_bytes(parts.get("key", []), m.key_size, "key")
        m.update(key, _value_bytes(m, parts["value"]), _UPDATE_FLAGS[chosen[0]] if chosen else 0)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    m, rest = _map(args.words)
    with m:
        key = parse_bytes(split_words(rest, ["key"]).get("key", []), m.key_size, "key")
        try:
            m.delete(key)
        except KeyError:
            raise KernelError("bpf(BPF_MAP_DELETE_ELEM)", _errno.ENOENT,
                              f"key {hex_bytes(key)} is not in map {m.name or m.id}") from None
    return 0


# --- create, pin, freeze ----------------------------------------------------------------------------------

def _map_type(word: str) -> MapType:
    try:
        return MapType[word.upper()]
    except KeyError:
        known = ", ".join(t.name.lower() for t in MapType if t != MapType.UNSPEC)
        raise UsageError(f"unknown map type {word!r} (one of: {known})") from None


def cmd_create(args: argparse.Namespace) -> int:
    if not args.words:
        raise UsageError("bpfkit map create PATH type TYPE key SIZE value SIZE entries N name NAME [flags F]")
    path, rest = args.words[0], args.words[1:]
    parts = split_words(rest, ["type", "key", "value", "entries", "name", "flags"])
    for word, vals in parts.items():
        if len(vals) != 1:
            raise UsageError(f"{word} takes one value, got {len(vals)}")
    missing = [w for w in ("type", "key", "value", "entries", "name") if w not in parts]
    if missing:
        raise UsageError(f"bpfkit map create: missing {', '.join(missing)}")
    spec = MapSpec(_map_type(parts["type"][0]), parse_int(parts["key"][0], "key size"),
                   parse_int(parts["value"][0], "value size"), parse_int(parts["entries"][0], "entries"),
                   parse_int(parts.get("flags", ["0"])[0], "flags"), name=parts["name"][0])
    with Map.create(spec) as m:
        m.pin(path)
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    (kind, value), rest = take_ref(args.words, "map")
    if len(rest) != 1:
        raise UsageError("bpfkit map pin (id N | pinned PATH | name NAME) PATH")
    with open_map(kind, value) as fd:
        objects.pin(fd, rest[0])
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    m, rest = _map(args.words)
    with m:
        if rest:
            raise UsageError(f"unexpected words after the map: {' '.join(rest)}")
        m.freeze()
    return 0


_VERBS = {
    "list": (cmd_show, "every map", "[id N | pinned PATH | name NAME]"),
    "show": (cmd_show, "maps (all, or the one named)", "[id N | pinned PATH | name NAME]"),
    "dump": (cmd_dump, "every element of a map", "MAP"),
    "lookup": (cmd_lookup, "the value at a key", "MAP key [hex] BYTES..."),
    "update": (cmd_update, "store a value at a key", "MAP key BYTES... value BYTES... [any|exist|noexist]"),
    "delete": (cmd_delete, "delete a key", "MAP key [hex] BYTES..."),
    "create": (cmd_create, "create a map and pin it",
               "PATH type TYPE key SIZE value SIZE entries N name NAME [flags F]"),
    "pin": (cmd_pin, "pin a map on a bpf file system", "MAP PATH"),
    "freeze": (cmd_freeze, "make a map read-only from user space", "MAP"),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    maps = sub.add_parser("map", help="inspect, dump, update, create and pin maps (like bpftool map)")
    verbs = maps.add_subparsers(dest="verb", metavar="VERB", required=True)
    parent = json_parent()
    for name, (func, text, usage) in _VERBS.items():
        p = verbs.add_parser(name, parents=[parent], help=text)
        p.add_argument("words", nargs="*", help=f"{usage} (MAP: id N | pinned PATH | name NAME)")
        p.set_defaults(func=func)
