"""Load a whole object (`bpfkit.obj.ObjectSpec`) into the userspace VM: maps, programs and their links.

    spec = load_object("prog.o")
    with vm.load_object(spec) as coll:             # VmCollection, shaped like kernel.Collection
        coll.programs["handler"].test_run(packet)
        coll.maps["counts"].lookup(key)

The steps mirror what a loader does for the kernel, with what only a kernel can provide turned into
values the caller passes (or clear refusals):

- maps are created from their specs (global data with its initial values; `.rodata` frozen and
  read-only to programs); `.kconfig` is filled from `kconfig` (a dict such as
  `{"CONFIG_HZ": 250, "LINUX_KERNEL_VERSION": 0x061200}`), by default from the running system's config
  (/proc/config.gz or /boot/config-$(uname -r));
- CO-RE relocations are applied (`bpfkit.btf.core.relocate`, pure) against `target_btf`, by default
  /sys/kernel/btf/vmlinux when that file is readable. Without a target a program with CO-RE records is
  refused: the compiler's local answers would silently give wrong results. The same target goes to the
  verifier for the programs that need one (fentry/fexit, tp_btf and iterator contexts); the kernel's
  BTF is read (`default_target_btf`, the one place that reads it) only when some program needs it;
- `__ksym` variables and kfunc calls name kernel memory and kernel code: refused, they are kernel-only;
- program arrays are filled from their initialisers. Maps of maps are not emulated: an object
  referring to one is refused; one no program refers to is left out (`VmCollection.skipped`);
- every program is verified by bpfkit's verifier (unless `verify=False`: trusted code) on what it
  will run: the instructions with CO-RE applied, the maps with `.kconfig` filled (read-only and frozen,
  so the verifier knows those values as the kernel does), its source lines in reports.

`resolve_object` does the first two steps alone (pure): `bpfkit vm verify` verifies its result.
`programs=` (`select_programs`) loads only some programs and what they need: their maps (with the maps
those hold initially) and the programs their program arrays hold initially, so a program left out is
neither relocated nor verified.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from bpfkit._records import field, record, replace
from bpfkit.btf import Spec, load_btf
from bpfkit.btf.core import CoreResult, relocate
from bpfkit.errors import BpfkitError, LinkError, VerificationError, VmError, VmHelperError
from bpfkit.isa import encode
from bpfkit.isa.builder import Relocation
from bpfkit.obj import ExternKind, ObjectSpec, ProgramSpec, RefKind
from bpfkit.obj.kconfig import config_text, kconfig_value, read_kconfig
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.btf import CoreReloKind
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.vm.machine import BtfArg, TargetBtf
from bpfkit.vm.maps import MAP_CLASSES, ProgArrayMap, VmMap

if TYPE_CHECKING:
    from bpfkit.vm.machine import Vm, VmProgram

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
"""The default CO-RE target: the running kernel's BTF, read as a plain file (no root needed)."""

KconfigValues = Mapping[str, "str | int | bool"]

_vmlinux_cache: dict[str, Spec] = {}


def default_target_btf(path: str | None = None) -> Spec | None:
    """The BTF at `path` (default `VMLINUX_BTF`) when it is readable, else None; read once per path."""
    path = path if path is not None else VMLINUX_BTF
    spec = _vmlinux_cache.get(path)
    if spec is None:
        if not os.access(path, os.R_OK):
            return None
        spec = _vmlinux_cache[path] = load_btf(path)
    return spec


@record(frozen=False, eq=False)
class VmCollection:
    """The maps and programs of one object, loaded into a `Vm` (like `bpfkit.kernel.Collection`).

    `programs` and `maps` are keyed by the names the spec uses; `core_results` says how each program's
    CO-RE relocations were resolved; `skipped` names maps left out (type not emulated, no program
    refers to them) with the reason.
    """

    spec: ObjectSpec
    vm: Vm
    programs: dict[str, VmProgram] = field(default_factory=dict)
    maps: dict[str, VmMap] = field(default_factory=dict)
    core_results: dict[str, list[CoreResult]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Release the programs' native code (idempotent); maps live as long as the VM."""
        for prog in self.programs.values():
            prog.close()

    def __enter__(self) -> VmCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VmCollection {self.spec.name}: {len(self.programs)} programs, {len(self.maps)} maps>"


@record
class ResolvedObject:
    """An object as a loader sees it just before loading: `programs` with their CO-RE relocations
    applied (`core_results` says how, per program), `maps` with the `.kconfig` contents filled."""

    programs: dict[str, ProgramSpec]
    maps: dict[str, MapSpec]
    core_results: dict[str, list[CoreResult]]


def resolve_object(spec: ObjectSpec, *, target_btf: BtfArg = None,
                   kconfig: KconfigValues | None = None) -> ResolvedObject:
    """Apply `spec`'s CO-RE relocations against `target_btf` (default: vmlinux's BTF when some program
    needs one; False: none; a `TargetBtf` to share one with the verifier) and fill its `.kconfig` map
    from `kconfig` (default: the running kernel's config).

    Raises `VmError` for CO-RE without a target BTF or a `.kconfig` extern with no value, and
    `CoreRelocationError` for malformed CO-RE records, naming the program and instruction.
    """
    where = spec.path or spec.name
    target = _target(spec, TargetBtf.of(target_btf), where)
    maps = dict(spec.maps)
    kspec = maps.get(".kconfig")
    if kspec is not None:
        maps[".kconfig"] = replace(
            kspec, contents=((bytes(4), _kconfig(spec, kspec.value_size, kconfig, where)),))
    programs: dict[str, ProgramSpec] = {}
    results: dict[str, list[CoreResult]] = {}
    cache: dict[int, list[int]] = {}
    for name, pspec in spec.programs.items():
        if pspec.core_relos:
            label = f"{where}: program {name!r} (section {pspec.section!r})"
            if spec.btf is None:
                raise VmError(f"{label}: CO-RE relocations need the object's BTF, and it has none")
            code = pspec.insns if isinstance(pspec.insns, bytes) else bytes(encode(pspec.insns))
            code, results[name] = relocate(code, pspec.core_relos, spec.btf, target, where=label,
                                           cache=cache)
            pspec = replace(pspec, insns=code, core_relos=())  # applied
        programs[name] = pspec
    return ResolvedObject(programs, maps, results)


def select_programs(spec: ObjectSpec, programs: Iterable[str]) -> ObjectSpec:
    """`spec` cut down to `programs` (names) and what they need: the maps they refer to, the maps and
    programs those maps hold initially (`MapSpec.init_slots`: tail-call targets, inner maps), again
    for those, and the externs they use. `VmError` naming the known programs for an unknown name."""
    where = spec.path or spec.name
    todo = list(programs)
    for name in todo:
        if name not in spec.programs:
            known = ", ".join(f"{n} ({p.section})" for n, p in spec.programs.items()) or "none"
            raise VmError(f"{where}: no program {name!r} (programs: {known})")
    progs: set[str] = set()
    maps: set[str] = set()
    map_todo: list[str] = []
    while todo or map_todo:
        while todo:
            name = todo.pop()
            if name in progs or name not in spec.programs:
                continue
            progs.add(name)
            map_todo += [r.target for r in spec.programs[name].references
                         if r.kind in (RefKind.MAP, RefKind.MAP_VALUE)]
        while map_todo:
            name = map_todo.pop()
            mspec = spec.maps.get(name)
            if name in maps or mspec is None:
                continue  # an undefined map: `_load_program` names it
            maps.add(name)
            for _, target in mspec.init_slots:
                (todo if mspec.type is MapType.PROG_ARRAY else map_todo).append(target)
    used = {r.target for n in progs for r in spec.programs[n].references}
    return replace(spec, programs={n: p for n, p in spec.programs.items() if n in progs},
                   maps={n: m for n, m in spec.maps.items() if n in maps},
                   externs={n: e for n, e in spec.externs.items()
                            if n in used or (e.kind is ExternKind.KCONFIG and ".kconfig" in maps)})


def load_collection(vm: Vm, spec: ObjectSpec, *, target_btf: BtfArg = None,
                    kconfig: KconfigValues | None = None, verify: bool = True,
                    programs: Iterable[str] | None = None) -> VmCollection:
    """Create `spec`'s maps and load its programs into `vm` (see the module docstring); with
    `programs` (names), only those and what they need (`select_programs`).

    Raises `VmError` naming the program and the instruction for what the VM cannot do: kernel-only
    externs (`__ksym`, kfuncs), CO-RE without a target BTF, unresolvable `.kconfig` externs, map types
    it does not emulate; `CoreRelocationError` for malformed CO-RE records; `VerificationError` (its
    report naming the object, program, instruction and source line) for a program bpfkit's verifier
    refuses, unless `verify` is False.
    """
    where = spec.path or spec.name
    if programs is not None:
        spec = select_programs(spec, programs)
    _refuse_kernel_externs(spec, where)
    target = TargetBtf.of(target_btf)  # one for CO-RE and the verifier; the kernel's read if needed
    resolved = resolve_object(spec, target_btf=target, kconfig=kconfig)
    coll = VmCollection(spec, vm)
    coll.core_results.update(resolved.core_results)
    needed = {ref.target for p in spec.programs.values() for ref in p.references
              if ref.kind in (RefKind.MAP, RefKind.MAP_VALUE)}
    for name, mspec in resolved.maps.items():
        if not _emulated(mspec.type):
            reason = f"map type {mspec.type.name} is not supported by the VM"
            users = [p.name for p in spec.programs.values()
                     if any(r.target == name for r in p.references)]
            if name in needed or any(t == name for m in spec.maps.values() for _, t in m.init_slots):
                who = f"program {users[0]!r}" if users else "another map's initial values"
                raise VmError(f"{where}: map {name!r} ({who} uses it): {reason}")
            coll.skipped[name] = reason
            continue
        if not mspec.name:
            mspec = replace(mspec, name=name)
        coll.maps[name] = vm.create_map(mspec)
    try:
        for name, pspec in resolved.programs.items():
            coll.programs[name] = _load_program(coll, name, pspec, where, verify, target)
    except BaseException:
        coll.close()  # native code of the programs loaded so far
        raise
    _fill_slots(coll, where)
    return coll


def check_standalone(pspec: ProgramSpec) -> None:
    """Refuse, in `Vm.load`, a program of an object that needs its loader: CO-RE relocations or
    `__ksym` references left unapplied would run with the compiler's local answers (a wrong r0, not
    an error). `Vm.load_object` applies them."""
    if pspec.core_relos:
        raise VmError(f"program {pspec.name!r} has {len(pspec.core_relos)} CO-RE relocations (first at "
                      f"instruction {pspec.core_relos[0].index}): load its object with "
                      "Vm.load_object(spec, target_btf=...) to apply them")
    for ref in pspec.references:
        if ref.kind in (RefKind.KSYM, RefKind.KFUNC):
            raise VmError(f"program {pspec.name!r} instruction {ref.index} refers to kernel symbol "
                          f"{ref.target!r} (__ksym): kernel-only, not supported by the VM")


def _refuse_kernel_externs(spec: ObjectSpec, where: str) -> None:
    """`__ksym` variables and kfuncs stand for kernel memory and code: the VM has neither."""
    for pspec in spec.programs.values():
        for ref in pspec.references:
            if ref.kind is RefKind.KFUNC:
                raise VmError(f"{where}: program {pspec.name!r} instruction {ref.index} calls kernel "
                              f"function {ref.target!r} (a __ksym kfunc): kernel-only, not supported by the "
                              "VM")
            if ref.kind is RefKind.KSYM:
                e = spec.externs.get(ref.target)
                what = "the address of kernel symbol" if e is not None and e.typeless else "kernel variable"
                raise VmError(f"{where}: program {pspec.name!r} instruction {ref.index} loads {what} "
                              f"{ref.target!r} (__ksym): kernel-only, not supported by the VM")
    for e in spec.externs.values():
        if e.kind is not ExternKind.KCONFIG:
            raise VmError(f"{where}: extern {e.name!r} ({e.kind.value}) is kernel-only: not supported by "
                          "the VM")


def _target(spec: ObjectSpec, target: TargetBtf, where: str) -> Spec | None:
    """The CO-RE target: the caller's, else vmlinux's BTF when some program needs one and it is there."""
    needing = [(p, r) for p in spec.programs.values() for r in p.core_relos
               if r.kind != CoreReloKind.TYPE_ID_LOCAL]
    if not needing:
        return target.get() if target.given is not None else None  # the caller's: no kernel read
    found = target.get()
    if found is None:
        pspec, relo = needing[0]
        raise VmError(f"{where}: program {pspec.name!r} instruction {relo.index} has a CO-RE relocation "
                      f"({_describe(spec, relo.type_id, relo.kind, relo.access)}) and there is no target "
                      f"BTF ({target.missing()}): pass target_btf= (--btf PATH) to say which kernel's "
                      "types to relocate against")
    return found


def _describe(spec: ObjectSpec, type_id: int, kind: CoreReloKind, access: str) -> str:
    name = spec.btf.type_str(type_id) if spec.btf is not None else f"type {type_id}"
    return f"{kind.name} of {name!r}, access {access}"


def _kconfig(spec: ObjectSpec, size: int, kconfig: KconfigValues | None, where: str) -> bytes:
    if kconfig is not None:
        config = {k: config_text(v) for k, v in kconfig.items()}
        source = "the kconfig given"
    else:
        config = read_kconfig()
        source = ("the running kernel's config" if config else
                  "the running kernel's config (neither /proc/config.gz nor /boot/config-* is readable)")
    try:
        return kconfig_value(spec.externs, size, config)
    except LinkError as err:
        raise VmError(f"{where}: .kconfig extern {err} (looked in {source}; pass kconfig= / --kconfig "
                      "NAME=VALUE)") from None


def _load_program(coll: VmCollection, name: str, pspec: ProgramSpec, where: str, verify: bool,
                  target: TargetBtf) -> VmProgram:
    """Load one program (CO-RE already applied): its maps by relocation, verified unless `verify` is
    False (with `target` when its verification needs the kernel's BTF); errors name the object and
    the program."""
    label = f"{where}: program {name!r} (section {pspec.section!r})"
    relocs = []
    maps: dict[str, VmMap] = {}
    for ref in pspec.references:
        if ref.kind in (RefKind.MAP, RefKind.MAP_VALUE):
            vm_map = coll.maps.get(ref.target)
            if vm_map is None:
                raise VmError(f"{label}: instruction {ref.index} refers to map {ref.target!r}, which the "
                              "object does not define")
            maps[ref.target] = vm_map
            relocs.append(Relocation(ref.index, ref.target))
    try:
        return coll.vm.load(pspec, maps=maps, relocations=relocs, verify=verify, btf=target)
    except VerificationError as err:  # the report names the instruction and line; add the program
        report = err.report
        raise VerificationError(replace(report, message=f"{label}: {report.message}")) from None
    except VmError as err:  # same class (VmHelperError...), now naming the object and program
        message = err.message
        if isinstance(err, VmHelperError) and message.startswith("unknown helper") and err.insn is not None:
            try:
                message += f" (bpf_{Helper(err.insn.imm).name.lower()}: not supported by the VM)"
            except ValueError:
                pass
        raise type(err)(f"{label}: {message}", err.pc, err.insn) from None
    except BpfkitError as err:
        raise VmError(f"{label}: {err}") from None


def _emulated(map_type: MapType) -> bool:
    """Whether the VM has a class for `map_type` (`bpfkit.vm.maps`, and `maps_extra` where present)."""
    if map_type in MAP_CLASSES:
        return True
    try:
        from bpfkit.vm.maps_extra import EXTRA_MAP_CLASSES
    except ImportError:  # pragma: no cover - the extra map types are optional
        return False
    return map_type in EXTRA_MAP_CLASSES


def _fill_slots(coll: VmCollection, where: str) -> None:
    """Program arrays and maps of maps get their declared initial values (`MapSpec.init_slots`)."""
    for name, mspec in coll.spec.maps.items():
        if not mspec.init_slots or name not in coll.maps:
            continue
        vm_map = coll.maps[name]
        for slot, target in mspec.init_slots:
            if isinstance(vm_map, ProgArrayMap):
                prog = coll.programs.get(target)
                if prog is None:
                    raise VmError(f"{where}: map {name!r} slot {slot}: no program {target!r}")
                vm_map.set(slot, prog)
                continue
            inner = coll.maps.get(target)
            if inner is None:
                why = coll.skipped.get(target, "the object defines no such map")
                raise VmError(f"{where}: map {name!r} slot {slot}: map {target!r} is not in the VM ({why})")
            try:
                vm_map.update(slot.to_bytes(mspec.key_size or 4, "little"), inner)
            except BpfkitError as err:
                raise VmError(f"{where}: map {name!r} ({mspec.type.name}) slot {slot} = map {target!r}: "
                              f"{err}") from None
