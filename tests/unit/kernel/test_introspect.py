"""`introspect` against the fake: walking ids, skipping objects freed mid-walk, closing every fd."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Iterator

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import introspect
from bpfkit.kernel.fake import FakeSyscalls, read_user, write_user
from bpfkit.kernel.introspect import Kind
from bpfkit.kernel.syscall import override
from bpfkit.uapi.attr import BpfBtfInfo, BpfMapInfo, GetIdAttr, ObjInfoAttr
from bpfkit.uapi.enums import Cmd, MapType


@pytest.fixture
def fake() -> Iterator[FakeSyscalls]:
    f = FakeSyscalls()
    with override(f):
        yield f
    assert not f.open_fds, "introspection left fds open"


def _maps(fake: FakeSyscalls, live: set[int], listed: set[int], gone: int = errno.ENOENT) -> None:
    """Maps `live` exist; `listed` ids are returned by GET_NEXT_ID (some may be gone when opened, which
    GET_FD_BY_ID answers with `gone`)."""
    fds: dict[int, int] = {}

    def next_id(a: ctypes.Structure) -> int:
        assert isinstance(a, GetIdAttr)
        later = sorted(i for i in listed if i > a.start_id)
        if not later:
            return -errno.ENOENT
        a.next_id = later[0]
        return 0

    def by_id(a: ctypes.Structure) -> int:
        assert isinstance(a, GetIdAttr)
        if a.start_id not in live:
            return -gone
        fd = fake.new_fd()
        fds[fd] = a.start_id
        return fd

    def info(a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr)
        map_id = fds[a.bpf_fd]
        write_user(a.info, bytes(BpfMapInfo(type=MapType.ARRAY, id=map_id, key_size=4, value_size=4,
                                            max_entries=map_id, name=f"m{map_id}".encode())))
        return 0

    fake.on(Cmd.MAP_GET_NEXT_ID, next_id)
    fake.on(Cmd.MAP_GET_FD_BY_ID, by_id)
    fake.on(Cmd.OBJ_GET_INFO_BY_FD, info)


def test_walk_lists_every_map_and_skips_vanished_ones(fake: FakeSyscalls) -> None:
    _maps(fake, live={2, 5, 9}, listed={2, 3, 5, 9})
    entries = list(introspect.maps_info())
    assert [(e.info.id, e.info.name, e.info.max_entries) for e in entries] == [(2, "m2", 2), (5, "m5", 5),
                                                                                (9, "m9", 9)]
    assert [GetIdAttr.from_buffer_copy(c.attr.ljust(16, b"\0")).start_id
            for c in fake.bpf_calls(Cmd.MAP_GET_NEXT_ID)] == [0, 2, 3, 5, 9]
    assert len(fake.bpf_calls(Cmd.MAP_GET_FD_BY_ID)) == 4


def test_walk_skips_objects_being_torn_down(fake: FakeSyscalls) -> None:
    # The kernel answers GET_FD_BY_ID with EAGAIN for a link whose teardown (or setup) is in progress.
    _maps(fake, live={2, 9}, listed={2, 5, 9}, gone=errno.EAGAIN)
    assert [e.info.id for e in introspect.maps_info()] == [2, 9]


def test_abandoned_walk_leaves_no_fd_open(fake: FakeSyscalls) -> None:
    _maps(fake, live={1, 2, 3}, listed={1, 2, 3})
    walk = introspect.maps_info()
    assert next(walk).info.id == 1
    assert not fake.open_fds  # each fd is closed before its entry is handed out
    walk.close()


def test_open_id_of_a_missing_object_names_it(fake: FakeSyscalls) -> None:
    _maps(fake, live={1}, listed={1})
    with pytest.raises(KernelError, match="no map has id 4") as ei:
        introspect.map_by_id(4)
    assert ei.value.errno == errno.ENOENT
    assert introspect.map_by_id(1).info.id == 1


def test_other_errors_are_not_skipped(fake: FakeSyscalls) -> None:
    _maps(fake, live={1}, listed={1})
    fake.fail(Cmd.MAP_GET_FD_BY_ID, errno.EPERM)
    with pytest.raises(KernelError) as ei:
        list(introspect.maps_info())
    assert ei.value.errno == errno.EPERM and "map id 1" in str(ei.value)


def test_ids_of_each_kind_use_their_command(fake: FakeSyscalls) -> None:
    for kind in Kind:
        fake.fail(kind.value[0], errno.ENOENT)
        assert list(introspect.ids(kind)) == []
        assert fake.bpf_calls(kind.value[0])


def test_btf_object_reads_its_name(fake: FakeSyscalls) -> None:
    def info(a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr)
        asked = BpfBtfInfo.from_buffer_copy(read_user(a.info, ctypes.sizeof(BpfBtfInfo)))
        assert asked.name and asked.name_len >= 16
        write_user(asked.name, b"nf_tables\0")
        write_user(a.info, bytes(BpfBtfInfo(btf_size=1234, id=8, name=asked.name, name_len=10, kernel_btf=1)))
        return 0

    fake.on(Cmd.OBJ_GET_INFO_BY_FD, info)
    fake.on(Cmd.BTF_GET_FD_BY_ID, lambda a: fake.new_fd())
    assert introspect.btf_by_id(8) == introspect.BtfObject(8, "nf_tables", 1234, True)


def test_boot_time_converts_to_epoch() -> None:
    import time

    now_boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert abs(introspect.boot_ns_to_epoch(now_boot) - time.time()) < 1.0
