"""Every program, map, link and BTF object on the system, with what the kernel reports about each.

Walks ids with BPF_{PROG,MAP,LINK,BTF}_GET_NEXT_ID, opens each with *_GET_FD_BY_ID and reads it with
BPF_OBJ_GET_INFO_BY_FD; /proc/self/fdinfo adds what the info structs lack (memlock, frozen). Objects
freed between finding an id and opening it (ENOENT) are skipped: the listing is a snapshot of a system
that keeps changing. Needs CAP_SYS_ADMIN. Minimum kernel: 4.13 (programs, maps), 5.4 (BTF), 5.8 (links).
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from bpfkit._records import record
from bpfkit.errors import KernelError
from bpfkit.kernel import links, maps, objects, programs
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.links import LinkInfo
from bpfkit.kernel.maps import MapInfo
from bpfkit.kernel.programs import ProgramInfo
from bpfkit.kernel.syscall import Syscalls
from bpfkit.uapi.attr import BpfBtfInfo
from bpfkit.uapi.enums import Cmd

_T = TypeVar("_T")


class Kind(enum.Enum):
    """A kind of kernel object with ids: (its GET_NEXT_ID command, its GET_FD_BY_ID command)."""

    PROG = (Cmd.PROG_GET_NEXT_ID, Cmd.PROG_GET_FD_BY_ID)
    MAP = (Cmd.MAP_GET_NEXT_ID, Cmd.MAP_GET_FD_BY_ID)
    LINK = (Cmd.LINK_GET_NEXT_ID, Cmd.LINK_GET_FD_BY_ID)
    BTF = (Cmd.BTF_GET_NEXT_ID, Cmd.BTF_GET_FD_BY_ID)

    @property
    def label(self) -> str:
        return {"PROG": "program", "MAP": "map", "LINK": "link", "BTF": "BTF"}[self.name]


@record
class ProgramEntry:
    """A loaded program: its info plus the memory it charges (bytes, from fdinfo)."""

    info: ProgramInfo
    memlock: int


@record
class MapEntry:
    """A map: its info, the memory it charges (bytes) and whether user space may still write it."""

    info: MapInfo
    memlock: int
    frozen: bool


@record
class BtfObject:
    """A BTF object: vmlinux, a module's, or one loaded with a program or map."""

    id: int
    name: str
    size: int
    kernel: bool


def ids(kind: Kind, sys: Syscalls | None = None) -> Iterator[int]:
    """The ids of every object of `kind`, in increasing order."""
    cmd = kind.value[0]
    start = 0
    while True:
        try:
            nxt = objects.next_id(cmd, start, sys)
        except KernelError as e:
            raise bpf_error(cmd, e.errno or 0, None, f"listing {kind.label}s") from None
        if nxt is None:
            return
        yield nxt
        start = nxt


def open_id(kind: Kind, obj_id: int, sys: Syscalls | None = None) -> Fd:
    """A new fd for the object of `kind` with id `obj_id`; KernelError(ENOENT) names it when gone."""
    cmd = kind.value[1]
    try:
        return objects.fd_by_id(cmd, obj_id, kind.label, sys)
    except KernelError as e:
        hint = f"no {kind.label} has id {obj_id}" if e.errno == _errno.ENOENT else f"{kind.label} id {obj_id}"
        raise bpf_error(cmd, e.errno or 0, None, hint) from None


def fdinfo(fd: Fd | int) -> dict[str, str]:
    """The fields of /proc/self/fdinfo/<fd> (``memlock``, ``frozen``, ``prog_tag``...), as text."""
    out: dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{int(fd)}") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    out[key.strip()] = value.strip()
    except OSError:
        pass  # a fake fd in unit tests, or no /proc: the extras are then 0
    return out


def _int(fields: dict[str, str], key: str) -> int:
    try:
        return int(fields.get(key, "0"), 0)
    except ValueError:
        return 0


def boot_ns_to_epoch(ns: int) -> float:
    """A CLOCK_BOOTTIME time in ns (a program's load_time) as seconds since the Unix epoch."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + ns / 1e9


def program_entry(fd: Fd) -> ProgramEntry:
    """The `ProgramEntry` of program `fd`."""
    return ProgramEntry(programs.read_info(fd), _int(fdinfo(fd), "memlock"))


def map_entry(fd: Fd) -> MapEntry:
    """The `MapEntry` of map `fd`."""
    extra = fdinfo(fd)
    return MapEntry(maps.read_info(fd), _int(extra, "memlock"), bool(_int(extra, "frozen")))


def btf_object(fd: Fd) -> BtfObject:
    """The `BtfObject` of BTF `fd` (its name: "vmlinux", a module's, or empty)."""
    name = ctypes.create_string_buffer(256)
    info = BpfBtfInfo(name=ctypes.addressof(name), name_len=len(name))
    try:
        objects.info_by_fd(fd, info)
    except KernelError as e:
        raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
    return BtfObject(info.id, objects.c_string(name.raw), info.btf_size, bool(info.kernel_btf))


def _walk(kind: Kind, read: Callable[[Fd], _T], sys: Syscalls | None) -> Iterator[_T]:
    for obj_id in ids(kind, sys):
        try:
            fd = objects.fd_by_id(kind.value[1], obj_id, kind.label, sys)
        except KernelError as e:
            if e.errno in (_errno.ENOENT, _errno.EAGAIN):
                continue  # freed since its id was listed (EAGAIN: a link being torn down or set up)
            raise bpf_error(kind.value[1], e.errno or 0, None, f"{kind.label} id {obj_id}") from None
        with fd:
            item = read(fd)
        yield item


def programs_info(sys: Syscalls | None = None) -> Iterator[ProgramEntry]:
    """Every loaded program."""
    return _walk(Kind.PROG, program_entry, sys)


def maps_info(sys: Syscalls | None = None) -> Iterator[MapEntry]:
    """Every map."""
    return _walk(Kind.MAP, map_entry, sys)


def links_info(sys: Syscalls | None = None) -> Iterator[LinkInfo]:
    """Every link."""
    return _walk(Kind.LINK, links.read_info, sys)


def btfs_info(sys: Syscalls | None = None) -> Iterator[BtfObject]:
    """Every BTF object."""
    return _walk(Kind.BTF, btf_object, sys)


def _one(kind: Kind, obj_id: int, read: Callable[[Fd], _T], sys: Syscalls | None) -> _T:
    with open_id(kind, obj_id, sys) as fd:
        return read(fd)


def program_by_id(prog_id: int, sys: Syscalls | None = None) -> ProgramEntry:
    """The program with id `prog_id`."""
    return _one(Kind.PROG, prog_id, program_entry, sys)


def map_by_id(map_id: int, sys: Syscalls | None = None) -> MapEntry:
    """The map with id `map_id`."""
    return _one(Kind.MAP, map_id, map_entry, sys)


def link_by_id(link_id: int, sys: Syscalls | None = None) -> LinkInfo:
    """The link with id `link_id`."""
    return _one(Kind.LINK, link_id, links.read_info, sys)


def btf_by_id(btf_id: int, sys: Syscalls | None = None) -> BtfObject:
    """The BTF object with id `btf_id`."""
    return _one(Kind.BTF, btf_id, btf_object, sys)


def kernel_symbols(addresses: Iterable[int]) -> dict[int, str]:
    """The /proc/kallsyms names of the given kernel addresses (those found; needs root to see them)."""
    wanted = set(addresses)
    found: dict[int, str] = {}
    if not wanted:
        return found
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                addr, _, rest = line.partition(" ")
                try:
                    value = int(addr, 16)
                except ValueError:
                    continue
                if value in wanted:
                    found.setdefault(value, rest.split()[1] if len(rest.split()) > 1 else rest.strip())
    except OSError:
        pass
    return found


def call_base() -> int:
    """The address of __bpf_call_base: the kernel writes helper calls in xlated code as offsets from
    it (kernel/bpf/core.c). 0 when /proc/kallsyms does not show it (not root, kptr_restrict)."""
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                if line.rstrip().endswith(" __bpf_call_base"):
                    return int(line.split()[0], 16)
    except (OSError, ValueError):
        pass
    return 0


def btf_data(btf_id: int, sys: Syscalls | None = None) -> bytes:
    """The raw BTF of the kernel's BTF object `btf_id` (a map's or program's types, or vmlinux')."""
    with open_id(Kind.BTF, btf_id, sys) as fd:
        try:
            size = objects.info_by_fd(fd, BpfBtfInfo()).btf_size
            buf = ctypes.create_string_buffer(size)
            info = objects.info_by_fd(fd, BpfBtfInfo(btf=ctypes.addressof(buf), btf_size=size))
        except KernelError as e:
            raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
        return buf.raw[: min(size, info.btf_size)]
