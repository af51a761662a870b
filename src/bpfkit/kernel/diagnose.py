"""Turn a failed system call into a `KernelError` that says what to change.

The hints are facts about where the kernel returns each errno (kernel/bpf/syscall.c, verifier.c,
the map implementations); they name the setting, capability or attr field that is the likely cause.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import os

from bpfkit.errors import KernelError
from bpfkit.uapi.attr import MapCreateAttr
from bpfkit.uapi.enums import Cmd, MapType

# Kernel-internal errno values that reach userspace from bpf(2) (include/linux/errno.h).
ENOTSUPP = 524

# Capability bits (include/uapi/linux/capability.h).
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

_ELEM_CMDS = (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM, Cmd.MAP_GET_NEXT_KEY,
              Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
_BATCH_CMDS = (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_UPDATE_BATCH,
               Cmd.MAP_DELETE_BATCH)


def effective_capabilities() -> int:
    """The CapEff mask of this process (0 when /proc is not readable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def permission_hint(what: str = "bpf(2)") -> str:
    """Which capability or setting is missing for `what` (EPERM/EACCES)."""
    caps = effective_capabilities()
    has_admin = bool(caps >> CAP_SYS_ADMIN & 1)
    has_bpf = bool(caps >> CAP_BPF & 1)
    unpriv = _sysctl("kernel.unprivileged_bpf_disabled")
    if not (has_admin or has_bpf):
        hint = f"{what} needs CAP_BPF (plus CAP_PERFMON for tracing, CAP_NET_ADMIN for networking) " \
               "or CAP_SYS_ADMIN; run as root"
        if unpriv is not None and unpriv != "0":
            hint += f" (unprivileged bpf is disabled: kernel.unprivileged_bpf_disabled={unpriv})"
        return hint
    lockdown = None
    try:
        with open("/sys/kernel/security/lockdown") as f:
            lockdown = f.read().strip()
    except OSError:
        pass
    hint = (f"refused although the process has {'CAP_SYS_ADMIN' if has_admin else 'CAP_BPF'}: this kernel "
            "does not permit it (a security policy, lockdown, or a restriction on this program type)")
    if lockdown and "[none]" not in lockdown:
        hint += f"; lockdown is {lockdown}"
    if _kernel_older_than(5, 11):
        hint += "; before Linux 5.11 also check RLIMIT_MEMLOCK (ulimit -l)"
    return hint


_T = MapType
_KEY4 = frozenset({_T.ARRAY, _T.PERCPU_ARRAY, _T.PROG_ARRAY, _T.PERF_EVENT_ARRAY, _T.CGROUP_ARRAY,
                   _T.ARRAY_OF_MAPS, _T.DEVMAP, _T.CPUMAP, _T.XSKMAP, _T.SOCKMAP, _T.REUSEPORT_SOCKARRAY})
_KEY0 = frozenset({_T.QUEUE, _T.STACK, _T.BLOOM_FILTER, _T.RINGBUF, _T.USER_RINGBUF, _T.ARENA})
_VALUE4 = frozenset({_T.PROG_ARRAY, _T.PERF_EVENT_ARRAY, _T.CGROUP_ARRAY, _T.ARRAY_OF_MAPS, _T.HASH_OF_MAPS})
_NO_ENTRIES = frozenset({_T.CGROUP_STORAGE, _T.PERCPU_CGROUP_STORAGE, _T.SK_STORAGE, _T.INODE_STORAGE,
                         _T.TASK_STORAGE, _T.CGRP_STORAGE})
_LOCAL_STORAGE = frozenset({_T.SK_STORAGE, _T.INODE_STORAGE, _T.TASK_STORAGE, _T.CGRP_STORAGE})
_NO_PREALLOC = 1  # BPF_F_NO_PREALLOC


def map_create_hint(attr: MapCreateAttr) -> str | None:
    """The attr field that makes BPF_MAP_CREATE fail with EINVAL, from each map type's alloc checks
    (kernel/bpf/*.c, *_map_alloc_check), or None when the attr looks right."""
    try:
        t = MapType(attr.map_type)
    except ValueError:
        return f"map_type {attr.map_type} is unknown (to bpfkit and possibly to this kernel)"
    name = t.c_name
    ks, vs, n = attr.key_size, attr.value_size, attr.max_entries
    if t in _KEY0 and ks:
        return f"key_size must be 0 for {name} (got {ks})"
    if t in _KEY4 and ks != 4:
        return f"key_size must be 4 for {name} (got {ks})"
    if t not in _KEY0 and not ks:
        return f"key_size must not be 0 for {name}"
    if t in (_T.RINGBUF, _T.USER_RINGBUF):
        if vs:
            return f"value_size must be 0 for {name} (got {vs})"
        page = mmap.PAGESIZE
        if n < page or n & (n - 1) or n % page:
            return f"max_entries (the buffer size) must be a power of 2 multiple of the page size {page} " \
                   f"for {name} (got {n})"
        return None
    if t in _VALUE4 and vs != 4:
        return f"value_size must be 4 (an fd) for {name} (got {vs})"
    if t != _T.ARENA and not vs:
        return f"value_size must not be 0 for {name}"
    if t in _NO_ENTRIES:
        if n:
            return f"max_entries must be 0 for {name} (got {n})"
    elif not n:
        return f"max_entries must not be 0 for {name}"
    if t == _T.LPM_TRIE:
        if not attr.map_flags & _NO_PREALLOC:
            return "LPM_TRIE maps need map_flags BPF_F_NO_PREALLOC"
        if not 5 <= ks <= 4 + 256:
            return f"key_size of an LPM_TRIE must be 4 (prefix length) + 1..256 data bytes (got {ks})"
    if t in _LOCAL_STORAGE:
        if not attr.map_flags & _NO_PREALLOC:
            return f"{name} maps need map_flags BPF_F_NO_PREALLOC"
        if not attr.btf_key_type_id or not attr.btf_value_type_id:
            return f"{name} maps need BTF: btf_fd, btf_key_type_id and btf_value_type_id"
    if t in (_T.ARRAY_OF_MAPS, _T.HASH_OF_MAPS) and not attr.inner_map_fd:
        return f"inner_map_fd (a template inner map) is required for {name}"
    return None


def _kernel_older_than(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) < (major, minor)
    except (ValueError, IndexError):
        return False


def _field(attr: ctypes.Structure, name: str) -> int | None:
    value = getattr(attr, name, None)
    return value if isinstance(value, int) else None


def bpf_hint(cmd: int, err: int, attr: ctypes.Structure | None = None) -> str | None:
    """What the likely cause of bpf(`cmd`) failing with `err` is, or None when nothing useful is known."""
    if err in (_errno.EPERM, _errno.EACCES):
        if cmd == Cmd.PROG_LOAD and attr is not None and err == _errno.EACCES:
            return "the verifier refused the program (load with a log level to see why)"
        if cmd == Cmd.MAP_UPDATE_ELEM and err == _errno.EPERM:
            return "the map is frozen or read-only from user space (BPF_F_RDONLY, BPF_MAP_FREEZE)"
        return permission_hint()
    if err == _errno.E2BIG:
        if cmd == Cmd.MAP_CREATE:
            return "key_size, value_size or max_entries is too large for this map type"
        if cmd in (Cmd.MAP_UPDATE_ELEM, Cmd.MAP_UPDATE_BATCH):
            return "the map is full (max_entries elements)"
        if cmd == Cmd.PROG_LOAD:
            return "the program has too many instructions (insn_cnt), or the attr sets a field this kernel " \
                   "does not know"
        return "the attr sets a field this kernel does not know (non-zero bytes past its bpf_attr)"
    if err == _errno.EINVAL:
        if cmd == Cmd.MAP_CREATE and isinstance(attr, MapCreateAttr) and (hint := map_create_hint(attr)):
            return hint
        if cmd == Cmd.MAP_CREATE:
            return ("map_type, key_size, value_size, max_entries or map_flags is not valid for this "
                    "map type (or the map type is unknown to this kernel)")
        if cmd in _ELEM_CMDS:
            return "flags are not valid for this map, or the operation does not apply to its type"
        if cmd in _BATCH_CMDS:
            return "batch flags/count are not valid, or this map type has no batch operations"
        if cmd == Cmd.PROG_LOAD:
            return "prog_type, expected_attach_type, attach_btf_id, prog_flags or the license is not valid " \
                   "for this kernel"
        if cmd == Cmd.PROG_TEST_RUN:
            return "this program type cannot be test-run with these arguments (data/ctx sizes, flags, repeat)"
        if cmd in (Cmd.OBJ_PIN, Cmd.OBJ_GET):
            return "the path is not on a bpf file system (mount -t bpf bpf /sys/fs/bpf)"
        if cmd == Cmd.LINK_CREATE:
            return "attach_type does not match the program's expected_attach_type, or target is wrong"
        return None
    if err == _errno.ENOENT:
        if cmd in _ELEM_CMDS:
            return "no such key"
        if cmd == Cmd.OBJ_GET:
            return "no object is pinned at this path"
        return "no such object"
    if err == _errno.EEXIST:
        if cmd in (Cmd.MAP_UPDATE_ELEM, Cmd.MAP_UPDATE_BATCH):
            return "the key exists (BPF_NOEXIST)"
        if cmd == Cmd.OBJ_PIN:
            return "the pin path exists"
    if err == _errno.EBADF:
        return "the fd is closed or does not refer to a bpf object of the right kind"
    if err == _errno.ENOSPC:
        if cmd == Cmd.PROG_LOAD:
            return "the verifier log buffer is too small"
        return "the output buffer is too small"
    if err == _errno.EBUSY and cmd == Cmd.MAP_FREEZE:
        return "the map is mmap-ed writable or already frozen"
    if err in (_errno.EOPNOTSUPP, ENOTSUPP):
        return "this operation is not supported for this object type"
    if err == _errno.EFAULT:
        return "the kernel could not read or write a user buffer (a pointer or size in the attr is wrong)"
    if err == _errno.ENOSYS:
        return "this kernel has no bpf(2) syscall (CONFIG_BPF_SYSCALL is off)"
    return None


def bpf_error(cmd: int, err: int, attr: ctypes.Structure | None = None,
              what: str | None = None) -> KernelError:
    """The `KernelError` for bpf(`cmd`) failing with `err`; `what` names the object (``map 'counts'``)."""
    from bpfkit.kernel.syscall import cmd_name

    hint = bpf_hint(cmd, err, attr)
    if what:
        hint = f"{what}: {hint}" if hint else what
    return KernelError(f"bpf({cmd_name(cmd)})", err, hint)


def perf_event_error(err: int, attr: ctypes.Structure) -> KernelError:
    """The `KernelError` for perf_event_open(2) failing with `err`."""
    hint = None
    if err in (_errno.EPERM, _errno.EACCES):
        paranoid = _sysctl("kernel.perf_event_paranoid")
        hint = permission_hint("perf_event_open(2)").replace("CAP_BPF (plus", "CAP_PERFMON (or")
        if paranoid is not None:
            hint += f" (kernel.perf_event_paranoid={paranoid})"
    elif err == _errno.ENOENT:
        hint = "no such event type or config (a PMU, tracepoint id or probe that does not exist)"
    elif err == _errno.EINVAL:
        hint = "the perf_event_attr is not valid for this event type (type, config, sample settings)"
    elif err == _errno.E2BIG:
        hint = "perf_event_attr.size is larger than this kernel knows, with non-zero bytes past it"
    t = _field(attr, "type")
    return KernelError(f"perf_event_open(type {t})", err, hint)


def mount_error(err: int, fstype: str, target: str) -> KernelError:
    """The `KernelError` for mounting `fstype` at `target` failing with `err`."""
    hint = None
    if err in (_errno.EPERM, _errno.EACCES):
        hint = f"mounting needs CAP_SYS_ADMIN; as root run: mount -t {fstype} {fstype} {target}"
    elif err == _errno.ENODEV:
        hint = f"this kernel has no {fstype} file system"
    elif err == _errno.ENOENT:
        hint = f"{target} does not exist"
    return KernelError(f"mount({fstype} on {target})", err, hint)
