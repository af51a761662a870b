"""Fix up an object's BTF the way libbpf does when it opens the object.

clang leaves the sizes of DATASECs at 0 and every variable offset at 0 (the ELF symbols hold the real
values); the kernel refuses such BTF. Here each DATASEC of an ELF section gets the section's size and
each variable its symbol's offset, sorted by offset. Extern DATASECs become what the kernel accepts:
`.kconfig` variables take their offsets in the `.kconfig` map, and every `.ksyms` entry becomes a
4-byte allocated `int` variable (functions are represented by one dummy variable, and their prototypes
get names for anonymous parameters, as the kernel wants of global functions).
"""

from __future__ import annotations

from bpfkit._records import replace
from bpfkit.btf import (
    Datasec,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Param,
    Spec,
    Type,
    Var,
    VarLinkage,
)
from bpfkit.btf import VarSecinfo as VSI
from bpfkit.btf.marshal import BtfBuilder
from bpfkit.elf.file import ElfFile, SymbolType

from .externs import KCONFIG_SEC, KSYMS_SEC, ExternKind, ExternSpec

DUMMY_KSYM = "dummy_ksym"


def _elf_offsets(elf: ElfFile, shndx: int) -> dict[str, int]:
    """Variable name -> offset for the object symbols of section `shndx`."""
    out: dict[str, int] = {}
    for sym in elf.symbols:
        if sym.shndx == shndx and sym.type in (SymbolType.OBJECT, SymbolType.NOTYPE) and sym.name:
            out.setdefault(sym.name, sym.value)
    return out


def fixup_btf(elf: ElfFile, btf: Spec, externs: dict[str, ExternSpec]) -> Spec:
    """`btf` with DATASECs and extern types fixed; the same spec when nothing needed fixing."""
    types: list[Type] = list(btf.types())
    changed = False
    int_id = next((t.id for t in types if isinstance(t, Int) and t.bits == 32 and t.offset == 0), 0)
    new_types: list[Type] = []  # appended after the existing ones
    next_id = btf.type_count

    def add(t: Type) -> int:
        nonlocal next_id
        new_types.append(t)
        next_id += 1
        return next_id - 1

    for i, t in enumerate(types):
        if not isinstance(t, Datasec):
            continue
        if t.name == KCONFIG_SEC:
            fixed = _fix_kconfig(btf, t, externs, types)
        elif t.name == KSYMS_SEC:
            if not int_id:
                int_id = add(Int("int", 4, IntEncoding.SIGNED))
            dummy = 0
            if any(isinstance(btf.type_by_id(v.type_id), Func) for v in t.vars):
                dummy = add(Var(DUMMY_KSYM, int_id, VarLinkage.GLOBAL_ALLOCATED))
            fixed = _fix_ksyms(btf, t, types, int_id, dummy)
        else:
            fixed = _fix_datasec(elf, t)
        if fixed != t:
            types[i] = fixed
            changed = True
    if not changed and not new_types:
        return btf
    builder = BtfBuilder(strings=btf.raw_strings)
    builder.add_all(types)
    builder.add_all(new_types)
    return Spec(builder.marshal(btf.byteorder))  # type: ignore[arg-type]


def _fix_datasec(elf: ElfFile, ds: Datasec) -> Datasec:
    sec = elf.section(ds.name)
    if sec is None:
        raise elf.error(f"BTF DATASEC {ds.name!r} names no ELF section", ".BTF")
    if sec.size > 0xFFFFFFFF:
        raise elf.error(f"section of {sec.size} bytes is too large for a BTF DATASEC", sec)
    offsets = _elf_offsets(elf, sec.index)
    spec = ds.spec
    assert spec is not None
    infos = []
    for info in ds.vars:
        var = spec.type_by_id(info.type_id)
        if not isinstance(var, Var):
            raise elf.error(f"DATASEC {ds.name!r}: entry [{info.type_id}] is {var.kind.name}, not a VAR",
                            ".BTF")
        off = offsets.get(var.name)
        if off is None:
            raise elf.error(f"DATASEC {ds.name!r}: variable {var.name!r} has no symbol in section "
                            f"{ds.name!r}", ".BTF")
        if off + info.size > sec.size:
            raise elf.error(f"DATASEC {ds.name!r}: variable {var.name!r} ({info.size} bytes at {off}) "
                            f"overruns the section ({sec.size} bytes)", ".BTF")
        infos.append(VSI(info.type_id, off, info.size))
    infos.sort(key=lambda v: v.offset)
    return replace(ds, size=ds.size or sec.size, vars=tuple(infos))


def _fix_kconfig(btf: Spec, ds: Datasec, externs: dict[str, ExternSpec], types: list[Type]) -> Datasec:
    infos = []
    for info in ds.vars:
        var = btf.type_by_id(info.type_id)
        ext = externs.get(getattr(var, "name", ""))
        if ext is None or ext.kind is not ExternKind.KCONFIG or not isinstance(var, Var):
            continue  # declared but unused: no symbol, no slot (libbpf drops it the same way)
        types[var.id - 1] = replace(var, linkage=VarLinkage.GLOBAL_ALLOCATED)
        infos.append(VSI(info.type_id, ext.offset, info.size))
    infos.sort(key=lambda v: v.offset)
    size = max((v.offset + v.size for v in infos), default=0)
    return replace(ds, size=size, vars=tuple(infos))


def _fix_ksyms(btf: Spec, ds: Datasec, types: list[Type], int_id: int, dummy: int) -> Datasec:
    infos = []
    for n, info in enumerate(ds.vars):
        t = btf.type_by_id(info.type_id)
        entry = info.type_id
        if isinstance(t, Func):
            types[t.id - 1] = replace(t, linkage=FuncLinkage.GLOBAL)
            proto = btf.type_by_id(t.type_id)
            if isinstance(proto, FuncProto) and any(p.type_id and not p.name for p in proto.params):
                params = tuple(Param(p.name or (DUMMY_KSYM if p.type_id else ""), p.type_id)
                               for p in proto.params)
                types[proto.id - 1] = replace(proto, params=params)
            entry = dummy
        elif isinstance(t, Var):
            types[t.id - 1] = replace(t, type_id=int_id, linkage=VarLinkage.GLOBAL_ALLOCATED)
        infos.append(VSI(entry, 4 * n, 4))
    return replace(ds, size=4 * len(infos), vars=tuple(infos))
