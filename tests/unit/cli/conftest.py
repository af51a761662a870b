"""A fake kernel holding programs, maps, links and BTF objects, for the kernel-object CLI commands.

It answers the id-walking commands (GET_NEXT_ID, GET_FD_BY_ID), OBJ_GET_INFO_BY_FD (filling the info
structs, with the user buffers for map ids, xlated code and names), OBJ_GET/OBJ_PIN and LINK_DETACH.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from bpfkit.kernel.fake import FakeSyscalls, read_user, write_user
from bpfkit.kernel.syscall import override
from bpfkit.uapi.attr import (
    BpfBtfInfo,
    BpfLinkInfo,
    BpfMapInfo,
    BpfProgInfo,
    GetIdAttr,
    LinkDetachAttr,
    ObjInfoAttr,
    ObjPinAttr,
)
from bpfkit.uapi.enums import Cmd, LinkType


@dataclass
class FakeObjects:
    """The objects of a fake kernel, by kind and id; `vanished` ids are listed but gone when opened."""

    fake: FakeSyscalls
    progs: dict[int, BpfProgInfo] = field(default_factory=dict)
    prog_code: dict[int, bytes] = field(default_factory=dict)
    prog_maps: dict[int, list[int]] = field(default_factory=dict)
    maps: dict[int, BpfMapInfo] = field(default_factory=dict)
    links: dict[int, BpfLinkInfo] = field(default_factory=dict)
    link_names: dict[int, str] = field(default_factory=dict)
    btfs: dict[int, tuple[str, int, bool]] = field(default_factory=dict)
    pins: dict[str, tuple[str, int]] = field(default_factory=dict)
    vanished: set[tuple[str, int]] = field(default_factory=set)
    fds: dict[int, tuple[str, int]] = field(default_factory=dict)
    detached: list[int] = field(default_factory=list)

    def table(self, kind: str) -> dict[int, object]:
        tables: dict[str, dict[int, object]] = {"prog": dict(self.progs), "map": dict(self.maps),
                                                "link": dict(self.links), "btf": dict(self.btfs)}
        return tables[kind]

    def install(self) -> None:
        f = self.fake
        for kind, nxt, by_id in (("prog", Cmd.PROG_GET_NEXT_ID, Cmd.PROG_GET_FD_BY_ID),
                                 ("map", Cmd.MAP_GET_NEXT_ID, Cmd.MAP_GET_FD_BY_ID),
                                 ("link", Cmd.LINK_GET_NEXT_ID, Cmd.LINK_GET_FD_BY_ID),
                                 ("btf", Cmd.BTF_GET_NEXT_ID, Cmd.BTF_GET_FD_BY_ID)):
            f.on(nxt, self._next(kind))
            f.on(by_id, self._open(kind))
        f.on(Cmd.OBJ_GET_INFO_BY_FD, self._info)
        f.on(Cmd.OBJ_GET, self._get)
        f.on(Cmd.OBJ_PIN, self._pin)
        f.on(Cmd.LINK_DETACH, self._detach)

    def _next(self, kind: str) -> Callable[[ctypes.Structure], int]:
        def handler(a: ctypes.Structure) -> int:
            assert isinstance(a, GetIdAttr)
            ids = sorted(i for i in self.table(kind) if i > a.start_id)
            ids += sorted(i for k, i in self.vanished if k == kind and i > a.start_id)
            if not ids:
                return -errno.ENOENT
            a.next_id = min(ids)
            return 0
        return handler

    def _open(self, kind: str) -> Callable[[ctypes.Structure], int]:
        def handler(a: ctypes.Structure) -> int:
            assert isinstance(a, GetIdAttr)
            if a.start_id not in self.table(kind):
                return -errno.ENOENT
            fd = self.fake.new_fd()
            self.fds[fd] = (kind, a.start_id)
            return fd
        return handler

    def _get(self, a: ctypes.Structure) -> int:
        assert isinstance(a, ObjPinAttr)
        path = ctypes.string_at(a.pathname).decode()
        if path not in self.pins:
            return -errno.ENOENT
        fd = self.fake.new_fd()
        self.fds[fd] = self.pins[path]
        return fd

    def _pin(self, a: ctypes.Structure) -> int:
        assert isinstance(a, ObjPinAttr)
        self.pins[ctypes.string_at(a.pathname).decode()] = self.fds.get(a.bpf_fd, ("new", a.bpf_fd))
        return 0

    def _detach(self, a: ctypes.Structure) -> int:
        assert isinstance(a, LinkDetachAttr)
        self.detached.append(self.fds[a.link_fd][1])
        return 0

    def _info(self, a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr)
        kind, obj_id = self.fds[a.bpf_fd]
        if kind == "prog":
            asked = BpfProgInfo.from_buffer_copy(read_user(a.info, ctypes.sizeof(BpfProgInfo)))
            info = BpfProgInfo.from_buffer_copy(bytes(self.progs[obj_id]))
            ids = self.prog_maps.get(obj_id, [])
            info.nr_map_ids = len(ids)
            if asked.map_ids:
                arr = (ctypes.c_uint32 * len(ids))(*ids)
                write_user(asked.map_ids, bytes(arr)[: 4 * min(len(ids), asked.nr_map_ids)])
                info.map_ids = asked.map_ids
            code = self.prog_code.get(obj_id, b"")
            info.xlated_prog_len = len(code)
            if asked.xlated_prog_insns:
                write_user(asked.xlated_prog_insns, code[: asked.xlated_prog_len])
                info.xlated_prog_insns = asked.xlated_prog_insns
            write_user(a.info, bytes(info))
        elif kind == "map":
            write_user(a.info, bytes(self.maps[obj_id]))
        elif kind == "link":
            asked_link = BpfLinkInfo.from_buffer_copy(read_user(a.info, ctypes.sizeof(BpfLinkInfo)))
            link = BpfLinkInfo.from_buffer_copy(bytes(self.links[obj_id]))
            name = self.link_names.get(obj_id, "").encode() + b"\0"
            if link.type == LinkType.RAW_TRACEPOINT and asked_link.raw_tracepoint.tp_name:
                write_user(asked_link.raw_tracepoint.tp_name, name)
                link.raw_tracepoint.tp_name = asked_link.raw_tracepoint.tp_name
            write_user(a.info, bytes(link))
        else:
            name_s, size, kernel = self.btfs[obj_id]
            asked_btf = BpfBtfInfo.from_buffer_copy(read_user(a.info, ctypes.sizeof(BpfBtfInfo)))
            if asked_btf.name:
                write_user(asked_btf.name, name_s.encode() + b"\0")
            out = BpfBtfInfo(btf_size=size, id=obj_id, name=asked_btf.name, name_len=len(name_s) + 1,
                             kernel_btf=int(kernel))
            write_user(a.info, bytes(out))
        return 0


@pytest.fixture
def objs() -> Iterator[FakeObjects]:
    """A fake kernel installed as the current syscalls for the test."""
    fake = FakeSyscalls()
    o = FakeObjects(fake)
    o.install()
    with override(fake):
        yield o
    assert not fake.open_fds, f"the command left fds open: {fake.open_fds}"
