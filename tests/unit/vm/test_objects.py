"""`Vm.load_object` (`bpfkit.vm.objects`): whole objects in the VM, checked against the kernel-verified
test-run results of the C fixtures (tests/data/obj/MANIFEST.json, verified by
tools/build_fixtures.py --verify), CO-RE against hand-built target BTF, `.kconfig` from a dict, and the
refusals of what only a kernel has."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bpfkit._records import replace
from bpfkit.btf import Array, Int, IntEncoding, Member, Spec, Struct, load_btf, marshal
from bpfkit.errors import VerificationError, VmError, VmHelperError
from bpfkit.isa import assemble
from bpfkit.obj import ExternKind, MapSpec, ObjectSpec, ProgramSpec, Reference, RefKind, load_object
from bpfkit.obj.kconfig import read_kconfig
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm import HelperRegistry, Vm, VmProgram
from bpfkit.vm import objects as vm_objects
from bpfkit.vm.objects import VmCollection, _emulated, default_target_btf

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
MANIFEST: dict[str, Any] = json.loads((OBJ / "MANIFEST.json").read_text())
PACKETS = {name: bytes.fromhex(h) for name, h in MANIFEST["packets"].items()}
RUN_ENGINES = ("fast", "interp")

KERNEL_ONLY = {
    "core_task.o": "bpf_get_current_task",
    "iter.o": "bpf_seq_printf",
    "ksym_kfunc.o": "calls kernel function 'bpf_rcu_read_lock' (a __ksym kfunc): kernel-only",
    "ksym_percpu.o": "loads kernel variable 'bpf_prog_active' (__ksym): kernel-only",
    "ksym_typeless.o": "loads the address of kernel symbol '_stext' (__ksym): kernel-only",
}
"""Objects whose programs need what only a kernel has, and what the refusal (at load, or for a helper
with no meaning in the VM at its call) must name."""

NOT_EMULATED = {} if _emulated(MapType.ARRAY_OF_MAPS) else {
    "maps_btf.o": "map 'outer_map' (program 'maps_btf' uses it): map type ARRAY_OF_MAPS is not supported",
}
"""Objects using a map type the VM does not emulate (a gap, not a kernel-only fact)."""


def _needs_skip(spec: ObjectSpec) -> str | None:
    if any(e.kind is ExternKind.KCONFIG for e in spec.externs.values()) and not read_kconfig():
        return "no kernel config (/proc/config.gz, /boot/config-*) to fill .kconfig from"
    if any(p.core_relos for p in spec.programs.values()) and default_target_btf() is None:
        return "no /sys/kernel/btf/vmlinux to apply CO-RE relocations against"
    return None


VERIFIER_REFUSES = {
    "license_proprietary.o": "cannot call GPL-restricted function from non-GPL compatible program",
}
"""Objects `Vm.load_object` refuses at verification, with what the refusal names (the kernel refuses
license_proprietary.o too): it then loads with the explicit opt-out `verify=False`."""

NEEDS_KERNEL_BTF = {"fentry.o": "a TRACING program's context needs the kernel's BTF",
                    "lsm.o": "an LSM program's context needs the kernel's BTF"}
"""Objects whose verification needs the target kernel's BTF: verified against the running kernel's
(the VM's default), refused saying so where it is not readable (tests/unit/vm/test_target_btf.py and,
for lsm.o, tests/unit/verifier/test_lsm.py verify them against hand-built BTF on every machine)."""


def _verifier_refusal(obj: str) -> str | None:
    if obj in NEEDS_KERNEL_BTF and not os.access(vm_objects.VMLINUX_BTF, os.R_OK):
        return NEEDS_KERNEL_BTF[obj]
    return VERIFIER_REFUSES.get(obj)

OBJECTS: list[dict[str, Any]] = MANIFEST["objects"]


@pytest.mark.parametrize("engine", RUN_ENGINES)
@pytest.mark.parametrize("entry", OBJECTS, ids=[o["object"] for o in OBJECTS])
def test_fixture_runs_like_the_kernel(entry: dict[str, Any], engine: str) -> None:
    """Every recorded test run gives the kernel's retval, runs of one program sharing its maps (as
    on the kernel); kernel-only objects are refused with their reason."""
    spec = load_object(OBJ / entry["object"])
    reason = _needs_skip(spec)
    if reason:
        pytest.skip(reason)
    vm = Vm(engine=engine)  # type: ignore[arg-type]
    refusal = KERNEL_ONLY.get(entry["object"]) or NOT_EMULATED.get(entry["object"])
    runs = [(p["name"], r) for p in entry["programs"] for r in p["test_run"]]
    try:
        expected = _verifier_refusal(entry["object"])
        try:
            coll = vm.load_object(spec)
        except VerificationError as err:
            assert expected is not None, err
            assert expected in str(err), err
            assert f"program '{entry['programs'][0]['name']}'" in str(err) or len(entry["programs"]) > 1
            coll = vm.load_object(spec, verify=False)  # the opt-out: loads, runs with every check on
        else:
            assert expected is None
            assert all(prog.verified and prog.verification is not None for prog in coll.programs.values())
        got = []
        for name, run in runs:
            data = PACKETS[run["data_in"]] if "data_in" in run else b""
            ctx = bytes.fromhex(run["ctx_in_hex"]) if "ctx_in_hex" in run else None
            got.append((name, run, coll.programs[name].test_run(data, ctx).retval))
    except VmError as err:
        assert refusal is not None, err
        assert refusal in str(err), err
        return
    assert set(coll.programs) == {p["name"] for p in entry["programs"]}
    if not runs:
        pytest.skip(f"the manifest records no kernel test run for {entry['object']} "
                    f"({', '.join(p['prog_type'] for p in entry['programs'])}): nothing to compare with")
    assert refusal is None, f"{entry['object']} ran in the VM; expected a refusal naming {refusal!r}"
    assert [(name, run, retval) for name, run, retval in got if retval != run["retval"]] == []


def test_every_refusal_names_a_fixture() -> None:
    names = {o["object"] for o in MANIFEST["objects"]}
    assert set(KERNEL_ONLY) | set(NOT_EMULATED) <= names


# -- CO-RE ------------------------------------------------------------------------------------------

SIGNED = IntEncoding.SIGNED


def task_target(pid_offset: int) -> Spec:
    """A hand-built `struct task_struct` laid out unlike the kernel's and unlike the fixture's local
    flavour: comm first, flags, a 1-bit field at bit 165 (a 4-byte unit at byte 20), pid at
    `pid_offset`."""
    mems = (Member("comm", 4, 0), Member("flags", 2, 128), Member("sched_reset_on_fork", 2, 165, 1),
            Member("pid", 1, pid_offset * 8))
    types = (Int("int", 4, SIGNED), Int("unsigned int", 4), Int("char", 1, SIGNED), Array(3, 1, 16),
             Struct("task_struct", max(24, pid_offset + 4), mems))
    return load_btf(marshal(types))  # type: ignore[arg-type]


def _offsets(coll: VmCollection) -> dict[int, int]:
    return {r.index: r.target for r in coll.core_results["core_field_info"]}


@pytest.mark.parametrize("engine", RUN_ENGINES)
def test_core_against_a_reordered_target(engine: str) -> None:
    """The program sees the target's offsets: pid at 128 and at 256 pass the fixture's checks
    (offset >= 64), pid at 8 fails the check at core_field_info.c:42."""
    spec = load_object(OBJ / "core_field_info.o")
    local = {r.index: r.target for r in Vm().load_object(spec, target_btf=task_target(128))
             .core_results["core_field_info"]}
    pid_offset_insns = [i for i, t in local.items() if t == 128]
    assert pid_offset_insns, local
    for pid_offset, want in ((128, 0), (256, 0), (8, 42)):
        coll = Vm(engine=engine).load_object(spec, target_btf=task_target(pid_offset))  # type: ignore[arg-type]
        assert all(_offsets(coll)[i] == pid_offset for i in pid_offset_insns)
        assert coll.programs["core_field_info"].test_run(PACKETS["udp4"]).retval == want


def test_core_target_as_a_path(tmp_path: Path) -> None:
    spec = load_object(OBJ / "core_field_info.o")
    path = tmp_path / "target.btf"
    path.write_bytes(marshal((Int("int", 4, SIGNED), Int("unsigned int", 4), Int("char", 1, SIGNED),
                              Array(3, 1, 16), Struct("task_struct", 24, (
                                  Member("comm", 4, 0), Member("flags", 2, 128),
                                  Member("sched_reset_on_fork", 2, 165, 1), Member("pid", 1, 160)))
                              )))  # type: ignore[arg-type]
    prog = Vm().load_object(spec, target_btf=path).programs["core_field_info"]
    assert prog.test_run(PACKETS["udp4"]).retval == 42  # pid at byte 20 < 64


def test_core_without_a_target_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without /sys/kernel/btf/vmlinux: no silent wrong answers, a refusal naming the
    program and the relocation, and the way out."""
    monkeypatch.setattr(vm_objects, "VMLINUX_BTF", str(tmp_path / "no-vmlinux"))
    spec = load_object(OBJ / "core_field_info.o")
    with pytest.raises(VmError, match=r"program 'core_field_info' instruction \d+ has a CO-RE relocation "
                       r"\(FIELD_EXISTS of 'struct task_struct___info', access 0:3\).*pass target_btf="):
        Vm().load_object(spec)
    assert Vm().load_object(spec, target_btf=task_target(128)).programs  # an explicit target works


def test_core_with_the_live_kernel_btf() -> None:
    if default_target_btf() is None:
        pytest.skip("no /sys/kernel/btf/vmlinux")
    coll = Vm().load_object(load_object(OBJ / "core_type_enum.o"))
    assert coll.core_results["core_type_enum"]
    assert coll.programs["core_type_enum"].test_run(PACKETS["udp4"]).retval == 0


# -- .kconfig -------------------------------------------------------------------------------------

KCONFIG = {"CONFIG_HZ": 1000, "CONFIG_BPF_SYSCALL": True, "LINUX_KERNEL_VERSION": (6 << 16) + (18 << 8)}


def _kconfig_run(kconfig: dict[str, Any]) -> int:
    coll = Vm().load_object(load_object(OBJ / "kconfig.o"), kconfig=kconfig)
    return coll.programs["kconfig"].test_run(PACKETS["udp4"]).retval


def test_kconfig_from_a_dict() -> None:
    spec = load_object(OBJ / "kconfig.o")
    coll = Vm().load_object(spec, kconfig=KCONFIG)
    kmap = coll.maps[".kconfig"]
    value = bytes(kmap.lookup(bytes(4)))
    hz = spec.externs["CONFIG_HZ"]
    assert int.from_bytes(value[hz.offset : hz.offset + 4], "little") == 1000
    assert kmap.readonly_prog
    assert coll.programs["kconfig"].test_run(PACKETS["udp4"]).retval == 0
    assert _kconfig_run({**KCONFIG, "CONFIG_HZ": 123}) == 29  # kconfig.c:29, the CONFIG_HZ check
    assert _kconfig_run({**KCONFIG, "LINUX_KERNEL_VERSION": 4 << 16}) == 27  # >= KERNEL_VERSION(5, 0, 0)
    assert _kconfig_run({**KCONFIG, "CONFIG_DEFAULT_HOSTNAME": '"box"'}) == 0


def test_kconfig_missing_or_bad_values_are_refused() -> None:
    spec = load_object(OBJ / "kconfig.o")
    with pytest.raises(VmError, match=r"\.kconfig extern CONFIG_HZ: not set .*looked in the kconfig given"):
        Vm().load_object(spec, kconfig={"CONFIG_BPF_SYSCALL": "y"})
    with pytest.raises(VmError, match=r"CONFIG_BPF_SYSCALL: value '7' does not fit a bool"):
        Vm().load_object(spec, kconfig={**KCONFIG, "CONFIG_BPF_SYSCALL": 7})


def test_kconfig_default_is_the_live_config() -> None:
    if not read_kconfig():
        pytest.skip("no /proc/config.gz or /boot/config-*")
    assert Vm().load_object(load_object(OBJ / "kconfig.o")).programs["kconfig"].test_run(
        PACKETS["udp4"]).retval == 0


# -- maps ---------------------------------------------------------------------------------------------

def test_global_data_maps_keep_state_and_rodata_is_read_only() -> None:
    spec = load_object(OBJ / "global_data.o")
    coll = Vm().load_object(spec)
    assert coll.maps[".rodata"].readonly_prog and not coll.maps[".data"].readonly_prog
    assert bytes(coll.maps[".data"].lookup(bytes(4))) == spec.maps[".data"].contents[0][1]
    prog: VmProgram = coll.programs["global_data"]
    for _ in range(3):
        assert prog.test_run(PACKETS["udp4"]).retval == 0
    runs = spec.variables["bss_runs"]
    bss = bytes(coll.maps[".bss"].lookup(bytes(4)))
    assert int.from_bytes(bss[runs.offset : runs.offset + 8], "little") == 3



@pytest.mark.parametrize("engine", RUN_ENGINES)
def test_lsm_program_is_verified_and_runs(engine: str) -> None:
    """lsm.o (SEC("lsm/file_open"); never loaded in a kernel: project rule) passes bpfkit's verifier
    against the running kernel's BTF (bpf_lsm_file_open types its context) and runs as its C source
    says: every call allows (returns 0) and adds one to the .bss counter `file_opens`."""
    if not os.access(vm_objects.VMLINUX_BTF, os.R_OK):
        pytest.skip(f"{vm_objects.VMLINUX_BTF} is not readable: an LSM program's context needs it")
    spec = load_object(OBJ / "lsm.o")
    coll = Vm(engine=engine).load_object(spec)  # type: ignore[arg-type]
    prog: VmProgram = coll.programs["allow_file_open"]
    assert prog.verified and prog.verification is not None
    ctx = bytes(16)  # the hook's arguments as u64: struct file *file, then the return value so far
    assert [prog.test_run(b"", ctx).retval for _ in range(3)] == [0, 0, 0]
    counter = spec.variables["file_opens"]
    bss = bytes(coll.maps[".bss"].lookup(bytes(4)))
    assert int.from_bytes(bss[counter.offset : counter.offset + 8], "little") == 3

def test_set_global_before_load_reaches_the_program() -> None:
    """The skeleton pattern of rodata_config.c: cfg_enabled=1, cfg_value=1234 -> 1234."""
    spec = load_object(OBJ / "rodata_config.o")
    assert Vm().load_object(spec).programs["rodata_config"].test_run(PACKETS["udp4"]).retval == 0
    spec.set_global("cfg_enabled", 1)
    spec.set_global("cfg_value", 1234)
    assert Vm().load_object(spec).programs["rodata_config"].test_run(PACKETS["udp4"]).retval == 1234


def test_prog_array_is_filled_from_its_initialiser() -> None:
    coll = Vm().load_object(load_object(OBJ / "tail_call.o"))
    assert coll.maps["jump_table"].lookup(bytes(4)) is coll.programs["tail_target"]


def test_maps_of_maps_are_filled_from_their_initialisers() -> None:
    if not _emulated(MapType.ARRAY_OF_MAPS):
        pytest.skip("the VM does not emulate ARRAY_OF_MAPS")
    coll = Vm().load_object(load_object(OBJ / "maps_btf.o"))
    outer = coll.maps["outer_map"]
    assert outer.lookup(bytes(4)) == coll.maps["inner_a"].fd.to_bytes(4, "little")
    assert outer.lookup((1).to_bytes(4, "little")) == coll.maps["inner_b"].fd.to_bytes(4, "little")


def _sockmap_object(referenced: bool) -> ObjectSpec:
    insns = assemble("r1 = 0 ll\nr0 = 0\nexit")
    refs = (Reference(0, RefKind.MAP, "socks"),) if referenced else ()
    prog = ProgramSpec.of(ProgType.SOCKET_FILTER, insns, name="p", section="socket", references=refs)
    return ObjectSpec("t.o", programs={"p": prog},
                      maps={"socks": MapSpec(MapType.SOCKMAP, 4, 4, 1, name="socks")})


def test_unsupported_map_types() -> None:
    """Left out (with the reason) when no program refers to it, a refusal naming it otherwise."""
    coll = Vm().load_object(_sockmap_object(referenced=False))
    assert "SOCKMAP is not supported by the VM" in coll.skipped["socks"] and "socks" not in coll.maps
    assert coll.programs["p"].test_run(b"\0" * 14).retval == 0
    with pytest.raises(VmError, match=r"t.o: map 'socks' \(program 'p' uses it\): map type SOCKMAP is not "
                       "supported by the VM"):
        Vm().load_object(_sockmap_object(referenced=True))


def test_program_type_comes_from_the_section() -> None:
    spec = load_object(OBJ / "xdp.o")
    coll = Vm().load_object(spec)
    assert coll.programs["xdp_filter"].prog_type == ProgType.XDP
    assert repr(coll).startswith("<VmCollection xdp")


def test_helper_refusal_names_object_program_and_helper() -> None:
    vm = Vm(helpers=HelperRegistry())  # no helpers at all: bpf_tail_call is unknown
    with pytest.raises(VmHelperError, match=r"tail_call.o: program 'tail_caller' \(section "
                       r"'socket'\): unknown helper function 12 \(bpf_tail_call: not supported by the VM\)"):
        vm.load_object(load_object(OBJ / "tail_call.o"))


def test_vm_load_of_a_spec_needing_its_loader_is_refused() -> None:
    """`Vm.load(ProgramSpec)` alone would run the compiler's local CO-RE answers (a wrong r0)."""
    core = load_object(OBJ / "core_field_info.o").programs["core_field_info"]
    with pytest.raises(VmError, match=r"program 'core_field_info' has \d+ CO-RE relocations .*"
                       r"Vm.load_object\(spec, target_btf=...\)"):
        Vm().load(core)
    ksym = load_object(OBJ / "ksym_typeless.o").programs["ksym_typeless"]
    with pytest.raises(VmError, match=r"instruction 1 refers to kernel symbol '_stext' \(__ksym\): "
                       "kernel-only"):
        Vm().load(ksym)


# -- loading only some programs ----------------------------------------------------------------------

REFUSED = assemble("r0 = r2\nexit", "llvm")
"""Reads r2, which no program type initialises: bpfkit's verifier (and the kernel's) refuses it."""


def _with_refused(obj: str, program: str) -> ObjectSpec:
    spec = load_object(OBJ / obj)
    spec.programs[program] = replace(spec.programs[program], insns=tuple(REFUSED), references=(),
                                     line_info=b"", func_info=b"")
    return spec


def test_programs_selects_one_and_leaves_the_refused_other_out() -> None:
    spec = _with_refused("cgroup_skb.o", "drop_egress")
    with pytest.raises(VerificationError, match="drop_egress"):
        Vm().load_object(spec)
    with Vm().load_object(spec, programs=["count_ingress"]) as coll:
        assert set(coll.programs) == {"count_ingress"} and set(coll.maps) == {".bss"}
        assert coll.programs["count_ingress"].test_run(bytes(64)).retval == 1
        # ingress_bytes += skb->len: the 64-byte frame less its Ethernet header, as the kernel counts
        assert coll.maps[".bss"].lookup(bytes(4)) == (64 - 14).to_bytes(8, "little")
    with pytest.raises(VerificationError, match="drop_egress"):
        Vm().load_object(spec, programs=["drop_egress"])


def test_programs_brings_the_tail_call_targets_and_maps() -> None:
    spec = load_object(OBJ / "tail_call.o")
    with Vm().load_object(spec, programs=["tail_caller"]) as coll:
        assert set(coll.programs) == {"tail_caller", "tail_target"} and set(coll.maps) == {"jump_table"}
        assert coll.programs["tail_caller"].test_run(bytes(64)).retval == 0  # the tail call happened
    with Vm().load_object(spec, programs=["tail_target"]) as coll:
        assert set(coll.programs) == {"tail_target"} and not coll.maps
    refused = _with_refused("tail_call.o", "tail_target")
    with pytest.raises(VerificationError, match="tail_target"):  # the caller needs it
        Vm().load_object(refused, programs=["tail_caller"])


def test_programs_brings_the_inner_maps_of_a_map_of_maps() -> None:
    spec = load_object(OBJ / "maps_btf.o")
    chosen = vm_objects.select_programs(spec, ["maps_btf"])
    assert {"outer_map", "inner_a", "inner_b"} <= set(chosen.maps)
    assert set(chosen.programs) == {"maps_btf"}


def test_programs_with_an_unknown_name_is_refused() -> None:
    with pytest.raises(VmError, match=r"no program 'nope' \(programs: .*count_ingress"):
        Vm().load_object(load_object(OBJ / "cgroup_skb.o"), programs=["nope"])
