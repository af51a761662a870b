"""Introspection against the running kernel: the objects this test makes appear with what they are."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import introspect
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.links import Link
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program, enable_stats
from bpfkit.kernel.syscall import current
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import LinkCreateAttr, RawTracepointOpenAttr
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, MapType, ProgType

pytestmark = pytest.mark.kernel

RET_1 = bytes.fromhex("b700000001000000" "9500000000000000")  # r0 = 1; exit
CGROUP2 = Path("/sys/fs/cgroup/unified")


def prog_using(m: Map, prog_type: ProgType = ProgType.XDP, name: str = "intro") -> Program:
    """`r1 = map; r0 = 1; exit`: a program whose map_ids hold `m`."""
    ld = bytes([0x18, 0x11, 0, 0]) + m.fileno().to_bytes(4, "little") + bytes(8)
    return Program.load(ld + RET_1, prog_type, name=name, license="GPL")


def raw_tp_link(prog: Program, tp: str = "sys_enter") -> Link:
    name = ctypes.create_string_buffer(tp.encode())
    attr = RawTracepointOpenAttr(name=ctypes.addressof(name), prog_fd=prog.fileno())
    sys = current()
    return Link.from_fd(Fd(sys.bpf(Cmd.RAW_TRACEPOINT_OPEN, attr), "raw tracepoint link", sys))


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if not CGROUP2.is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup")
    root = CGROUP2 if CGROUP2.is_dir() else Path("/sys/fs/cgroup")
    d = root / f"bpfkit-test-{os.getpid()}"
    d.mkdir()
    try:
        yield d
    finally:
        d.rmdir()


def cgroup_link(prog: Program, cg: Path) -> Link:
    fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        attr = LinkCreateAttr(prog_fd=prog.fileno(), target_fd=fd, attach_type=AttachType.CGROUP_INET_INGRESS)
        sys = current()
        return Link.from_fd(Fd(sys.bpf(Cmd.LINK_CREATE, attr), "cgroup link", sys))
    finally:
        os.close(fd)


def test_programs_and_maps_are_listed_with_their_info() -> None:
    before = time.time()
    with Map.create(MapSpec(MapType.HASH, 4, 8, 16, name="intro_map")) as m, prog_using(m) as p:
        progs = {e.info.id: e for e in introspect.programs_info()}
        maps = {e.info.id: e for e in introspect.maps_info()}
        mine = progs[p.id]
        assert mine.info == p.info()
        assert mine.info.map_ids == (m.id,) and mine.info.name == "intro" and mine.info.type == ProgType.XDP
        assert mine.info.xlated_len == 32 and mine.info.jited_len > 0 and mine.memlock > 0
        assert before - 2 <= introspect.boot_ns_to_epoch(mine.info.load_time_ns) <= time.time() + 1
        entry = maps[m.id]
        assert (entry.info.name, entry.info.type, entry.info.key_size, entry.info.value_size,
                entry.info.max_entries) == ("intro_map", MapType.HASH, 4, 8, 16)
        assert entry.memlock > 0 and not entry.frozen
        m.freeze()
        assert introspect.map_by_id(m.id).frozen
        assert introspect.program_by_id(p.id).info.tag == p.tag


def test_objects_gone_are_not_listed_and_open_by_id_says_so() -> None:
    m = Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="gone"))
    map_id = m.id
    m.close()
    assert map_id not in [e.info.id for e in introspect.maps_info()]
    with pytest.raises(KernelError, match=f"no map has id {map_id}") as ei:
        introspect.map_by_id(map_id)
    assert ei.value.errno == errno.ENOENT


def test_run_statistics_appear_while_stats_are_enabled() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="st")) as m, prog_using(m, name="stats") as p:
        with enable_stats():
            p.test_run(bytes(64), repeat=7)
            info = introspect.program_by_id(p.id).info
        assert info.run_cnt == 7 and info.run_time_ns > 0


def test_raw_tracepoint_link_and_its_name() -> None:
    with Program.load(RET_1, ProgType.RAW_TRACEPOINT, name="rtp", license="GPL") as p, \
            raw_tp_link(p) as link:
        infos = {i.id: i for i in introspect.links_info()}
        info = infos[link.id]
        assert (info.type, info.prog_id, info.target) == (LinkType.RAW_TRACEPOINT, p.id,
                                                          {"tp_name": "sys_enter"})
        assert introspect.link_by_id(link.id) == info == link.info()


def test_cgroup_link_target_and_detach(cgroup: Path) -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="cg")) as m, \
            prog_using(m, ProgType.CGROUP_SKB, "cgskb") as p, cgroup_link(p, cgroup) as link:
        info = link.info()
        assert info.type == LinkType.CGROUP and info.prog_id == p.id
        assert info.target == {"cgroup_id": cgroup.stat().st_ino, "attach_type": "cgroup_inet_ingress"}
        with Link.from_id(link.id) as other:
            other.detach()
        assert link.info().target["cgroup_id"] == 0  # detached: no cgroup any more


def test_btf_objects_include_vmlinux() -> None:
    vmlinux = [b for b in introspect.btfs_info() if b.name == "vmlinux"]
    assert len(vmlinux) == 1 and vmlinux[0].kernel
    assert vmlinux[0].size == os.path.getsize("/sys/kernel/btf/vmlinux")
    assert introspect.btf_by_id(vmlinux[0].id) == vmlinux[0]
