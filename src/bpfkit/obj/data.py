"""Global data: `.data*`, `.rodata*` and `.bss*` sections become one-entry array maps, and their
variables become `VariableSpec`s that `ObjectSpec.set_global` can change before load.

As libbpf does: the map's value is the section's bytes, `.rodata*` maps are read-only to programs
(BPF_F_RDONLY_PROG) and frozen after their contents are written, and a map whose BTF DATASEC has a
non-static variable is mmapable (BPF_F_MMAPABLE, so user space can map it). Empty sections make no map.
"""

from __future__ import annotations

from bpfkit._records import record
from bpfkit.btf import Datasec, Spec, Var, VarLinkage
from bpfkit.elf.file import ElfFile, Section, SectionType, SymbolType
from bpfkit.uapi.enums import MapFlags, MapType

from .spec import MapSpec

ZERO_KEY = bytes(4)
MAX_VALUE_SIZE = 0xFFFFFFFF
"""`value_size` is a u32 in bpf_attr."""


@record
class VariableSpec:
    """A global (or static) variable in a data section: `size` bytes at `offset` of map `section`.

    `type_id` is its type in the object's BTF (0 without BTF). `readonly` variables live in `.rodata*`:
    programs cannot change them, so the verifier treats their values as constants.
    """

    name: str
    section: str
    offset: int
    size: int
    type_id: int = 0
    static: bool = False
    readonly: bool = False


def data_kind(sec: Section) -> str | None:
    """'data', 'rodata' or 'bss' for a global data section, else None."""
    name = sec.name
    if sec.type == SectionType.PROGBITS and not sec.is_code:
        if name == ".data" or name.startswith(".data."):
            return "data"
        if name == ".rodata" or name.startswith(".rodata."):
            return "rodata"
    if sec.type == SectionType.NOBITS and (name == ".bss" or name.startswith(".bss.")):
        return "bss"
    return None


def data_sections(elf: ElfFile) -> list[Section]:
    """The non-empty global data sections, in file order."""
    return [s for s in elf.sections if s.size and data_kind(s) is not None]


def data_maps(elf: ElfFile, btf: Spec | None) -> tuple[list[MapSpec], dict[str, VariableSpec]]:
    """One MapSpec per global data section, and every variable found in them."""
    maps: list[MapSpec] = []
    variables: dict[str, VariableSpec] = {}
    for sec in data_sections(elf):
        kind = data_kind(sec)
        readonly = kind == "rodata"
        ds: Datasec | None = None
        if btf is not None:
            ids = btf.find_ids(sec.name, Datasec)
            if ids:
                found = btf.type_by_id(ids[0])
                assert isinstance(found, Datasec)
                ds = found
        flags = MapFlags.RDONLY_PROG if readonly else 0
        vars_here: list[VariableSpec] = []
        if ds is not None and btf is not None:
            for info in ds.vars:
                var = btf.type_by_id(info.type_id)
                if isinstance(var, Var):
                    vars_here.append(VariableSpec(var.name, sec.name, info.offset, info.size, var.type_id,
                                                  var.linkage == VarLinkage.STATIC, readonly))
            if any(not v.static for v in vars_here):
                flags |= MapFlags.MMAPABLE
        else:
            for sym in elf.symbols:
                if sym.shndx == sec.index and sym.type == SymbolType.OBJECT and sym.name:
                    vars_here.append(VariableSpec(sym.name, sec.name, sym.value, sym.size, 0,
                                                  not sym.is_global, readonly))
        if sec.size > MAX_VALUE_SIZE:
            raise elf.error(f"section of {sec.size} bytes is too large for a map value", sec)
        if sec.is_nobits:
            contents: tuple[tuple[bytes, bytes], ...] = ()  # zeros: the kernel's initial value anyway
        else:
            value = elf.data(sec)
            contents = ((ZERO_KEY, value),) if readonly or any(value) else ()
        maps.append(MapSpec(MapType.ARRAY, 4, sec.size, 1, int(flags), name=sec.name,
                            btf_value_type_id=ds.id if ds is not None else 0, contents=contents,
                            freeze=readonly, section=sec.name))
        for v in vars_here:
            if v.offset + v.size > sec.size:
                raise elf.error(f"variable {v.name!r} ({v.size} bytes at {v.offset}) overruns the section "
                                f"({sec.size} bytes)", sec)
            variables.setdefault(v.name, v)
    return maps, variables
