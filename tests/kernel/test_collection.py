"""Loading whole objects (`Collection.load`) against the kernel, with libbpf (through bpftool) as oracle.

Every fixture of tests/data/obj loads through bpfkit iff it loads through libbpf (the manifest's
`expect_load`, recorded with `bpftool prog loadall`, and checked live when bpftool is installed);
self-checking fixtures return their manifest retval under BPF_PROG_TEST_RUN; the CO-RE fixtures'
relocated programs are, after the verifier, instruction for instruction those libbpf loads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bpfkit._records import replace
from bpfkit.errors import KernelError, LinkError
from bpfkit.kernel.collection import Collection, ProgramLoadError
from bpfkit.kernel.programs import Program
from bpfkit.obj import load_object

pytestmark = pytest.mark.kernel

OBJ = Path(__file__).resolve().parents[1] / "data" / "obj"
MANIFEST: dict[str, Any] = json.loads((OBJ / "MANIFEST.json").read_text())
OBJECTS: list[dict[str, Any]] = MANIFEST["objects"]
BPFTOOL = shutil.which("bpftool")
BPFFS = Path("/sys/fs/bpf")


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    """A fresh directory on the bpf file system, removed (with anything pinned in it) afterwards."""
    if not BPFFS.is_dir():
        pytest.skip("no bpf file system at /sys/fs/bpf")
    d = BPFFS / f"bpfkit_coll_{uuid.uuid4().hex[:8]}"
    d.mkdir()
    try:
        yield d
    finally:
        for p in sorted(d.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        d.rmdir()


def _bpftool_loads(obj: str, pin: Path) -> tuple[bool, str]:
    """Load `obj` with libbpf (bpftool prog loadall), programs pinned under `pin`/progs. libbpf pins
    maps marked LIBBPF_PIN_BY_NAME under /sys/fs/bpf: those it creates are removed again."""
    assert BPFTOOL is not None
    target = pin / "progs"
    by_name = [BPFFS / n for n, m in load_object(OBJ / obj).maps.items() if m.pinning]
    existed = {p for p in by_name if p.exists()}
    try:
        r = subprocess.run([BPFTOOL, "prog", "loadall", str(OBJ / obj), str(target)],
                           capture_output=True, text=True, timeout=120)
    finally:
        for p in by_name:
            if p not in existed and p.exists():
                p.unlink()
    return r.returncode == 0, r.stderr[-400:]


def _packet(name: str) -> bytes:
    return bytes.fromhex(MANIFEST["packets"].get(name, name))


@pytest.mark.parametrize("entry", OBJECTS, ids=[o["object"] for o in OBJECTS])
def test_loads_iff_libbpf_loads(entry: dict[str, Any], pin_dir: Path) -> None:
    if entry["never_load"]:
        pytest.skip(f"{entry['object']}: {entry['never_load']}")
    spec = load_object(OBJ / entry["object"])
    err: Exception | None = None
    try:
        coll = Collection.load(spec, pin_root=pin_dir)
    except (KernelError, LinkError) as e:
        err = e
    else:
        coll.close(unpin=True)
    assert (err is None) == entry["expect_load"], f"manifest expect_load={entry['expect_load']}: {err}"
    if err is not None:
        assert spec.programs or spec.maps
        text = str(err)
        assert entry["object"] in text or "program '" in text or isinstance(err, LinkError), text
    if BPFTOOL is not None:
        ok, stderr = _bpftool_loads(entry["object"], pin_dir)
        assert ok == (err is None), f"bpftool loadall: {ok} ({stderr}); bpfkit: {err}"


def _run_cases() -> list[Any]:
    cases = []
    for o in OBJECTS:
        if not o["expect_load"]:
            continue
        for p in o["programs"]:
            for i, run in enumerate(p["test_run"]):
                cases.append(pytest.param(o["object"], p["name"], run, id=f"{o['object']}:{p['name']}:{i}"))
    return cases


@pytest.mark.parametrize(("obj", "prog", "run"), _run_cases())
def test_self_checking_fixture_returns_manifest_retval(obj: str, prog: str, run: dict[str, Any],
                                                       pin_dir: Path) -> None:
    spec = load_object(OBJ / obj)
    with Collection.load(spec, pin_root=pin_dir) as coll:
        try:
            p = coll.programs[prog]
            if "ctx_in_hex" in run:
                # raw_tp test runs take no ctx_out and only repeat = 0 (net/bpf/test_run.c)
                res = p.test_run(ctx_in=bytes.fromhex(run["ctx_in_hex"]), ctx_out_size=0, repeat=0)
            else:
                res = p.test_run(_packet(run["data_in"]))
            assert res.retval == run["retval"], f"{obj}:{prog} failed at source line {res.retval}"
        finally:
            coll.unpin()


@pytest.mark.parametrize("obj", ["core_task.o", "core_field_info.o", "core_type_enum.o"])
def test_core_programs_match_libbpf_after_the_verifier(obj: str, pin_dir: Path) -> None:
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed: no libbpf oracle")
    spec = load_object(OBJ / obj)
    ok, stderr = _bpftool_loads(obj, pin_dir)
    assert ok, stderr
    with Collection.load(spec) as coll:
        assert coll.core_results
        for name, prog in coll.programs.items():
            with Program.from_pinned(pin_dir / "progs" / name) as theirs:
                assert prog.xlated() == theirs.xlated(), f"{obj}:{name} differs from libbpf's"


def test_core_results_describe_each_relocation() -> None:
    spec = load_object(OBJ / "core_field_info.o")
    with Collection.load(spec) as coll:
        results = coll.core_results["core_field_info"]
    assert len(results) == len(spec.programs["core_field_info"].core_relos)
    missing = [r for r in results if r.target_type_id == 0]
    assert missing and all(r.target == 0 and not r.poisoned for r in missing)  # existence checks: 0


def test_pinned_maps_are_reused(pin_dir: Path) -> None:
    spec = load_object(OBJ / "maps_btf.o")
    pinned = [n for n, m in spec.maps.items() if m.pinning]
    assert pinned == ["bpfkit_fixture_pinned"]
    with Collection.load(spec, pin_root=pin_dir) as first:
        assert (pin_dir / "bpfkit_fixture_pinned").exists()
        m1 = first.maps["bpfkit_fixture_pinned"]
        m1[(7).to_bytes(4, "little")] = (1234).to_bytes(4, "little")
        with Collection.load(load_object(OBJ / "maps_btf.o"), pin_root=pin_dir) as second:
            m2 = second.maps["bpfkit_fixture_pinned"]
            assert "bpfkit_fixture_pinned" in second.reused
            assert m2.id == m1.id
            assert bytes(m2[(7).to_bytes(4, "little")]) == (1234).to_bytes(4, "little")
            assert second.maps["hash_map"].id != first.maps["hash_map"].id
        first.close(unpin=True)
    assert not (pin_dir / "bpfkit_fixture_pinned").exists()


def test_incompatible_pinned_map_is_refused(pin_dir: Path) -> None:
    from bpfkit.kernel.maps import Map
    from bpfkit.obj import MapSpec
    from bpfkit.uapi.enums import MapType

    with Map.create(MapSpec(MapType.ARRAY, 4, 8, 2, name="other")) as other:
        other.pin(pin_dir / "bpfkit_fixture_pinned")
    with pytest.raises(LinkError, match="differs"):
        Collection.load(load_object(OBJ / "maps_btf.o"), pin_root=pin_dir)


def test_verifier_refusal_names_program_instruction_and_source_line() -> None:
    spec = load_object(OBJ / "license_proprietary.o")
    with pytest.raises(ProgramLoadError) as info:
        Collection.load(spec)
    e = info.value
    assert e.program == "license_proprietary" and e.section == "raw_tp/sys_enter"
    assert e.insn is not None and e.source is not None
    assert "license_proprietary.c:" in e.source
    assert f"instruction {e.insn}" in str(e) and "GPL" in e.log


def test_rodata_is_frozen_and_globals_can_be_set() -> None:
    spec = load_object(OBJ / "rodata_config.o")
    with Collection.load(spec) as coll:
        m = coll.maps[".rodata"]
        assert m.name == ".rodata"
        with pytest.raises(KernelError):
            m[bytes(4)] = bytes(m.value_size)


def test_kconfig_override_reaches_the_program() -> None:
    spec = load_object(OBJ / "kconfig.o")
    with Collection.load(spec, kconfig={"CONFIG_HZ": "1000", "CONFIG_BPF_SYSCALL": "y"}) as coll:
        assert coll.programs["kconfig"].test_run(_packet("udp4")).retval == 0
    # CONFIG_HZ=123 is a value the program rejects: it returns the failing line
    with Collection.load(spec, kconfig={"CONFIG_HZ": "123", "CONFIG_BPF_SYSCALL": "y"}) as coll:
        assert coll.programs["kconfig"].test_run(_packet("udp4")).retval != 0
    with pytest.raises(LinkError, match="CONFIG_BPF_SYSCALL"):
        Collection.load(spec, kconfig={"CONFIG_HZ": "100"})


def test_failed_load_leaves_no_pins(pin_dir: Path) -> None:
    spec = load_object(OBJ / "maps_btf.o")
    prog = spec.programs["maps_btf"]
    assert isinstance(prog.insns, bytes)
    # first instruction reads r9, which is never set: the verifier refuses it at instruction 0
    spec.programs["maps_btf"] = replace(prog, insns=b"\x79\x90" + bytes(6) + prog.insns[8:])
    with pytest.raises(ProgramLoadError) as info:
        Collection.load(spec, pin_root=pin_dir)
    assert info.value.insn == 0 and info.value.source is not None and "maps_btf.c" in info.value.source
    assert not list(pin_dir.iterdir())


def test_reference_outside_the_program_is_a_link_error() -> None:
    spec = load_object(OBJ / "maps_btf.o")
    prog = spec.programs["maps_btf"]
    spec.programs["maps_btf"] = replace(prog, insns=b"\x95" + bytes(7))
    with pytest.raises(LinkError, match="instruction 11"):
        Collection.load(spec)


@pytest.mark.parametrize("obj", ["global_data.o", "tail_call.o", "cgroup_skb.o"])
def test_cli_loadall_pins_what_bpftool_pins(obj: str, pin_dir: Path) -> None:
    from bpfkit.cli.main import main

    ours, ours_maps = pin_dir / "ours", pin_dir / "ours_maps"
    assert main(["prog", "loadall", str(OBJ / obj), str(ours), "pinmaps", str(ours_maps)]) == 0
    for prog in load_object(OBJ / obj).programs:
        with Program.from_pinned(ours / prog) as p:
            assert p.name == prog[:15]
    if BPFTOOL is None:
        return
    theirs, theirs_maps = pin_dir / "theirs", pin_dir / "theirs_maps"
    r = subprocess.run([BPFTOOL, "prog", "loadall", str(OBJ / obj), str(theirs), "pinmaps", str(theirs_maps)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
    assert sorted(p.name for p in ours_maps.iterdir()) == sorted(p.name for p in theirs_maps.iterdir())


def test_cli_load_pins_the_first_program_and_cleans_up_on_failure(pin_dir: Path) -> None:
    from bpfkit.cli.main import main

    assert main(["prog", "load", str(OBJ / "xdp.o"), str(pin_dir / "xdp")]) == 0
    with Program.from_pinned(pin_dir / "xdp") as p:
        assert p.name == "xdp_filter"
    assert main(["prog", "loadall", str(OBJ / "license_proprietary.o"), str(pin_dir / "lp")]) == 1
    assert sorted(p.name for p in pin_dir.iterdir()) == ["xdp"]


def test_map_sizes_are_adjusted_as_libbpf_does() -> None:
    from bpfkit.kernel.cpus import possible_cpus
    from bpfkit.obj import MapSpec, ObjectSpec
    from bpfkit.uapi.enums import MapType

    spec = ObjectSpec("sizes", maps={
        "events": MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 0, name="events"),
        "rb": MapSpec(MapType.RINGBUF, 0, 0, 5000, name="rb"),
    })
    with Collection.load(spec) as coll:
        assert coll.maps["events"].info().max_entries == possible_cpus()
        assert coll.maps["rb"].info().max_entries == 8192  # a power-of-two number of pages
