"""Extern symbols of an object: `__kconfig` values and `__ksym` kernel variables and functions.

An extern is an undefined global symbol whose BTF VAR (or FUNC) sits in the `.kconfig` or `.ksyms`
DATASEC. Nothing is resolved here: the loader fills `.kconfig` from the running kernel's config and
looks `.ksyms` up in its BTF or kallsyms. What is fixed here, as libbpf does at open time, is the layout
of the `.kconfig` map (externs sorted by alignment, largest first, then size, then name).
"""

from __future__ import annotations

import enum

from bpfkit._records import record
from bpfkit.btf import Array, Datasec, Enum, Func, Int, IntEncoding, Spec, Var, Void
from bpfkit.elf.file import ElfFile

KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"


class ExternKind(enum.Enum):
    """What an extern stands for."""

    KCONFIG = "kconfig"
    """A `CONFIG_*` value (or `LINUX_KERNEL_VERSION`...) in the read-only `.kconfig` map."""
    KSYM = "ksym"
    """A kernel variable: typed (src BTF_ID) or typeless (its address)."""
    KFUNC = "kfunc"
    """A kernel function called with BPF_PSEUDO_KFUNC_CALL."""


class KconfigType(enum.Enum):
    """How a `.kconfig` extern's value is encoded (libbpf's kcfg types)."""

    BOOL = "bool"
    TRISTATE = "tristate"
    CHAR = "char"
    CHAR_ARRAY = "char_array"
    INT = "int"


@record
class ExternSpec:
    """One extern. `btf_id` is its VAR or FUNC in the object's BTF; `type_id` the VAR's type (or the
    FUNC's prototype), modifiers and typedefs skipped. For KCONFIG externs `offset`/`size` place the
    value in the `.kconfig` map and `kconfig_type`/`signed` say how to encode it. `typeless` marks a
    ksym declared without a type (`extern const void sym __ksym`). `weak` externs may stay unresolved
    (they read as zero)."""

    name: str
    kind: ExternKind
    btf_id: int
    type_id: int
    weak: bool = False
    typeless: bool = False
    offset: int = 0
    size: int = 0
    kconfig_type: KconfigType | None = None
    signed: bool = False


def _skip_mods(btf: Spec, type_id: int) -> int:
    """`type_id` with const/volatile/restrict/typedef/type-tag wrappers skipped."""
    return btf.resolve(type_id).id


def kconfig_type(btf: Spec, type_id: int) -> tuple[KconfigType, bool] | None:
    """The kcfg encoding of `type_id` (and its signedness), or None when `.kconfig` cannot hold it."""
    t = btf.type_by_id(_skip_mods(btf, type_id))
    if isinstance(t, Int):
        signed = bool(t.encoding & IntEncoding.SIGNED)
        if t.encoding & IntEncoding.BOOL:
            return (KconfigType.BOOL, False) if t.size == 1 else None
        if t.size == 1:
            return KconfigType.CHAR, signed
        if t.size in (2, 4, 8):
            return KconfigType.INT, signed
        return None
    if isinstance(t, Enum):
        return (KconfigType.TRISTATE, False) if t.name == "libbpf_tristate" else None
    if isinstance(t, Array):
        if t.nelems == 0:
            return None
        elem = kconfig_type(btf, t.type_id)
        return (KconfigType.CHAR_ARRAY, False) if elem and elem[0] is KconfigType.CHAR else None
    return None


def collect_externs(elf: ElfFile, btf: Spec | None) -> dict[str, ExternSpec]:
    """Every extern of the object, KCONFIG ones laid out; `ElfError` for externs BTF does not place."""
    names = []
    weak: dict[str, bool] = {}
    for sym in elf.symbols[1:]:
        if sym.is_undefined and sym.is_global and sym.name:
            names.append(sym.name)
            weak[sym.name] = sym.is_weak
    if not names:
        return {}
    if btf is None:
        raise elf.error(f"extern {names[0]!r} needs BTF (.kconfig/.ksyms), and the object has none", ".BTF")
    where: dict[str, tuple[str, int]] = {}  # extern name -> (DATASEC name, VAR/FUNC id)
    for dsname in (KCONFIG_SEC, KSYMS_SEC):
        for ds_id in btf.find_ids(dsname, Datasec):
            ds = btf.type_by_id(ds_id)
            assert isinstance(ds, Datasec)
            for info in ds.vars:
                t = btf.type_by_id(info.type_id)
                name = getattr(t, "name", "")
                if name:
                    where.setdefault(name, (dsname, info.type_id))
    out: dict[str, ExternSpec] = {}
    for name in names:
        found = where.get(name)
        if found is None:
            raise elf.error(f"extern {name!r} is not in the .kconfig or .ksyms DATASEC of the BTF "
                            "(declare it __kconfig or __ksym)", ".symtab")
        section, btf_id = found
        t = btf.type_by_id(btf_id)
        if section == KCONFIG_SEC:
            if not isinstance(t, Var):
                raise elf.error(f"extern {name!r}: a .kconfig extern must be a variable, not "
                                f"{t.kind.name}", ".BTF")
            kt = kconfig_type(btf, t.type_id)
            if kt is None:
                raise elf.error(f"extern {name!r}: type {btf.type_str(t.type_id)!r} is not supported in "
                                ".kconfig (use bool, tristate, char, char[] or an integer)", ".BTF")
            out[name] = ExternSpec(name, ExternKind.KCONFIG, btf_id, _skip_mods(btf, t.type_id),
                                   weak[name], size=btf.sizeof(t.type_id), kconfig_type=kt[0], signed=kt[1])
        elif isinstance(t, Func):
            out[name] = ExternSpec(name, ExternKind.KFUNC, btf_id, _skip_mods(btf, t.type_id), weak[name])
        elif isinstance(t, Var):
            target = _skip_mods(btf, t.type_id)
            typeless = isinstance(btf.type_by_id(target), Void)
            out[name] = ExternSpec(name, ExternKind.KSYM, btf_id, target, weak[name], typeless=typeless)
        else:
            raise elf.error(f"extern {name!r}: unexpected BTF kind {t.kind.name} in .ksyms", ".BTF")
    return _layout_kconfig(btf, out)


def _layout_kconfig(btf: Spec, externs: dict[str, ExternSpec]) -> dict[str, ExternSpec]:
    kcfg = [e for e in externs.values() if e.kind is ExternKind.KCONFIG]
    order = sorted(kcfg, key=lambda e: (-btf.alignof(e.type_id), e.size, e.name))
    off = 0
    placed: dict[str, ExternSpec] = {}
    for e in order:
        align = max(1, btf.alignof(e.type_id))
        start = (off + align - 1) // align * align
        placed[e.name] = ExternSpec(e.name, e.kind, e.btf_id, e.type_id, e.weak, e.typeless, start, e.size,
                                    e.kconfig_type, e.signed)
        off = start + e.size
    return {name: placed.get(name, e) for name, e in externs.items()}


def kconfig_size(externs: dict[str, ExternSpec]) -> int:
    """Bytes of the `.kconfig` map value: the end of the last laid-out extern."""
    return max((e.offset + e.size for e in externs.values() if e.kind is ExternKind.KCONFIG), default=0)
