"""`bpfkit prog|map|link|btf|feature` against bpftool (the oracle) on objects this test makes.

For each command both tools print JSON about the same kernel objects; every field bpftool reports
must be reported by bpfkit with the same value (bpftool's "pids" aside, which needs its BPF iterator).
The write commands (map create/update/delete/freeze/pin, prog pin, link detach) are checked by
reading their effect back with bpftool.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bpfkit.cli import map_cmds
from bpfkit.cli.main import main
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program, enable_stats
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapFlags, MapType, ProgType

from .test_introspect import RET_1, cgroup, cgroup_link, prog_using, raw_tp_link

pytestmark = pytest.mark.kernel
__all__ = ["cgroup"]  # the fixture, imported for the link tests

BPFTOOL = shutil.which("bpftool")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed (the oracle)")

ONLY_BPFTOOL = {"pids"}  # needs bpftool's own BPF iterator: not a field of the object


def bpftool(*args: str) -> Any:
    assert BPFTOOL is not None
    out = subprocess.run([BPFTOOL, "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else None


def bpfkit(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    code = main([*args, "-j"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out) if captured.out.strip() else None


def assert_agrees(ours: dict[str, Any], theirs: dict[str, Any], *, loose: frozenset[str] = frozenset()
                  ) -> None:
    """Every field bpftool prints is in `ours` with the same value (fields in `loose`: within 1)."""
    for key, value in theirs.items():
        if key in ONLY_BPFTOOL:
            continue
        assert key in ours, f"bpfkit lacks {key!r} (bpftool: {value!r}) in {ours}"
        if key in loose:
            assert abs(ours[key] - value) <= 1, (key, ours[key], value)
        else:
            assert ours[key] == value, (key, ours[key], value)


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    d = Path("/sys/fs/bpf") / f"bpfkit-cli-{os.getpid()}"
    d.mkdir()
    try:
        yield d
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


# --- prog -------------------------------------------------------------------------------------------------

def helper_prog(m: Map) -> Program:
    """Looks a key up in `m` (a map load, a helper call, a branch): r0 = found ? 2 : 1."""
    ld = bytes([0x18, 0x11, 0, 0]) + m.fileno().to_bytes(4, "little") + bytes(8)
    slot = struct.Struct("<BBhi").pack
    code = (ld + slot(0x62, 0x0A, -4, 0) + slot(0xBF, 0xA2, 0, 0) + slot(0x07, 0x02, 0, -4)
            + slot(0x85, 0, 0, 1) + slot(0xB7, 0x01, 0, 1) + slot(0x15, 0x00, 1, 0) + slot(0xB7, 0x01, 0, 2)
            + slot(0xBF, 0x10, 0, 0) + slot(0x95, 0, 0, 0))
    return Program.load(code, ProgType.XDP, name="oracle_xdp", license="GPL")


@needs_bpftool
def test_prog_list_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 8, 4, name="pl_map")) as m, helper_prog(m) as p, \
            Program.load(RET_1, ProgType.SOCKET_FILTER, name="plain", license="MIT") as q:
        with enable_stats():
            p.test_run(bytes(64), repeat=3)
            theirs = {r["id"]: r for r in bpftool("prog", "list")}
            ours = {r["id"]: r for r in bpfkit(capsys, "prog", "list")}
        for prog in (p, q):
            listed = theirs[prog.id]
            if prog.info().btf_id == 0:
                listed.pop("btf_id", None)  # bpftool 7.1 may repeat an earlier object's (see map list)
            assert_agrees(ours[prog.id], listed, loose=frozenset({"loaded_at"}))
        assert theirs[p.id]["run_cnt"] == 3 and theirs[p.id]["map_ids"] == [m.id]
        assert theirs[q.id]["gpl_compatible"] is False
        one = bpftool("prog", "show", "id", str(p.id))
        assert_agrees(bpfkit(capsys, "prog", "show", "id", str(p.id)), one, loose=frozenset({"loaded_at"}))


@needs_bpftool
def test_prog_dump_xlated_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    with Map.create(MapSpec(MapType.HASH, 4, 8, 4, name="x_map")) as m, helper_prog(m) as p:
        theirs = [r["disasm"] for r in bpftool("prog", "dump", "xlated", "id", str(p.id))]
        ours = [r["disasm"] for r in bpfkit(capsys, "prog", "dump", "xlated", "id", str(p.id))]
    assert len(ours) == len(theirs)
    # Same instructions (the opcode each line starts with); map loads and helper calls word for word.
    assert [line.split()[0] for line in ours] == [line.split()[0] for line in theirs]
    exact = [i for i, line in enumerate(theirs) if "map[" in line or " call " in line]
    assert len(exact) == 2
    assert [ours[i] for i in exact] == [theirs[i] for i in exact]


@needs_bpftool
def test_prog_run_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pkt"
    data.write_bytes(bytes(range(64)))
    with Map.create(MapSpec(MapType.HASH, 4, 8, 4, name="r_map"), key=int, value=int) as m, \
            helper_prog(m) as p:
        for expect in (1, 2):
            ours = bpfkit(capsys, "prog", "run", "id", str(p.id), "data_in", str(data), "data_out",
                          str(tmp_path / "out"))
            theirs = bpftool("prog", "run", "id", str(p.id), "data_in", str(data))
            assert ours["retval"] == theirs["retval"] == expect
            assert (tmp_path / "out").read_bytes() == data.read_bytes()  # XDP_PASS leaves the packet
            m[0] = 7  # the lookup of key 0 now finds it


@needs_bpftool
def test_prog_pin_is_seen_by_bpftool(pin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Program.load(RET_1, ProgType.SOCKET_FILTER, name="pinme", license="GPL") as p:
        bpfkit(capsys, "prog", "pin", "id", str(p.id), str(pin_dir / "p"))
        assert bpftool("prog", "show", "pinned", str(pin_dir / "p"))["id"] == p.id


# --- map --------------------------------------------------------------------------------------------------

MAP_SPECS = [
    MapSpec(MapType.HASH, 4, 8, 64, MapFlags.NO_PREALLOC, name="o_hash"),
    MapSpec(MapType.ARRAY, 4, 8, 8, name="o_array"),
    MapSpec(MapType.PERCPU_HASH, 8, 4, 16, name="o_pchash"),
    MapSpec(MapType.PERCPU_ARRAY, 4, 12, 4, name="o_pcarray"),
    MapSpec(MapType.LRU_HASH, 16, 3, 32, name="o_lru"),
    MapSpec(MapType.LPM_TRIE, 8, 4, 16, MapFlags.NO_PREALLOC, name="o_lpm"),
]


@pytest.fixture
def filled_maps() -> Iterator[list[Map]]:
    made: list[Map] = []
    try:
        for spec in MAP_SPECS:
            m = Map.create(spec)
            made.append(m)
            n = min(spec.max_entries, 20)
            for i in range(n):
                if spec.type == MapType.LPM_TRIE:
                    key = struct.pack("<I", 32) + bytes([10, 0, i, 1])
                else:
                    key = (i * 7 + 1).to_bytes(spec.key_size, "little") if spec.type not in (
                        MapType.ARRAY, MapType.PERCPU_ARRAY) else i.to_bytes(4, "little")
                value = bytes((i + j) & 0xFF for j in range(spec.value_size))
                m.update(key, [value] * m.ncpus if m.is_percpu else value)
        yield made
    finally:
        for m in made:
            m.close()


@needs_bpftool
def test_map_list_agrees(filled_maps: list[Map], capsys: pytest.CaptureFixture[str]) -> None:
    with Map.create(MapSpec(MapType.QUEUE, 0, 4, 4, name="o_queue")) as q, \
            Map.create(MapSpec(MapType.BLOOM_FILTER, 0, 8, 100, name="o_bloom", map_extra=3)) as b:
        filled_maps[1].freeze()
        theirs = {r["id"]: r for r in bpftool("map", "list")}
        ours = {r["id"]: r for r in bpfkit(capsys, "map", "list")}
        for m in [*filled_maps, q, b]:
            listed = theirs[m.id]
            if m.info().btf_id == 0:
                # bpftool 7.1's `map list` repeats the btf_id of the last map with BTF for the maps
                # after it that have none; `map show id N` does not.
                listed.pop("btf_id", None)
            assert_agrees(ours[m.id], listed)
            assert_agrees(ours[m.id], bpftool("map", "show", "id", str(m.id)))
        assert theirs[filled_maps[1].id]["frozen"] == 1
        assert_agrees(bpfkit(capsys, "map", "show", "name", "o_lru"), bpftool("map", "show", "name", "o_lru"))


@needs_bpftool
def test_map_dump_agrees(filled_maps: list[Map], capsys: pytest.CaptureFixture[str]) -> None:
    for m in filled_maps:
        theirs = bpftool("map", "dump", "id", str(m.id))
        ours = bpfkit(capsys, "map", "dump", "id", str(m.id))
        assert len(theirs) >= 4, m  # the map holds elements: the comparison is not vacuous
        key = json.dumps
        assert sorted(ours, key=key) == sorted(theirs, key=key), m


@needs_bpftool
def test_map_dump_of_fd_maps_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    """Maps holding programs and maps read back as their ids."""
    with Map.create(MapSpec(MapType.PROG_ARRAY, 4, 4, 4, name="o_progs")) as pa, \
            Program.load(RET_1, ProgType.XDP, name="o_tail", license="GPL") as p, \
            Map.create(MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="o_aom",
                               inner_map=MapSpec(MapType.ARRAY, 4, 4, 1))) as aom, \
            Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="o_inner")) as inner:
        pa.update(b"\1\0\0\0", p)
        aom.update(b"\0\0\0\0", inner)
        for m, expect in ((pa, p.id), (aom, inner.id)):
            theirs = bpftool("map", "dump", "id", str(m.id))
            assert bpfkit(capsys, "map", "dump", "id", str(m.id)) == theirs
            assert theirs[0]["value"] == [f"0x{b:02x}" for b in expect.to_bytes(4, "little")]


@needs_bpftool
def test_map_dump_text_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert BPFTOOL is not None
    with Map.create(MapSpec(MapType.HASH, 4, 8, 8, name="o_text"), key=int, value=int) as m:
        for i in range(5):
            m[i] = i * 1000
        theirs = subprocess.run([BPFTOOL, "map", "dump", "id", str(m.id)], check=True, capture_output=True,
                                text=True).stdout.splitlines()
        capsys.readouterr()
        assert main(["map", "dump", "id", str(m.id)]) == 0
        ours = capsys.readouterr().out.splitlines()
    assert sorted(ours[:-1]) == sorted(theirs[:-1]) and ours[-1] == theirs[-1] == "Found 5 elements"


@needs_bpftool
def test_map_lookup_agrees(filled_maps: list[Map], capsys: pytest.CaptureFixture[str]) -> None:
    for m in filled_maps[:4]:
        key = ["1", "0", "0", "0"] + ["0"] * (m.key_size - 4)
        assert bpfkit(capsys, "map", "lookup", "id", str(m.id), "key", *key) == \
            bpftool("map", "lookup", "id", str(m.id), "key", *key)


@needs_bpftool
def test_map_write_commands_are_seen_by_bpftool(pin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(pin_dir / "m")
    bpfkit(capsys, "map", "create", path, "type", "hash", "key", "4", "value", "4", "entries", "8", "name",
           "cli_made", "flags", "1")
    shown = bpftool("map", "show", "pinned", path)
    assert (shown["type"], shown["name"], shown["flags"], shown["bytes_key"], shown["bytes_value"],
            shown["max_entries"]) == ("hash", "cli_made", 1, 4, 4, 8)
    bpfkit(capsys, "map", "update", "pinned", path, "key", "7", "0", "0", "0", "value", "hex", "de", "ad",
           "be", "ef", "noexist")
    assert bpftool("map", "lookup", "pinned", path, "key", "7", "0", "0", "0")["value"] == \
        ["0xde", "0xad", "0xbe", "0xef"]
    assert main(["map", "update", "pinned", path, "key", "7", "0", "0", "0", "value", "1", "2", "3", "4",
                 "noexist"]) == 1
    assert "EEXIST" in capsys.readouterr().err
    bpfkit(capsys, "map", "pin", "pinned", path, str(pin_dir / "again"))
    assert bpftool("map", "show", "pinned", str(pin_dir / "again"))["id"] == shown["id"]
    bpfkit(capsys, "map", "delete", "id", str(shown["id"]), "key", "7", "0", "0", "0")
    assert bpftool("map", "dump", "pinned", path) == []
    bpfkit(capsys, "map", "freeze", "pinned", path)
    assert bpftool("map", "show", "pinned", path)["frozen"] == 1


# --- link, btf, feature -------------------------------------------------------------------------------------

@needs_bpftool
def test_link_list_agrees_and_detach(cgroup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Program.load(RET_1, ProgType.RAW_TRACEPOINT, name="o_rtp", license="GPL") as rp, \
            raw_tp_link(rp) as rl, Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="o_cg")) as m, \
            prog_using(m, ProgType.CGROUP_SKB, "o_cgskb") as cp, cgroup_link(cp, cgroup) as cl:
        theirs = {r["id"]: r for r in bpftool("link", "list")}
        ours = {r["id"]: r for r in bpfkit(capsys, "link", "list")}
        for link in (rl, cl):
            assert_agrees(ours[link.id], theirs[link.id])
        assert theirs[rl.id]["tp_name"] == "sys_enter" and theirs[cl.id]["cgroup_id"] == cgroup.stat().st_ino
        bpfkit(capsys, "link", "detach", "id", str(cl.id))
        after = bpftool("link", "show", "id", str(cl.id))
        assert after["cgroup_id"] == 0
        assert_agrees(bpfkit(capsys, "link", "show", "id", str(cl.id)), after)


@needs_bpftool
def test_btf_list_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    theirs = {r["id"]: r for r in bpftool("btf", "list")}
    ours = {r["id"]: r for r in bpfkit(capsys, "btf", "list")}
    vmlinux = [i for i, r in theirs.items() if r.get("name") == "vmlinux"]
    assert vmlinux
    for i in vmlinux:
        assert_agrees(ours[i], {k: v for k, v in theirs[i].items() if k not in ("prog_ids", "map_ids")})


@needs_bpftool
def test_feature_probe_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    theirs = bpftool("feature", "probe", "kernel", "full")
    ours = bpfkit(capsys, "feature", "probe", "kernel")
    for section in ("program_types", "map_types"):
        shared = theirs[section].keys() & ours[section].keys()
        assert len(shared) > 20
        assert {k: ours[section][k] for k in shared} == {k: theirs[section][k] for k in shared}
    # bpftool 7.1 (libbpf 1.1) calls a helper missing only on "invalid func"/"unknown func"; newer
    # kernels refuse a helper a program type may not use with "program of this type cannot use
    # helper", which it takes for success. So its lists are supersets: every helper bpfkit finds must
    # be in bpftool's list, unless bpftool does not know the helper at all (newer than its libbpf).
    known = {h for names in theirs["helpers"].values() for h in names}
    checked = 0
    for key, names in ours["helpers"].items():
        if key in theirs["helpers"]:
            missing = {h for h in names if h in known} - set(theirs["helpers"][key])
            assert not missing, (key, sorted(missing))
            checked += len(names)
    assert checked > 1000


# Run inside a network namespace of the test's own: make a veth pair, attach an XDP and a tcx link to
# it, and print what bpfkit and bpftool list, before and after `bpfkit link detach`.
_NETNS_SCRIPT = r"""
import json, socket, subprocess, sys
from bpfkit.cli import map_cmds
from bpfkit.cli.main import main
from bpfkit.kernel import current
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.links import Link
from bpfkit.kernel.programs import Program
from bpfkit.uapi.attr import LinkCreateAttr
from bpfkit.uapi.enums import AttachType, Cmd, ProgType

subprocess.run(["ip", "link", "add", "bkv0", "type", "veth", "peer", "name", "bkv1"], check=True)
ifindex = socket.if_nametoindex("bkv0")
code = bytes.fromhex("b700000002000000" "9500000000000000")
report = {"ifindex": ifindex}
with Program.load(code, ProgType.XDP, name="ns_xdp", license="GPL",
                  expected_attach_type=AttachType.XDP) as xdp, \
        Program.load(code, ProgType.SCHED_CLS, name="ns_tcx", license="GPL",
                     expected_attach_type=AttachType.TCX_INGRESS) as tcx:
    links = []
    for prog, kind in ((xdp, AttachType.XDP), (tcx, AttachType.TCX_INGRESS)):
        attr = LinkCreateAttr(prog_fd=prog.fileno(), target_ifindex=ifindex, attach_type=kind)
        links.append(Link.from_fd(Fd(current().bpf(Cmd.LINK_CREATE, attr), "link")))
    report["ids"] = [link.id for link in links]
    report["progs"] = [xdp.id, tcx.id]

    def both(tag):
        report["bpftool_" + tag] = json.loads(subprocess.run(["bpftool", "-j", "link", "list"], check=True,
                                                             capture_output=True, text=True).stdout)
        out = subprocess.run([sys.executable, "-m", "bpfkit", "link", "list", "-j"], check=True,
                             capture_output=True, text=True).stdout
        report["bpfkit_" + tag] = json.loads(out)

    both("attached")
    subprocess.run([sys.executable, "-m", "bpfkit", "link", "detach", "id", str(links[0].id)], check=True)
    both("detached")
    for link in links:
        link.close()
print(json.dumps(report))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("iproute2 (ip) is not installed")
    name = f"bpfkit-cli-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run([ip, "netns", "del", name], check=True)  # takes the veth pair with it


@needs_bpftool
@pytest.mark.net
def test_xdp_and_tcx_links_agree_and_detach(netns: str) -> None:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _NETNS_SCRIPT], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    xdp_id, tcx_id = r["ids"]
    ours = {x["id"]: x for x in r["bpfkit_attached"]}
    theirs = {x["id"]: x for x in r["bpftool_attached"]}
    assert_agrees(ours[xdp_id], theirs[xdp_id])
    assert ours[xdp_id] == {"id": xdp_id, "type": "xdp", "prog_id": r["progs"][0], "ifindex": r["ifindex"],
                            "devname": "bkv0"}
    # bpftool 7.1 predates tcx links (Linux 6.6): it prints the type as a number and no target.
    assert {k: theirs[tcx_id][k] for k in ("id", "prog_id")} == {"id": tcx_id, "prog_id": r["progs"][1]}
    assert ours[tcx_id] == {"id": tcx_id, "type": "tcx", "prog_id": r["progs"][1], "ifindex": r["ifindex"],
                            "attach_type": "tcx_ingress", "devname": "bkv0"}
    after = {x["id"]: x for x in r["bpfkit_detached"]}
    assert after[xdp_id]["ifindex"] == 0 and after[tcx_id] == ours[tcx_id]
    assert_agrees(after[xdp_id], {x["id"]: x for x in r["bpftool_detached"]}[xdp_id])


# --- BTF-formatted map dumps -----------------------------------------------------------------------------

# Maps with BTF types of every kind bpftool's formatter handles; libbpf (bpftool prog load) creates
# them, bpfkit fills them with random and chosen bytes, and both dump them.
_BTF_MAPS_C = r"""
#include "bpfkit_helpers.h"
enum color { RED = 1, GREEN = 2, BLUE = -1 };
typedef struct { __u32 lo; __u16 hi; } pair_t;
union num { __u64 u; __s32 s[2]; };
struct inner { __s8 sc; __u8 uc; char c; bool b; };
struct val {
	__s64 s64; __u64 u64; __s16 s16; __u16 u16;
	unsigned int bf1:3, bf2:7; int sbf:4;
	enum color color;
	char name[12];
	struct inner in[2];
	union num n;
	pair_t pair;
	void *ptr;
	unsigned __int128 big;
	struct { int x; int y; };
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, struct inner);
	__type(value, enum color);
} by_inner SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, char[6]);
} strs SEC(".maps");
__u64 gcount = 5;
char gname[8] = "abc";
struct inner ginner;
const volatile __u64 rconst = 7;

SEC("xdp")
int use_all(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct inner i = {};
	if (bpf_map_lookup_elem(&vals, &k) || bpf_map_lookup_elem(&by_inner, &i))
		return 1;
	if (bpf_map_lookup_elem(&strs, &k))
		return 2;
	return gcount + rconst + ginner.sc + gname[0];
}
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture
def btf_maps(tmp_path: Path, pin_dir: Path) -> Iterator[dict[str, Map]]:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (builds the BTF-typed maps)")
    src = tmp_path / "btf_maps.c"
    src.write_text(_BTF_MAPS_C)
    inc = Path(__file__).resolve().parents[1] / "data" / "c"
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I", str(inc), "-c", str(src), "-o",
                    str(tmp_path / "btf_maps.o")], check=True)
    assert BPFTOOL is not None
    subprocess.run([BPFTOOL, "prog", "load", str(tmp_path / "btf_maps.o"), str(pin_dir / "prog"), "pinmaps",
                    str(pin_dir)], check=True, capture_output=True)
    maps = {p.name: Map.from_pinned(p) for p in pin_dir.iterdir() if p.name != "prog"}
    try:
        yield maps
    finally:
        for m in maps.values():
            m.close()


@needs_bpftool
def test_btf_formatted_dump_agrees(btf_maps: dict[str, Map], capsys: pytest.CaptureFixture[str]) -> None:
    import random

    rng = random.Random(1234)
    vals, by_inner, strs = btf_maps["vals"], btf_maps["by_inner"], btf_maps["strs"]
    for i in range(40):  # random bytes: every field, bitfield, enum and char array shape
        vals.update(struct.pack("<I", i), rng.randbytes(vals.value_size))
    fmt = map_cmds.Formatter.of(vals)
    assert fmt is not None
    offset = {name: fmt.spec.member(fmt.value_type_id, name).byte_offset
              for name in ("s64", "u64", "s16", "u16", "color", "name")}
    chosen = bytearray(vals.value_size)
    struct.pack_into("<q", chosen, offset["s64"], -5)
    struct.pack_into("<Q", chosen, offset["u64"], 2**64 - 1)
    struct.pack_into("<hH", chosen, offset["s16"], -300, 65535)
    struct.pack_into("<i", chosen, offset["color"], -1)  # BLUE
    chosen[offset["name"]:offset["name"] + 12] = b"hello".ljust(12, b"\0")
    chosen[offset["s16"] + 4:offset["color"]] = b"\xff" * (offset["color"] - offset["s16"] - 4)  # bitfields
    vals.update(struct.pack("<I", 100), bytes(chosen))
    for _ in range(8):
        key = rng.randbytes(4)
        by_inner.update(key, [struct.pack("<i", rng.choice([1, 2, -1, 7]))] * by_inner.ncpus)
    for i, word in enumerate((b"abc\0\0\0", b"abcdef", b"\x01bc\0\0\0", b"\0\0\0\0\0\0")):
        strs.update(struct.pack("<I", i), word)

    data_maps = [m for m in btf_maps.values() if "." in m.name]  # .bss, .data, .rodata (libbpf's names)
    assert len(data_maps) >= 3
    for name, m in btf_maps.items():
        theirs = bpftool("map", "dump", "id", str(m.id))
        ours = bpfkit(capsys, "map", "dump", "id", str(m.id))
        assert theirs and all("formatted" in r for r in theirs), name
        key = json.dumps
        assert sorted(ours, key=key) == sorted(theirs, key=key), name
    one = bpfkit(capsys, "map", "lookup", "id", str(vals.id), "key", "100", "0", "0", "0")
    assert one["formatted"]["value"]["name"] == "hello" and one["formatted"]["value"]["color"] == "BLUE"
    assert one == bpftool("map", "lookup", "id", str(vals.id), "key", "100", "0", "0", "0")
    # For people, a map with BTF prints decoded keys and values (bpfkit's own text, not bpftool's).
    capsys.readouterr()
    assert main(["map", "dump", "id", str(strs.id)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        'key: 0  value: "abc"', "key: 1  value: [97, 98, 99, 100, 101, 102]",
        "key: 2  value: [1, 98, 99, 0, 0, 0]", 'key: 3  value: ""', "Found 4 elements"]
