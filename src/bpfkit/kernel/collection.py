"""Load a whole object (`bpfkit.obj.ObjectSpec`) into the kernel: BTF, maps, programs, links between them.

    spec = load_object("prog.o")
    with Collection.load(spec) as coll:
        coll.programs["handler"].test_run(packet)
        coll.maps["counts"][0]

The steps follow what libbpf does for the same object, so that an object loads here iff it loads with
libbpf: load the object's BTF (optional: on refusal, maps and programs load without it); create the
maps (ring buffer sizes rounded up to a power-of-two number of pages, perf event arrays sized to the
possible CPUs, BTF key/value ids dropped where the kernel refuses them, maps pinned by name reused when
compatible); fill `.kconfig` from the kernel's config; resolve `__ksym` externs through vmlinux BTF or
/proc/kallsyms; apply CO-RE against the target BTF; write map fds into the instructions; load every
program; fill program arrays and maps of maps from their initialisers.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from typing import Any

from bpfkit._records import replace
from bpfkit.btf import Func, Spec, Typedef, Var
from bpfkit.btf.core import CoreResult, relocate, types_compatible
from bpfkit.errors import KernelError, LinkError, VerifierError
from bpfkit.kernel import objects
from bpfkit.kernel.btf import BtfHandle, vmlinux_spec
from bpfkit.kernel.cpus import possible_cpus
from bpfkit.kernel.maps import Map
from bpfkit.kernel.objects import OBJ_NAME_LEN
from bpfkit.kernel.programs import Program
from bpfkit.obj import ExternKind, MapSpec, ObjectSpec, PinType, ProgramSpec, RefKind
from bpfkit.obj.kconfig import kconfig_value, kernel_version, parse_kconfig, read_kconfig
from bpfkit.uapi.enums import AttachType, MapType, ProgType

DEFAULT_PIN_ROOT = "/sys/fs/bpf"
POISON_KFUNC_BASE = 2002000000
"""imm of a call to a missing weak kfunc (libbpf's convention; the verifier refuses it if reachable)."""

_INSN = struct.Struct("<BBhi")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LOG_INSN = re.compile(r"^(\d+): \(")
_LOG_NAMED_INSN = re.compile(r"\binsn (?:idx )?(\d+)")


class ProgramLoadError(VerifierError):
    """The verifier refused a program of an object; names the program, section, instruction and the
    source line (from line info) the verifier stopped at."""

    def __init__(self, cause: VerifierError, *, section: str, insn: int | None, source: str | None) -> None:
        super().__init__(cause.syscall, cause.errno or 0, cause.log, program=cause.program,
                         truncated=cause.truncated)
        self.section, self.insn, self.source = section, insn, source
        where = f"program {cause.program!r} (section {section!r})"
        if insn is not None:
            where += f", instruction {insn}"
        if source:
            where += f", {source}"
        self.strerror = f"{where}: {self.strerror}"
        self.args = (self.errno, self.strerror)


# ------------------------------------------------------------------------------------------ kconfig


# kernel_version, parse_kconfig, read_kconfig and kconfig_value live in bpfkit.obj.kconfig (pure,
# shared with the VM); imported above and re-exported here.


# ------------------------------------------------------------------------------------------- ksyms


def kallsyms_addresses(names: list[str], path: str = "/proc/kallsyms") -> dict[str, int]:
    """Addresses of `names` in /proc/kallsyms (vmlinux symbols first, as the kernel resolves them).
    All-zero addresses (no root, or kptr_restrict) raise `LinkError`; unknown names are left out."""
    try:
        with open(path, "rb", buffering=0) as f:  # large unbuffered reads: the kernel makes the text
            chunks = []
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
        text = b"".join(chunks).decode("ascii", "replace")
    except OSError as e:
        raise LinkError(f"cannot read {path}: {e.strerror}", names[0]) from None
    out: dict[str, int] = {}
    for name in names:
        needle = f" {name}\n"  # vmlinux lines are "addr type name"; module ones end in "\t[module]"
        at = text.find(needle)
        while at != -1:
            head = text[text.rfind("\n", 0, at) + 1 : at].split(" ")
            if len(head) == 2 and len(head[1]) == 1:
                break
            at = text.find(needle, at + 1)
        if at == -1:
            continue
        addr = int(head[0], 16)
        if addr == 0:
            raise LinkError(f"{path} shows zero addresses (needs root, or kernel.kptr_restrict is set)", name)
        out[name] = addr
    return out


# ------------------------------------------------------------------------------------------- maps


def kernel_map_name(obj_name: str, name: str) -> str:
    """The name map `name` of object `obj_name` gets in the kernel: itself, except global data maps
    (`.rodata`...), named as libbpf does: a prefix of the object name, then the section."""
    if not name.startswith(".") or name.startswith((".data.", ".rodata.")):
        return name  # custom data sections keep their section name
    room = max(0, OBJ_NAME_LEN - 1 - max(7, len(name)))  # the prefix leaves room for ".rodata"
    return (obj_name[:room] + name)[: OBJ_NAME_LEN - 1]


def pin_name(map_name: str) -> str:
    """The file name a map is pinned under: its kernel name with '.' made '_' (bpffs refuses dots)."""
    return map_name.replace(".", "_")


def _adjust(spec: MapSpec) -> MapSpec:
    """Sizes as libbpf sets them: ring buffers a power-of-two number of pages, perf event arrays one
    slot per possible CPU."""
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        size = _PAGE
        while size < spec.max_entries:
            size *= 2
        return replace(spec, max_entries=size)
    if spec.type == MapType.PERF_EVENT_ARRAY and spec.max_entries == 0:
        return replace(spec, max_entries=possible_cpus())
    return spec


def _compatible(m: Map, spec: MapSpec) -> str | None:
    """Why pinned map `m` cannot stand for `spec` (None when it can)."""
    for field, have, want in (("type", m.type, spec.type), ("key size", m.key_size, spec.key_size),
                              ("value size", m.value_size, spec.value_size),
                              ("max entries", m.max_entries, spec.max_entries),
                              ("flags", m.flags, spec.flags)):
        if int(have) != int(want):
            return f"{field} {int(have)} != {int(want)}"
    return None


# ---------------------------------------------------------------------------------------- collection


class Collection:
    """The kernel objects of one loaded BPF object: `programs` and `maps` by name, the object's `btf`.

    A context manager: closing it closes every program, map and the BTF (pins stay).
    """

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.programs: dict[str, Program] = {}
        self.maps: dict[str, Map] = {}
        self.btf: BtfHandle | None = None
        self.core_results: dict[str, list[CoreResult]] = {}
        self.pinned: dict[str, str] = {}  # map name -> pin path
        self.reused: set[str] = set()  # maps taken from an existing pin

    @classmethod
    def load(cls, spec: ObjectSpec, *, pin_root: str | os.PathLike[str] | None = None,
             kconfig: Mapping[str, str] | str | None = None, target_btf: Spec | None = None,
             log_level: int = 0, allow_legacy_maps: bool = False) -> Collection:
        """Load every map and program of `spec` (see the module docstring for the steps).

        `pin_root` is where maps with `pinning = LIBBPF_PIN_BY_NAME` live (default /sys/fs/bpf);
        `kconfig` replaces the running kernel's config (a dict or config text); `target_btf` replaces
        /sys/kernel/btf/vmlinux for CO-RE and `__ksym`/kfunc resolution. Legacy SEC("maps") map
        definitions are refused (as libbpf >= 1.0 does) unless `allow_legacy_maps`.
        Raises `LinkError` for externs and CO-RE records that cannot be resolved, `ProgramLoadError`
        when the verifier refuses a program, `KernelError` otherwise. Nothing is left open on failure.
        """
        legacy = [n for n, m in spec.maps.items() if m.section == "maps"]
        if legacy and not allow_legacy_maps:
            raise LinkError(f"{spec.path or spec.name}: legacy SEC(\"maps\") map definitions "
                            f"({', '.join(legacy)}): libbpf >= 1.0 refuses them; declare maps in "
                            "SEC(\".maps\") with BTF, or pass allow_legacy_maps=True", legacy[0])
        coll = cls(spec)
        try:
            coll._load(pin_root, kconfig, target_btf, log_level)
        except BaseException:
            coll.close(unpin=True)
            raise
        return coll

    # ---------------------------------------------------------------------------------------- steps

    def _load(self, pin_root: str | os.PathLike[str] | None, kconfig: Mapping[str, str] | str | None,
              target_btf: Spec | None, log_level: int) -> None:
        spec = self.spec
        if spec.btf is not None:
            try:
                self.btf = BtfHandle.load(spec.btf)
            except KernelError:
                self.btf = None  # BTF is optional, as for libbpf: maps and programs go without it
        root = os.fspath(pin_root) if pin_root is not None else DEFAULT_PIN_ROOT
        config: Mapping[str, str] | None = None
        for name, mspec in spec.maps.items():
            if name == ".kconfig":
                if config is None:
                    config = (parse_kconfig(kconfig) if isinstance(kconfig, str) else kconfig) \
                        if kconfig is not None else read_kconfig()
                value = kconfig_value(spec.externs, mspec.value_size, config)
                mspec = replace(mspec, contents=((bytes(4), value),))
            self.maps[name] = self._create_map(name, mspec, root)
        needs_target = any(p.core_relos for p in spec.programs.values()) or any(
            e.kind is not ExternKind.KCONFIG and not e.typeless for e in spec.externs.values())
        target = target_btf if target_btf is not None or not needs_target else vmlinux_spec()
        externs = self._resolve_externs(target)
        cache: dict[int, list[int]] = {}
        for name, pspec in spec.programs.items():
            self.programs[name] = self._load_program(name, pspec, target, externs, cache, log_level)
        self._fill_slots()

    def _create_map(self, name: str, mspec: MapSpec, root: str) -> Map:
        mspec = _adjust(mspec)
        full = kernel_map_name(self.spec.name, name) if name.startswith(".") else mspec.name or name
        mspec = replace(mspec, name=objects.kernel_name(full).decode())
        path = os.path.join(root, pin_name(full)) if mspec.pinning == PinType.BY_NAME else None
        if path is not None and os.path.exists(path):
            m = Map.from_pinned(path)
            why = _compatible(m, mspec)
            if why is not None:
                m.close()
                raise LinkError(f"map {name!r}: the map pinned at {path} differs ({why})", name)
            self.reused.add(name)
            return m
        template = self._create_btf_map(mspec.inner_map) if mspec.inner_map is not None else None
        try:
            m = self._create_btf_map(mspec, template)
        finally:
            if template is not None:
                template.close()
        m.name = name
        if path is not None:
            try:
                m.pin(path)
            except BaseException:
                m.close()
                raise
            self.pinned[name] = path
        return m

    def _create_btf_map(self, mspec: MapSpec, inner: Map | None = None) -> Map:
        """Create `mspec` with the object's BTF key/value types when it has them; without them when
        the object's BTF did not load or the kernel refuses them for this map (as libbpf retries)."""
        btf = self.btf if (mspec.btf_key_type_id or mspec.btf_value_type_id) else None
        bare = replace(mspec, btf_key_type_id=0, btf_value_type_id=0, inner_map=None)
        if btf is None:
            return Map.create(bare, inner_map=inner)
        try:
            return Map.create(replace(mspec, inner_map=None), btf=btf, inner_map=inner)
        except KernelError:
            return Map.create(bare, inner_map=inner)

    def _resolve_externs(self, target: Spec | None) -> dict[str, tuple[int, int]]:
        """extern name -> (value, kind-specific extra): BTF id or address; (-1, 0) for a missing weak."""
        out: dict[str, tuple[int, int]] = {}
        local = self.spec.btf
        typeless = [e.name for e in self.spec.externs.values() if e.kind is ExternKind.KSYM and e.typeless]
        addrs = kallsyms_addresses(typeless) if typeless else {}
        for e in self.spec.externs.values():
            if e.kind is ExternKind.KCONFIG:
                continue
            if e.kind is ExternKind.KSYM and e.typeless:
                addr = addrs.get(e.name, -1)
                if addr == -1 and not e.weak:
                    raise LinkError("no such kernel symbol in /proc/kallsyms", e.name)
                out[e.name] = (addr, 0)
                continue
            if target is None or local is None:
                raise LinkError("resolving a typed __ksym needs the kernel's BTF", e.name)
            want = Func if e.kind is ExternKind.KFUNC else Var
            found = 0
            for tid in target.find_ids(e.name, want):
                t = target.type_by_id(tid)
                ktype = getattr(t, "type_id", 0)
                if types_compatible(local, e.type_id, target, ktype):
                    found = tid
                    break
                raise LinkError(f"the kernel's {e.name!r} has type {target.type_str(ktype)!r}, "
                                f"incompatible with {local.type_str(e.type_id)!r}", e.name)
            if not found and not e.weak:
                what = "kernel function (kfunc)" if e.kind is ExternKind.KFUNC else "kernel variable"
                raise LinkError(f"no {what} of this name in the kernel's BTF", e.name)
            out[e.name] = (found or -1, 0)
        return out

    def _patch(self, pspec: ProgramSpec, code: bytearray, externs: dict[str, tuple[int, int]]) -> None:
        for ref in pspec.references:
            at = ref.index * 8
            wide = ref.kind is not RefKind.KFUNC
            if ref.index < 0 or at + (16 if wide else 8) > len(code):
                raise LinkError(f"program {pspec.name!r}: reference at instruction {ref.index} is outside "
                                f"the program ({len(code) // 8} instructions)", ref.symbol)
            c, regs, off, _imm = _INSN.unpack_from(code, at)
            if ref.kind in (RefKind.MAP, RefKind.MAP_VALUE):
                m = self.maps.get(ref.target)
                if m is None:
                    raise LinkError(f"program {pspec.name!r} instruction {ref.index}: no map {ref.target!r}",
                                    ref.symbol)
                _INSN.pack_into(code, at, c, regs, off, m.fileno())
            elif ref.kind is RefKind.KSYM:
                value, _ = externs[ref.target]
                e = self.spec.externs[ref.target]
                c2, r2, o2, _i2 = _INSN.unpack_from(code, at + 8)
                if value == -1:  # missing weak: reads as 0
                    lo = hi = 0
                    regs &= 0x0F
                elif e.typeless:
                    lo, hi = value & 0xFFFFFFFF, value >> 32
                    regs &= 0x0F
                else:
                    lo, hi = value, 0
                    regs = (regs & 0x0F) | (3 << 4)  # BPF_PSEUDO_BTF_ID
                _INSN.pack_into(code, at, c, regs, off, _s32(lo))
                _INSN.pack_into(code, at + 8, c2, r2, o2, _s32(hi))
            elif ref.kind is RefKind.KFUNC:
                value, _ = externs[ref.target]
                if value == -1:
                    _INSN.pack_into(code, at, c, regs & 0x0F, 0, POISON_KFUNC_BASE)
                else:
                    _INSN.pack_into(code, at, c, regs, 0, value)

    def _attach_btf_id(self, pspec: ProgramSpec, target: Spec | None) -> int:
        """The kernel BTF id a tracing/LSM/iterator program is loaded against (0 when none is needed)."""
        if pspec.attach_btf_id or not pspec.attach_to:
            return pspec.attach_btf_id
        eat = pspec.expected_attach_type
        name: str | None = None
        kind: type[Func] | type[Typedef] = Func
        if pspec.type == ProgType.LSM:
            name = "bpf_lsm_" + pspec.attach_to
        elif pspec.type == ProgType.TRACING and eat == AttachType.TRACE_ITER:
            name = "bpf_iter_" + pspec.attach_to
        elif pspec.type == ProgType.TRACING and eat == AttachType.TRACE_RAW_TP:
            name, kind = "btf_trace_" + pspec.attach_to, Typedef
        elif pspec.type == ProgType.TRACING:
            name = pspec.attach_to
        if name is None:
            return 0
        target = target if target is not None else vmlinux_spec()
        ids = target.find_ids(name, kind)
        if not ids:
            raise LinkError(f"program {pspec.name!r} (section {pspec.section!r}): no {name!r} in the "
                            "kernel's BTF to attach to", name)
        return ids[0]

    def _load_program(self, name: str, pspec: ProgramSpec, target: Spec | None,
                      externs: dict[str, tuple[int, int]], cache: dict[int, list[int]],
                      log_level: int) -> Program:
        where = f"{self.spec.path or self.spec.name}: program {name!r} (section {pspec.section!r})"
        code = pspec.insns if isinstance(pspec.insns, bytes) else _encode(pspec.insns)
        if pspec.core_relos:
            if self.spec.btf is None:
                raise LinkError(f"{where}: CO-RE relocations need the object's BTF")
            code, results = relocate(code, pspec.core_relos, self.spec.btf, target, where=where,
                                     cache=cache)
            self.core_results[name] = results
        buf = bytearray(code)
        self._patch(pspec, buf, externs)
        attach_id = self._attach_btf_id(pspec, target)
        kwargs: dict[str, Any] = {}
        if self.btf is None:
            kwargs.update(func_info=b"", line_info=b"")
        else:
            kwargs["btf"] = self.btf
        load_spec = replace(pspec, insns=bytes(buf), attach_btf_id=attach_id,
                                        kern_version=pspec.kern_version or self.spec.kern_version)
        try:
            return Program.load(load_spec, log_level=log_level, **kwargs)
        except VerifierError as e:
            insn = _failing_insn(e.log)
            raise ProgramLoadError(e, section=pspec.section, insn=insn,
                                   source=_source_line(pspec, insn)) from None
        except KernelError as e:
            text, head = str(e.strerror), f"{e.syscall}: {e.errno_name} ("
            cut = text.find("): ", len(head)) if text.startswith(head) else -1
            detail = text[cut + 3:] if cut >= 0 else text
            raise KernelError(e.syscall, e.errno or 0, f"{where}: {detail}") from None

    def _fill_slots(self) -> None:
        for name, mspec in self.spec.maps.items():
            if not mspec.init_slots or name in self.reused:
                continue
            m = self.maps[name]
            for slot, target in mspec.init_slots:
                obj: Program | Map | None = (self.programs.get(target) if mspec.type == MapType.PROG_ARRAY
                                             else self.maps.get(target))
                if obj is None:
                    raise LinkError(f"map {name!r} slot {slot}: no program or map {target!r}", target)
                m.update(slot.to_bytes(4, "little"), obj.fileno().to_bytes(4, "little"))

    # ---------------------------------------------------------------------------------------- closing

    def close(self, *, unpin: bool = False) -> None:
        """Close every program, map and the BTF (idempotent). `unpin` also removes the pins this
        collection created."""
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        if self.btf is not None:
            self.btf.close()
        if unpin:
            self.unpin()

    def unpin(self) -> None:
        """Remove the map pins this collection created (not the reused ones)."""
        for path in self.pinned.values():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.pinned.clear()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Collection {self.spec.name}: {len(self.programs)} programs, {len(self.maps)} maps>"


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _encode(insns: Any) -> bytes:
    from bpfkit.isa import encode

    return bytes(encode(insns))


def _failing_insn(log: str) -> int | None:
    """The index of the last instruction the verifier printed before giving up."""
    last = None
    for line in log.splitlines():
        m = _LOG_INSN.match(line)
        if m:
            last = int(m.group(1))
    if last is None:  # checks before the walk name the instruction in the text: "unreachable insn 7"
        found = _LOG_NAMED_INSN.findall(log)
        last = int(found[-1]) if found else None
    return last


def _source_line(pspec: ProgramSpec, insn: int | None) -> str | None:
    """`file:line: text` of the line_info record covering instruction `insn`."""
    if insn is None or not pspec.lines:
        return None
    best = None
    for ln in pspec.lines:
        if ln.index <= insn and (best is None or ln.index >= best.index):
            best = ln
    if best is None:
        return None
    return f"{best.file}:{best.line}: {best.text.strip()}"


__all__ = ["Collection", "ProgramLoadError", "kconfig_value", "kernel_map_name", "kernel_version",
           "parse_kconfig", "pin_name", "read_kconfig"]
