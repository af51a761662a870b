"""`load_object`: read an ELF object made by `clang -target bpf -g` into an `ObjectSpec`.

Pure and deterministic: the same bytes give the same specs on every machine. The steps follow libbpf's
`bpf_object__open`: ELF sections and symbols, BTF and its fix-ups, externs, maps (BTF-defined, legacy,
global data, `.kconfig`), programs by section convention, then relocation and subprogram linking.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from bpfkit.btf import Spec, load_btf
from bpfkit.btf.ext import BtfExt, load_btf_ext
from bpfkit.elf.file import ElfFile, Symbol
from bpfkit.errors import BtfError, ElfError
from bpfkit.uapi.enums import MapFlags, MapType, ProgType

from .btffix import fixup_btf
from .data import data_kind, data_maps
from .externs import KCONFIG_SEC, ExternKind, ExternSpec, collect_externs, kconfig_size
from .link import TEXT, CodeSection, Function, Linker, check_static_programs, collect_code
from .maps import LEGACY_MAPS_SEC, MapDef, btf_maps, legacy_maps
from .object import ObjectSpec
from .sections import section_info
from .spec import MapSpec, ProgramSpec

LICENSE_SEC = "license"
VERSION_SEC = "version"


def load_object(source: bytes | bytearray | memoryview | str | os.PathLike[str], name: str | None = None
                ) -> ObjectSpec:
    """Parse a BPF ELF object (a path or its bytes) into an `ObjectSpec`.

    Raises `ElfError` (malformed ELF or unsupported content), `BtfError` (malformed .BTF/.BTF.ext) or
    `RelocationError` (a relocation that cannot be applied), each naming the file and section, and for
    relocations the symbol and instruction index.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ElfError(f"cannot read: {e.strerror}", where=path) from None
        label = name or path
        obj_name = Path(path).name
    else:
        data = bytes(source)
        label = name or "<bytes>"
        obj_name = Path(name).name if name else "object"
    if obj_name.endswith(".o"):
        obj_name = obj_name[:-2]
    try:
        return _Loader(data, label, obj_name).load()
    except BtfError as e:
        if e.where and e.where.startswith(label):
            raise
        # A type decoded lazily (map definitions, externs, DATASECs) turned out malformed.
        where = f"{label}: section '.BTF'" + (f": offset {e.offset}" if e.offset is not None else "")
        raise BtfError(e.message, e.offset, where=where) from None


class _Loader:
    def __init__(self, data: bytes, label: str, obj_name: str) -> None:
        self.elf = ElfFile(data, label)
        self.label = label
        self.obj = ObjectSpec(obj_name, path=label, byteorder=self.elf.byteorder)

    # ------------------------------------------------------------------ pieces

    def _btf(self) -> Spec | None:
        sec = self.elf.section(".BTF")
        if sec is None:
            return None
        try:
            return load_btf(self.elf.data(sec))
        except BtfError as e:
            raise BtfError(e.message, e.offset, where=f"{self.label}: section '.BTF'") from None

    def _btf_ext(self, btf: Spec | None) -> BtfExt | None:
        sec = self.elf.section(".BTF.ext")
        if sec is None or btf is None:
            return None
        try:
            return load_btf_ext(self.elf.data(sec), btf)
        except BtfError as e:
            raise BtfError(e.message, e.offset, where=f"{self.label}: section '.BTF.ext'") from None

    def _license_version(self) -> None:
        sec = self.elf.section(LICENSE_SEC)
        if sec is not None:
            raw = self.elf.data(sec)
            self.obj.license = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        sec = self.elf.section(VERSION_SEC)
        if sec is not None:
            raw = self.elf.data(sec)
            if len(raw) != 4:
                raise self.elf.error(f"version section is {len(raw)} bytes, expected 4 (a u32)", sec)
            order = "<" if self.elf.byteorder == "little" else ">"
            self.obj.kern_version = struct.unpack(order + "I", raw)[0]

    def _programs(self, code: dict[int, CodeSection]) -> list[Function]:
        """Program entry functions in section, then offset, order."""
        progs: list[Function] = []
        text: CodeSection | None = None
        for cs in code.values():
            if cs.section.name == TEXT:
                text = cs
                continue
            if cs.functions:
                progs.extend(cs.functions)
            else:  # hand-written code without function symbols: the section is one program
                progs.append(Function(cs.section, cs.section.name, 0, len(cs.code) // 8, True, 0))
        if not progs and text is not None and len(text.functions) == 1:
            progs.append(text.functions[0])  # libbpf: a lone .text function is a program
        return progs

    def _maps(self, btf: Spec | None, programs_at: dict[tuple[int, int], str],
              externs: dict[str, ExternSpec]) -> tuple[list[MapDef], list[MapSpec]]:
        defs = btf_maps(self.elf, btf, programs_at)
        legacy = legacy_maps(self.elf, self.elf.byteorder)
        if legacy:
            self.obj.notes.append(f"legacy map definitions in SEC(\"{LEGACY_MAPS_SEC}\") "
                                  f"({', '.join(d.spec.name for d in legacy)}): libbpf >= 1.0 refuses them; "
                                  "bpfkit loads them without BTF key/value types")
        for sec_name in (".struct_ops", ".struct_ops.link"):
            if self.elf.section(sec_name) is not None:
                self.obj.notes.append(f"section {sec_name!r}: struct_ops maps are not read yet (their "
                                      "programs are)")
        data_specs, variables = data_maps(self.elf, btf)
        self.obj.variables.update(variables)
        if any(e.kind is ExternKind.KCONFIG for e in externs.values()):
            ds_id = 0
            if btf is not None:
                ids = btf.find_ids(KCONFIG_SEC)
                ds_id = ids[0] if ids else 0
            data_specs.append(MapSpec(MapType.ARRAY, 4, kconfig_size(externs), 1,
                                      int(MapFlags.RDONLY_PROG | MapFlags.MMAPABLE), name=KCONFIG_SEC,
                                      btf_value_type_id=ds_id, freeze=True, section=KCONFIG_SEC))
        return defs + legacy, data_specs

    # ------------------------------------------------------------------ the whole

    def load(self) -> ObjectSpec:
        elf = self.elf
        raw_btf = self._btf()
        externs = collect_externs(elf, raw_btf)
        btf = fixup_btf(elf, raw_btf, externs) if raw_btf is not None else None
        ext = self._btf_ext(btf)
        self._license_version()
        code = collect_code(elf)
        check_static_programs(elf, code)
        entries = self._programs(code)
        programs_at = {(f.section.index, f.symbol_value): f.name for f in entries}
        map_defs, data_specs = self._maps(btf, programs_at, externs)
        obj = self.obj
        obj.btf = btf
        obj.externs = externs
        for d in map_defs:
            if d.spec.name in obj.maps:
                raise elf.error(f"two maps named {d.spec.name!r}", elf.sections[d.section])
            obj.maps[d.spec.name] = d.spec
        for spec in data_specs:
            obj.maps[spec.name] = spec
        by_place = {(d.section, d.offset): d.spec.name for d in map_defs}

        def map_at(sym: Symbol) -> str | None:
            name = by_place.get((sym.shndx, sym.value))
            if name is None and elf.sections[sym.shndx].name in (".maps", LEGACY_MAPS_SEC):
                raise elf.error(f"symbol {elf.symbol_name(sym)!r} at offset {sym.value} is not the start of "
                                "a map definition", elf.sections[sym.shndx])
            return name

        def data_map(shndx: int) -> str | None:
            sec = elf.sections[shndx]
            return sec.name if data_kind(sec) is not None and sec.name in obj.maps else None

        linker = Linker(elf, code, map_at=map_at, data_map=data_map, externs=externs, ext=ext)
        for func in entries:
            if func.name in obj.programs:
                raise elf.error(f"two programs named {func.name!r}", func.section)
            linked = linker.link(func)
            info = section_info(func.section.name)
            obj.programs[func.name] = ProgramSpec(
                info.prog_type if info else ProgType.UNSPEC,
                linked.insns,
                name=func.name,
                license=obj.license,
                expected_attach_type=info.attach_type if info else None,
                attach_to=info.target if info else "",
                flags=info.prog_flags if info else 0,
                kern_version=obj.kern_version,
                section=func.section.name,
                func_info=linked.func_info,
                func_info_rec_size=8 if linked.func_info else 0,
                line_info=linked.line_info,
                line_info_rec_size=16 if linked.line_info else 0,
                references=linked.references,
                subprograms=linked.subprograms,
                lines=linked.lines,
                core_relos=linked.core_relos,
            )
        return obj
