"""`ProgramInfo`: what the kernel says about a loaded program (BPF_OBJ_GET_INFO_BY_FD, struct
bpf_prog_info), and its translated and JIT-compiled code.

Re-exported by `bpfkit.kernel.programs`. A module of its own because loading and running a program does
not need it, and start-up (`bpfkit trace`) pays for every class it creates.
"""

from __future__ import annotations

import ctypes

from bpfkit._records import record
from bpfkit.errors import KernelError
from bpfkit.kernel import objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.programs import _prog_type
from bpfkit.uapi.attr import BpfProgInfo
from bpfkit.uapi.enums import Cmd, ProgType


@record
class ProgramInfo:
    """What the kernel says about a program (struct bpf_prog_info)."""

    id: int
    type: ProgType | int
    name: str
    tag: str
    map_ids: tuple[int, ...]
    load_time_ns: int
    created_by_uid: int
    xlated_len: int
    jited_len: int
    gpl_compatible: bool
    btf_id: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    ifindex: int
    netns_dev: int
    netns_ino: int
    nr_func_info: int
    nr_line_info: int


def read_info(fd: Fd) -> ProgramInfo:
    """Read struct bpf_prog_info for program `fd`, with its map ids."""
    try:
        raw = objects.info_by_fd(fd, BpfProgInfo())
        map_ids: tuple[int, ...] = ()
        if raw.nr_map_ids:
            ids = (ctypes.c_uint32 * raw.nr_map_ids)()
            again = BpfProgInfo(nr_map_ids=raw.nr_map_ids, map_ids=ctypes.addressof(ids))
            objects.info_by_fd(fd, again)
            map_ids = tuple(ids[: min(again.nr_map_ids, raw.nr_map_ids)])
    except KernelError as e:
        raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
    return ProgramInfo(
        id=raw.id, type=_prog_type(raw.type), name=objects.c_string(bytes(raw.name)),
        tag=bytes(raw.tag).hex(), map_ids=map_ids, load_time_ns=raw.load_time,
        created_by_uid=raw.created_by_uid, xlated_len=raw.xlated_prog_len, jited_len=raw.jited_prog_len,
        gpl_compatible=bool(raw.gpl_compatible), btf_id=raw.btf_id, run_time_ns=raw.run_time_ns,
        run_cnt=raw.run_cnt, recursion_misses=raw.recursion_misses, verified_insns=raw.verified_insns,
        attach_btf_obj_id=raw.attach_btf_obj_id, attach_btf_id=raw.attach_btf_id, ifindex=raw.ifindex,
        netns_dev=raw.netns_dev, netns_ino=raw.netns_ino, nr_func_info=raw.nr_func_info,
        nr_line_info=raw.nr_line_info,
    )


def dump(fd: Fd, *, jited: bool) -> bytes:
    """The program's translated (`jited` False) or JIT-compiled instructions."""
    try:
        first = objects.info_by_fd(fd, BpfProgInfo())
        n = first.jited_prog_len if jited else first.xlated_prog_len
        if not n:
            return b""
        buf = ctypes.create_string_buffer(n)
        again = BpfProgInfo()
        if jited:
            again.jited_prog_len, again.jited_prog_insns = n, ctypes.addressof(buf)
        else:
            again.xlated_prog_len, again.xlated_prog_insns = n, ctypes.addressof(buf)
        objects.info_by_fd(fd, again)
    except KernelError as e:
        raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
    return buf.raw[:n]
