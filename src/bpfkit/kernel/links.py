"""`Link`: an existing BPF link (by fd, id or pin), what it attaches, and detaching it.

Making links (one module per attach kind) comes with the attach layer; this module reads what every
link reports (struct bpf_link_info) and detaches any link. `LinkInfo.target` holds the fields of the
link type's part of the info union, with bpftool's key names (``tp_name``, ``ifindex``, ``attach_type``).
Minimum kernel: 5.8 (link ids and info), 5.9 (BPF_LINK_DETACH).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from bpfkit._records import field, record
from bpfkit.errors import KernelError
from bpfkit.kernel import objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd, FdOwner
from bpfkit.uapi.attr import BpfLinkInfo, LinkDetachAttr
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, PerfEventType

TargetValue = int | str
"""A value in `LinkInfo.target`: a number, or a name (tracepoint, path, attach type)."""

# Buffer for names the kernel copies out (tracepoint, iterator target, uprobe path): PATH_MAX.
_NAME_BUF = 4096


@record
class LinkInfo:
    """What the kernel says about a link: id, type, the program it runs, and its type's target fields."""

    id: int
    type: LinkType | int
    prog_id: int
    target: dict[str, TargetValue] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        """The link type as bpftool prints it (``raw_tracepoint``, ``tcx``), or its number."""
        return self.type.name.lower() if isinstance(self.type, LinkType) else str(self.type)


def attach_type_name(value: int) -> str:
    """An attach type as bpftool prints it (``cgroup_inet_ingress``), or its number."""
    try:
        return AttachType(value).name.lower()
    except ValueError:
        return str(value)


def _name_of(buf: ctypes.Array[ctypes.c_char] | None) -> str:
    return objects.c_string(buf.raw) if buf is not None else ""


def _tracing(u: BpfLinkInfo) -> dict[str, TargetValue]:
    t = u.tracing
    out: dict[str, TargetValue] = {"attach_type": attach_type_name(t.attach_type),
                                   "target_obj_id": t.target_obj_id, "target_btf_id": t.target_btf_id}
    if t.cookie:
        out["cookie"] = t.cookie
    return out


def _perf_event(u: BpfLinkInfo, name: str) -> dict[str, TargetValue]:
    pe = u.perf_event
    try:
        kind: PerfEventType | int = PerfEventType(pe.type)
    except ValueError:
        kind = pe.type
    out: dict[str, TargetValue] = {"event_type": kind.name.lower() if isinstance(kind, PerfEventType)
                                   else str(kind)}
    if kind in (PerfEventType.UPROBE, PerfEventType.URETPROBE):
        out.update(file=name, offset=pe.uprobe.offset, cookie=pe.uprobe.cookie)
    elif kind in (PerfEventType.KPROBE, PerfEventType.KRETPROBE):
        out.update(func=name, offset=pe.kprobe.offset, addr=pe.kprobe.addr, missed=pe.kprobe.missed,
                   cookie=pe.kprobe.cookie)
    elif kind == PerfEventType.TRACEPOINT:
        out.update(tracepoint=name, cookie=pe.tracepoint.cookie)
    elif kind == PerfEventType.EVENT:
        out.update(type=pe.event.type, config=pe.event.config, cookie=pe.event.cookie)
    return out


# How to read each link type's part of the union; `name` is the string the kernel copied out, if any.
_TARGETS: dict[LinkType, Callable[[BpfLinkInfo, str], dict[str, TargetValue]]] = {
    LinkType.RAW_TRACEPOINT: lambda u, name: {"tp_name": name},
    LinkType.TRACING: lambda u, name: _tracing(u),
    LinkType.CGROUP: lambda u, name: {"cgroup_id": u.cgroup.cgroup_id,
                                      "attach_type": attach_type_name(u.cgroup.attach_type)},
    LinkType.ITER: lambda u, name: {"target_name": name, **({"map_id": u.iter.map.map_id}
                                                            if u.iter.map.map_id else {})},
    LinkType.NETNS: lambda u, name: {"netns_ino": u.netns.netns_ino,
                                     "attach_type": attach_type_name(u.netns.attach_type)},
    LinkType.XDP: lambda u, name: {"ifindex": u.xdp.ifindex},
    LinkType.STRUCT_OPS: lambda u, name: {"map_id": u.struct_ops.map_id},
    LinkType.NETFILTER: lambda u, name: {"pf": u.netfilter.pf, "hook": u.netfilter.hooknum,
                                         "prio": u.netfilter.priority, "flags": u.netfilter.flags},
    LinkType.KPROBE_MULTI: lambda u, name: {"func_cnt": u.kprobe_multi.count,
                                            "flags": u.kprobe_multi.flags, "missed": u.kprobe_multi.missed},
    LinkType.UPROBE_MULTI: lambda u, name: {"path": name, "func_cnt": u.uprobe_multi.count,
                                            "flags": u.uprobe_multi.flags, "pid": u.uprobe_multi.pid},
    LinkType.PERF_EVENT: _perf_event,
    LinkType.TCX: lambda u, name: {"ifindex": u.tcx.ifindex,
                                   "attach_type": attach_type_name(u.tcx.attach_type)},
    LinkType.NETKIT: lambda u, name: {"ifindex": u.netkit.ifindex,
                                      "attach_type": attach_type_name(u.netkit.attach_type)},
    LinkType.SOCKMAP: lambda u, name: {"map_id": u.sockmap.map_id,
                                       "attach_type": attach_type_name(u.sockmap.attach_type)},
}


def _name_pointer(info: BpfLinkInfo, buf: ctypes.Array[ctypes.c_char]) -> bool:
    """Point the union's string field (if the link type has one) at `buf`; False when it has none."""
    addr, size = ctypes.addressof(buf), len(buf)
    if info.type == LinkType.RAW_TRACEPOINT:
        info.raw_tracepoint.tp_name, info.raw_tracepoint.tp_name_len = addr, size
    elif info.type == LinkType.ITER:
        info.iter.target_name, info.iter.target_name_len = addr, size
    elif info.type == LinkType.UPROBE_MULTI:
        # path_size also tells the kernel to copy; offsets/cookies stay NULL (count is still reported).
        info.uprobe_multi.path, info.uprobe_multi.path_size = addr, size
    elif info.type == LinkType.PERF_EVENT:
        pe = info.perf_event
        if pe.type in (PerfEventType.UPROBE, PerfEventType.URETPROBE):
            pe.uprobe.file_name, pe.uprobe.name_len = addr, size
        elif pe.type in (PerfEventType.KPROBE, PerfEventType.KRETPROBE):
            pe.kprobe.func_name, pe.kprobe.name_len = addr, size
        elif pe.type == PerfEventType.TRACEPOINT:
            pe.tracepoint.tp_name, pe.tracepoint.name_len = addr, size
        else:
            return False
    else:
        return False
    return True


def read_info(fd: Fd) -> LinkInfo:
    """Read struct bpf_link_info for link `fd`, with the names its type reports (two calls when the
    type has a name: the first says which union member applies)."""
    try:
        first = objects.info_by_fd(fd, BpfLinkInfo())
        info = first
        buf = ctypes.create_string_buffer(_NAME_BUF)
        again = BpfLinkInfo(type=first.type)
        if first.type == LinkType.PERF_EVENT:
            again.perf_event.type = first.perf_event.type
        named = _name_pointer(again, buf)
        if named:
            info = objects.info_by_fd(fd, again)
    except KernelError as e:
        raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
    try:
        ltype: LinkType | int = LinkType(info.type)
    except ValueError:
        ltype = info.type
    reader = _TARGETS.get(ltype) if isinstance(ltype, LinkType) else None
    target = reader(info, _name_of(buf if named else None)) if reader is not None else {}
    return LinkInfo(info.id, ltype, info.prog_id, target)


class Link(FdOwner):
    """An existing link. Open one with `from_fd`, `from_id` or `from_pinned`; close it when done.

    Closing the fd releases the link unless it is pinned (or held elsewhere); `detach()` cuts it from
    its target now, whoever else holds it.
    """

    def __init__(self, fd: Fd, info: LinkInfo | None = None) -> None:
        self._fd = fd
        self._info = info

    @classmethod
    def from_fd(cls, fd: Fd | int) -> Link:
        """Wrap a link fd (taking ownership of it)."""
        owned = fd if isinstance(fd, Fd) else Fd(fd, "link")
        return cls(owned)

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        """Open the link with kernel id `link_id` (needs CAP_SYS_ADMIN)."""
        return cls(objects.fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id, "link"))

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> Link:
        """Open the link pinned at `path` on a bpf file system."""
        return cls(objects.get_pinned(path, "link"))

    def __repr__(self) -> str:
        return f"<Link {self._fd!r}>"

    def info(self) -> LinkInfo:
        """The kernel's view of the link (read afresh: a detached link reports prog_id 0)."""
        return read_info(self._fd)

    @property
    def id(self) -> int:
        if self._info is None:
            self._info = self.info()
        return self._info.id

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link at `path` on a bpf file system; remove the file (os.unlink) to unpin."""
        objects.pin(self._fd, path)

    def detach(self) -> None:
        """Detach the link from its target now (BPF_LINK_DETACH); the fd stays open, and defunct.
        Minimum kernel: 5.9 (not every link type supports it: EOPNOTSUPP)."""
        attr = LinkDetachAttr(link_fd=self._fd.fileno())
        try:
            self._fd.syscalls.bpf(Cmd.LINK_DETACH, attr)
        except KernelError as e:
            raise bpf_error(Cmd.LINK_DETACH, e.errno or 0, attr, self._fd.what) from None
