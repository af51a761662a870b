"""Map definitions of an object: BTF-defined maps (`.maps`) and legacy `struct bpf_map_def` (`maps`).

A BTF-defined map is a global variable in `.maps` whose struct type encodes the map, libbpf's way:
`__uint(name, N)` is a member `int (*name)[N]` (the value is the array length; an enum with one
enumerator is accepted too), `__type(key, T)` is a member `T *key`, and `__array(values, S)` is a
trailing zero-length array of pointers to an inner map definition `S` (map of maps) or to a function
prototype (program array), whose initial values are relocations in `.rel.maps`.
"""

from __future__ import annotations

import struct

from bpfkit._records import record, replace
from bpfkit.btf import Array, Datasec, EnumBase, FuncProto, Member, Ptr, Spec, Struct, Var, VarLinkage
from bpfkit.elf.file import ElfFile, RelocType, Section, SymbolType
from bpfkit.errors import BtfError, ElfError
from bpfkit.uapi.enums import MapType

from .externs import _skip_mods
from .spec import MapSpec, PinType

BTF_MAPS_SEC = ".maps"
LEGACY_MAPS_SEC = "maps"
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_INT_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size", "pinning",
               "map_extra")


@record
class MapDef:
    """A parsed map definition and where it sits: `offset`/`size` in its ELF section."""

    spec: MapSpec
    section: int
    offset: int
    size: int


class _Fields:
    """The members of one map definition struct, read the libbpf way."""

    def __init__(self, elf: ElfFile, btf: Spec, name: str) -> None:
        self.elf, self.btf, self.name = elf, btf, name

    def error(self, message: str) -> ElfError:
        return self.elf.error(f"map {self.name!r}: {message}", BTF_MAPS_SEC)

    def integer(self, m: Member) -> int:
        t = self.btf.type_by_id(_skip_mods(self.btf, m.type_id))
        if isinstance(t, Ptr):
            arr = self.btf.type_by_id(t.type_id)
            if isinstance(arr, Array):
                return arr.nelems
            raise self.error(f"field {m.name!r}: expected a pointer to an array, got a pointer to "
                             f"{arr.kind.name}")
        if isinstance(t, EnumBase) and len(t.values) == 1:
            return t.values[0].value
        raise self.error(f"field {m.name!r}: expected __uint() (a pointer to an array), got {t.kind.name}")

    def pointee(self, m: Member) -> int:
        t = self.btf.type_by_id(m.type_id)
        if not isinstance(t, Ptr):
            raise self.error(f"field {m.name!r}: expected __type() (a pointer), got {t.kind.name}")
        return t.type_id


def _parse_def(f: _Fields, struct_t: Struct, inner: bool) -> tuple[MapSpec, Member | None, bool]:
    """A map definition struct -> (spec, the `values` member if any, whether `values` hold programs)."""
    vals: dict[str, int] = {}
    key_type = value_type = 0
    values: Member | None = None
    inner_spec: MapSpec | None = None
    prog_values = False
    for i, m in enumerate(struct_t.members):
        if m.name in _INT_FIELDS:
            value = f.integer(m)
            if m.name in ("key_size", "value_size") and vals.get(m.name, value) != value:
                raise f.error(f"conflicting {m.name[:-5]} size {vals[m.name]} != {value}")
            vals[m.name] = value
            if m.name == "pinning" and inner:
                raise f.error("an inner map definition cannot be pinned")
        elif m.name in ("key", "value"):
            tid = f.pointee(m)
            try:
                size = f.btf.sizeof(tid)
            except BtfError as e:
                raise f.error(f"cannot size the {m.name} type [{tid}]: {e}") from None
            field = f"{m.name}_size"
            if field in vals and vals[field] != size:
                raise f.error(f"conflicting {m.name} size {vals[field]} != {size}")
            vals[field] = size
            if m.name == "key":
                key_type = tid
            else:
                value_type = tid
        elif m.name == "values":
            if inner:
                raise f.error("multi-level inner maps are not supported")
            if i != len(struct_t.members) - 1:
                raise f.error("the 'values' member must be last")
            mtype = vals.get("type", 0)
            prog_values = mtype == MapType.PROG_ARRAY
            if mtype not in _MAP_IN_MAP and not prog_values:
                raise f.error("'values' needs a map of maps or a program array type (declare 'type' first)")
            if vals.get("value_size", 4) != 4:
                raise f.error(f"conflicting value size {vals['value_size']} != 4")
            vals["value_size"] = 4
            arr = f.btf.type_by_id(m.type_id)
            if not isinstance(arr, Array) or arr.nelems:
                raise f.error("'values' must be a zero-length array (__array)")
            ptr = f.btf.type_by_id(_skip_mods(f.btf, arr.type_id))
            if not isinstance(ptr, Ptr):
                raise f.error(f"'values' elements must be pointers, not {ptr.kind.name}")
            target = f.btf.type_by_id(_skip_mods(f.btf, ptr.type_id))
            if prog_values:
                if not isinstance(target, FuncProto):
                    raise f.error(f"program array values must point to functions, not {target.kind.name}")
            else:
                if not isinstance(target, Struct):
                    raise f.error(f"inner map definition must be a struct, not {target.kind.name}")
                sub = _Fields(f.elf, f.btf, f"{f.name}.inner")
                inner_spec, _, _ = _parse_def(sub, target, inner=True)
            values = m
        else:
            raise f.error(f"unknown field {m.name!r}")
    mtype_raw = vals.get("type", 0)
    if not mtype_raw:
        raise f.error("map type is not specified")
    try:
        mtype = MapType(mtype_raw)
    except ValueError:
        raise f.error(f"unknown map type {mtype_raw}") from None
    pin = vals.get("pinning", 0)
    if pin not in (PinType.NONE, PinType.BY_NAME):
        raise f.error(f"invalid pinning value {pin}")
    numa = vals.get("numa_node")
    spec = MapSpec(
        mtype, vals.get("key_size", 0), vals.get("value_size", 0), vals.get("max_entries", 0),
        vals.get("map_flags", 0), name=f.name, inner_map=inner_spec, numa_node=numa,
        map_extra=vals.get("map_extra", 0), btf_key_type_id=key_type, btf_value_type_id=value_type,
        pinning=PinType(pin), section="" if inner else BTF_MAPS_SEC,
    )
    return spec, values, prog_values


def btf_maps(elf: ElfFile, btf: Spec | None, programs_at: dict[tuple[int, int], str]) -> list[MapDef]:
    """The maps of `.maps`, in offset order. `programs_at` maps (section, offset) of each program's
    symbol to its name, for program array initial values."""
    sec = elf.section(BTF_MAPS_SEC)
    if sec is None:
        return []
    if btf is None:
        raise elf.error("BTF-defined maps need the object's BTF, and there is no .BTF section", sec)
    ds_ids = btf.find_ids(BTF_MAPS_SEC, Datasec)
    if not ds_ids:
        raise elf.error("no DATASEC '.maps' in the BTF", sec)
    ds = btf.type_by_id(ds_ids[0])
    assert isinstance(ds, Datasec)
    defs: list[MapDef] = []
    inits: list[tuple[int, Member, bool]] = []
    for info in ds.vars:
        var = btf.type_by_id(info.type_id)
        if not isinstance(var, Var) or not var.name:
            raise elf.error(f"DATASEC entry [{info.type_id}] is not a named variable", sec)
        if info.offset + info.size > sec.size:
            raise elf.error(f"map {var.name!r}: definition ({info.size} bytes at {info.offset}) overruns "
                            f"the section ({sec.size} bytes)", sec)
        if var.linkage != VarLinkage.GLOBAL_ALLOCATED:
            raise elf.error(f"map {var.name!r}: unsupported linkage {var.linkage.name.lower()} (maps must "
                            "be non-static globals)", sec)
        struct_t = btf.type_by_id(_skip_mods(btf, var.type_id))
        if not isinstance(struct_t, Struct):
            raise elf.error(f"map {var.name!r}: definition is {struct_t.kind.name}, not a struct", sec)
        if struct_t.size > info.size:
            raise elf.error(f"map {var.name!r}: definition struct ({struct_t.size} bytes) is larger than "
                            f"the variable ({info.size} bytes)", sec)
        spec, values, progs = _parse_def(_Fields(elf, btf, var.name), struct_t, inner=False)
        defs.append(MapDef(spec, sec.index, info.offset, info.size))
        if values is not None:
            inits.append((len(defs) - 1, values, progs))
    if inits:
        _initial_values(elf, sec, defs, inits, programs_at)
    return defs


def _initial_values(elf: ElfFile, sec: Section, defs: list[MapDef], inits: list[tuple[int, Member, bool]],
                    programs_at: dict[tuple[int, int], str]) -> None:
    """Fill `init_slots` of maps with `values` from the relocations of `.maps`."""
    by_offset = {d.offset: d.spec.name for d in defs}
    slots: dict[int, list[tuple[int, str]]] = {}
    for rel in elf.relocations(sec):
        if rel.type == RelocType.NONE:
            continue
        owner = next(((i, m, p) for i, m, p in inits
                      if defs[i].offset + m.byte_offset <= rel.offset < defs[i].offset + defs[i].size), None)
        sym = elf.symbol(rel.symbol, sec)
        name = elf.symbol_name(sym)
        if owner is None:
            raise elf.error(f"relocation at offset {rel.offset} against {name!r} is not inside a map's "
                            "'values'", sec)
        idx, member, progs = owner
        d = defs[idx]
        if rel.type != RelocType.ABS64:
            raise elf.error(f"map {d.spec.name!r}: relocation type {rel.type} against {name!r} (expected "
                            "R_BPF_64_ABS64)", sec)
        rel_off = rel.offset - d.offset - member.byte_offset
        if rel_off % 8:
            raise elf.error(f"map {d.spec.name!r}: misaligned 'values' relocation at offset {rel.offset}",
                            sec)
        slot = rel_off // 8
        if slot >= d.spec.max_entries:
            raise elf.error(f"map {d.spec.name!r}: initial value for slot {slot}, but max_entries is "
                            f"{d.spec.max_entries}", sec)
        if progs:
            target = programs_at.get((sym.shndx, sym.value)) if sym.type == SymbolType.FUNC else None
            if target is None:
                raise elf.error(f"map {d.spec.name!r}: slot {slot} refers to {name!r}, which is not a "
                                "program", sec)
        else:
            target = by_offset.get(sym.value) if sym.shndx == sec.index else None
            if target is None:
                raise elf.error(f"map {d.spec.name!r}: slot {slot} refers to {name!r}, which is not a map "
                                "in .maps", sec)
        slots.setdefault(idx, []).append((slot, target))
    for idx, items in slots.items():
        d = defs[idx]
        spec = replace(d.spec, init_slots=tuple(sorted(items)))
        defs[idx] = MapDef(spec, d.section, d.offset, d.size)


# struct bpf_map_def (libbpf < 1.0, linux/samples): type, key_size, value_size, max_entries, map_flags.
_LEGACY_FIELDS = 5


def legacy_maps(elf: ElfFile, byteorder: str) -> list[MapDef]:
    """The maps of a legacy `maps` section: one `struct bpf_map_def` per object symbol.

    libbpf >= 1.0 refuses these; bpfkit reads them (the layout is unambiguous), and the object records
    a note saying so. Definitions longer than the five known fields must have zeros beyond them.
    """
    sec = elf.section(LEGACY_MAPS_SEC)
    if sec is None:
        return []
    data = elf.data(sec)
    syms = sorted((s for s in elf.symbols if s.shndx == sec.index and s.type != SymbolType.SECTION
                   and s.name), key=lambda s: s.value)
    if not syms:
        if sec.size:
            raise elf.error("legacy maps section has no map symbols", sec)
        return []
    if sec.size % len(syms):
        raise elf.error(f"section size {sec.size} is not a multiple of the {len(syms)} map definitions", sec)
    size = sec.size // len(syms)
    if size < 4 * 4 or size % 4:
        raise elf.error(f"legacy map definition size {size} (need a multiple of 4, at least 16)", sec)
    fmt = ("<" if byteorder == "little" else ">") + f"{size // 4}I"
    out = []
    for sym in syms:
        if sym.value % size or sym.value + size > sec.size:
            raise elf.error(f"map {sym.name!r} at offset {sym.value} is not on a {size}-byte definition", sec)
        words = struct.unpack_from(fmt, data, sym.value) + (0,) * _LEGACY_FIELDS
        if any(words[_LEGACY_FIELDS : size // 4]):
            raise elf.error(f"map {sym.name!r}: unknown non-zero fields after map_flags", sec)
        try:
            mtype = MapType(words[0])
        except ValueError:
            raise elf.error(f"map {sym.name!r}: unknown map type {words[0]}", sec) from None
        spec = MapSpec(mtype, words[1], words[2], words[3], words[4], name=sym.name, section=LEGACY_MAPS_SEC)
        out.append(MapDef(spec, sec.index, sym.value, size))
    return out
