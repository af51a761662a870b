"""What the running kernel supports, found by trying: cached `probe_*` answers, `require_*` checks.

Program types: load ``r0 = 0; exit`` (with the attach type or target the type needs); a verifier
complaint still proves the type exists. Map types: create a tiny map of the type. Helpers: load
``call <helper>; r0 = 0; exit`` with a verifier log and read the reason: "invalid func" (unknown id),
"unknown func" and "program of this type cannot use helper" (not available to this program type) mean
no; any other complaint (wrong argument types) means the helper is there. Matching only the first two
messages would report every helper for every program type on current kernels.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import mmap
import struct

from bpfkit._records import record
from bpfkit.errors import KernelError, NotSupportedError, VerifierError
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.syscall import current
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import BtfLoadAttr
from bpfkit.uapi.enums import AttachType, Cmd, Helper, MapFlags, MapType, ProgType

# r0 = 0; exit
_RETURN_0 = bytes.fromhex("b700000000000000" "9500000000000000")

# First kernel release with each map type (include/uapi/linux/bpf.h history).
MAP_TYPE_MIN_KERNEL: dict[MapType, str] = {
    MapType.HASH: "3.19", MapType.ARRAY: "3.19", MapType.PROG_ARRAY: "4.2", MapType.PERF_EVENT_ARRAY: "4.3",
    MapType.PERCPU_HASH: "4.6", MapType.PERCPU_ARRAY: "4.6", MapType.STACK_TRACE: "4.6",
    MapType.CGROUP_ARRAY: "4.8", MapType.LRU_HASH: "4.10", MapType.LRU_PERCPU_HASH: "4.10",
    MapType.LPM_TRIE: "4.11", MapType.ARRAY_OF_MAPS: "4.12", MapType.HASH_OF_MAPS: "4.12",
    MapType.DEVMAP: "4.14", MapType.SOCKMAP: "4.14", MapType.CPUMAP: "4.15", MapType.XSKMAP: "4.18",
    MapType.SOCKHASH: "4.18", MapType.CGROUP_STORAGE: "4.19", MapType.REUSEPORT_SOCKARRAY: "4.19",
    MapType.PERCPU_CGROUP_STORAGE: "4.20", MapType.QUEUE: "4.20", MapType.STACK: "4.20",
    MapType.SK_STORAGE: "5.2", MapType.DEVMAP_HASH: "5.4", MapType.STRUCT_OPS: "5.6",
    MapType.RINGBUF: "5.8", MapType.INODE_STORAGE: "5.10", MapType.TASK_STORAGE: "5.11",
    MapType.BLOOM_FILTER: "5.16", MapType.USER_RINGBUF: "6.1", MapType.CGRP_STORAGE: "6.2",
    MapType.ARENA: "6.9",
}

# First kernel release with each program type.
PROG_TYPE_MIN_KERNEL: dict[ProgType, str] = {
    ProgType.SOCKET_FILTER: "3.19", ProgType.KPROBE: "4.1", ProgType.SCHED_CLS: "4.1",
    ProgType.SCHED_ACT: "4.1", ProgType.TRACEPOINT: "4.7", ProgType.XDP: "4.8", ProgType.PERF_EVENT: "4.9",
    ProgType.CGROUP_SKB: "4.10", ProgType.CGROUP_SOCK: "4.10", ProgType.LWT_IN: "4.10",
    ProgType.LWT_OUT: "4.10", ProgType.LWT_XMIT: "4.10", ProgType.SOCK_OPS: "4.13", ProgType.SK_SKB: "4.14",
    ProgType.CGROUP_DEVICE: "4.15", ProgType.SK_MSG: "4.17", ProgType.RAW_TRACEPOINT: "4.17",
    ProgType.CGROUP_SOCK_ADDR: "4.17", ProgType.LWT_SEG6LOCAL: "4.18", ProgType.LIRC_MODE2: "4.18",
    ProgType.SK_REUSEPORT: "4.19", ProgType.FLOW_DISSECTOR: "4.20", ProgType.CGROUP_SYSCTL: "5.2",
    ProgType.RAW_TRACEPOINT_WRITABLE: "5.2", ProgType.CGROUP_SOCKOPT: "5.3", ProgType.TRACING: "5.5",
    ProgType.STRUCT_OPS: "5.6", ProgType.EXT: "5.6", ProgType.LSM: "5.7", ProgType.SK_LOOKUP: "5.9",
    ProgType.SYSCALL: "5.14", ProgType.NETFILTER: "6.4",
}

# The expected attach type a probe load of each program type needs (kernel/bpf/syscall.c,
# bpf_prog_load_check_attach).
_PROBE_ATTACH: dict[ProgType, AttachType] = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgType.NETFILTER: AttachType.NETFILTER,
    ProgType.TRACING: AttachType.TRACE_FENTRY,
    ProgType.LSM: AttachType.LSM_MAC,
}

# Kernel functions a probe load of TRACING / LSM attaches to (present for as long as these types exist).
_PROBE_TARGET: dict[ProgType, str] = {
    ProgType.TRACING: "bpf_fentry_test1",
    ProgType.LSM: "bpf_lsm_bpf",
}


@record
class ProbeResult:
    """A probe's answer and why (`reason` is the kernel's refusal, empty when supported)."""

    supported: bool
    reason: str = ""


def _vmlinux_func_id(name: str) -> int:
    """The BTF id of kernel function `name` in /sys/kernel/btf/vmlinux (0 when unknown)."""
    try:
        from bpfkit.btf import Kind, load_btf

        ids = load_btf("/sys/kernel/btf/vmlinux").find_ids(name, Kind.FUNC)
    except Exception:  # no BTF, or a BTF this bpfkit cannot read: the probe then says why it failed
        return 0
    return ids[0] if ids else 0


def _try_load(prog_type: ProgType, attach: AttachType | None = None, attach_btf_id: int = 0) -> ProbeResult:
    """Load ``r0 = 0; exit``. A verifier complaint means the type exists (the probe program was the
    problem); a refusal without a log (unknown type, EPERM) means it cannot be used here."""
    try:
        Program.load(_RETURN_0, prog_type, expected_attach_type=attach, attach_btf_id=attach_btf_id,
                     name="probe").close()
    except VerifierError:
        return ProbeResult(True)
    except KernelError as e:
        return ProbeResult(False, str(e))
    return ProbeResult(True)


def _target(prog_type: ProgType) -> int:
    return _vmlinux_func_id(_PROBE_TARGET[prog_type]) if prog_type in _PROBE_TARGET else 0


@functools.cache
def prog_type_probe(prog_type: ProgType) -> ProbeResult:
    """Whether a program of `prog_type` loads on this kernel, and the refusal if not.

    STRUCT_OPS and EXT programs are loaded without their target (a struct_ops type, a program with
    BTF): the kernel's complaint about the missing target still shows the type is there.
    """
    target = _target(prog_type)
    if prog_type in _PROBE_TARGET and not target:
        return ProbeResult(False, f"no BTF id for {_PROBE_TARGET[prog_type]} in vmlinux BTF")
    return _try_load(prog_type, _PROBE_ATTACH.get(prog_type), target)


def probe_prog_type(prog_type: ProgType) -> bool:
    """Whether this kernel loads programs of `prog_type` (cached)."""
    return prog_type_probe(prog_type).supported


def probe_tracing_programs() -> bool:
    """Whether fentry/fexit (TRACING) programs load here; some kernels refuse them with EPERM."""
    return probe_prog_type(ProgType.TRACING)


def probe_lsm_programs() -> bool:
    """Whether LSM programs load here (needs CONFIG_BPF_LSM and the "bpf" LSM enabled)."""
    return probe_prog_type(ProgType.LSM)


@functools.cache
def probe_attach_type(prog_type: ProgType, attach_type: AttachType) -> bool:
    """Whether a program of `prog_type` loads with expected attach type `attach_type` (cached)."""
    if not probe_prog_type(prog_type):
        return False
    r = _try_load(prog_type, attach_type, _target(prog_type))
    return r.supported


@functools.cache
def helper_probe(prog_type: ProgType, helper: Helper | int) -> ProbeResult:
    """Whether programs of `prog_type` may call `helper`, and the verifier's refusal if not."""
    if not probe_prog_type(prog_type):
        return ProbeResult(False, f"program type {prog_type.name} is not supported")
    call = struct.pack("<BBhi", 0x85, 0, 0, int(helper))  # BPF_JMP|BPF_CALL, imm = helper id
    attach = _PROBE_ATTACH.get(prog_type)
    try:
        Program.load(call + _RETURN_0, prog_type, expected_attach_type=attach,
                     attach_btf_id=_target(prog_type), log_level=1, name="probe").close()
    except VerifierError as e:
        for refusal in ("invalid func ", "unknown func ", "program of this type cannot use helper"):
            for line in e.log.splitlines():
                if refusal in line:
                    return ProbeResult(False, line.strip())
        if not any(line.startswith("0: (85) call") for line in e.log.splitlines()):
            # refused before the verifier reached the call (e.g. STRUCT_OPS without its struct_ops
            # type): the load says nothing about the helper
            return ProbeResult(False, "cannot tell: the probe program was refused before its call was "
                                      f"checked ({e.strerror or 'no reason given'})")
        return ProbeResult(True)  # refused for its arguments: the helper itself is available
    except KernelError as e:
        return ProbeResult(False, str(e))
    return ProbeResult(True)


def probe_helper(prog_type: ProgType, helper: Helper | int) -> bool:
    """Whether programs of `prog_type` may call `helper` on this kernel (cached)."""
    return helper_probe(prog_type, helper).supported


def minimal_btf() -> Fd:
    """A new BTF object holding one type, ``int`` (id 1): enough for maps whose keys/values need BTF
    (task/inode/sk/cgroup storage with int values). Minimum kernel: 4.18."""
    strings = b"\0int\0"
    int_type = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)  # signed, 32 bits
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(int_type), len(int_type), len(strings))
    blob = ctypes.create_string_buffer(header + int_type + strings)
    attr = BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(blob) - 1)
    sys = current()
    return Fd(sys.bpf(Cmd.BTF_LOAD, attr), "probe BTF", sys)


def _probe_spec(map_type: MapType) -> MapSpec:
    """A small valid map of `map_type` (sizes and flags the kernel's alloc checks want)."""
    t, page = MapType, mmap.PAGESIZE
    if map_type in (t.RINGBUF, t.USER_RINGBUF):
        return MapSpec(map_type, 0, 0, page, name="probe")
    if map_type in (t.QUEUE, t.STACK, t.BLOOM_FILTER):
        return MapSpec(map_type, 0, 4, 1, name="probe")
    if map_type == t.LPM_TRIE:
        return MapSpec(map_type, 8, 4, 1, MapFlags.NO_PREALLOC, name="probe")
    if map_type == t.STACK_TRACE:
        return MapSpec(map_type, 4, 8, 1, name="probe")
    if map_type in (t.CGROUP_STORAGE, t.PERCPU_CGROUP_STORAGE):
        return MapSpec(map_type, 16, 8, 0, name="probe")  # key: struct bpf_cgroup_storage_key
    if map_type in (t.SK_STORAGE, t.INODE_STORAGE, t.TASK_STORAGE, t.CGRP_STORAGE):
        return MapSpec(map_type, 4, 4, 0, MapFlags.NO_PREALLOC, name="probe", btf_key_type_id=1,
                       btf_value_type_id=1)
    if map_type == t.ARENA:
        return MapSpec(map_type, 0, 0, 1, MapFlags.MMAPABLE, name="probe")
    if map_type in (t.ARRAY_OF_MAPS, t.HASH_OF_MAPS):
        return MapSpec(map_type, 4, 4, 1, name="probe", inner_map=MapSpec(t.ARRAY, 4, 4, 1))
    return MapSpec(map_type, 4, 4, 1, name="probe")


@functools.cache
def map_type_probe(map_type: MapType) -> ProbeResult:
    """Whether a map of `map_type` can be created here, and the refusal if not."""
    if map_type == MapType.STRUCT_OPS:
        # Needs the BTF id of a kernel struct_ops type; the map type exists wherever its program
        # type does.
        r = prog_type_probe(ProgType.STRUCT_OPS)
        return ProbeResult(r.supported, r.reason)
    spec = _probe_spec(map_type)
    btf: Fd | None = None
    try:
        if spec.btf_key_type_id:
            btf = minimal_btf()
        Map.create(spec, btf=btf).close()
    except KernelError as e:
        return ProbeResult(False, str(e))
    finally:
        if btf is not None:
            btf.close()
    return ProbeResult(True)


def probe_map_type(map_type: MapType) -> bool:
    """Whether this kernel creates maps of `map_type` (cached)."""
    return map_type_probe(map_type).supported


def require_prog_type(prog_type: ProgType) -> None:
    """Raise NotSupportedError unless programs of `prog_type` load here."""
    r = prog_type_probe(prog_type)
    if not r.supported:
        raise NotSupportedError(f"program type {prog_type.c_name}", PROG_TYPE_MIN_KERNEL.get(prog_type),
                                _errno.EOPNOTSUPP, _first_line(r.reason))


def require_map_type(map_type: MapType) -> None:
    """Raise NotSupportedError unless maps of `map_type` can be created here."""
    r = map_type_probe(map_type)
    if not r.supported:
        raise NotSupportedError(f"map type {map_type.c_name}", MAP_TYPE_MIN_KERNEL.get(map_type),
                                _errno.EOPNOTSUPP, _first_line(r.reason))


def require_helper(prog_type: ProgType, helper: Helper | int) -> None:
    """Raise NotSupportedError unless programs of `prog_type` may call `helper` here."""
    r = helper_probe(prog_type, helper)
    if not r.supported:
        name = Helper(helper).c_name if helper in Helper._value2member_map_ else f"helper #{int(helper)}"
        raise NotSupportedError(f"{name} in {prog_type.c_name} programs", None, _errno.EOPNOTSUPP,
                                _first_line(r.reason))


def require_tracing_programs() -> None:
    """Raise NotSupportedError unless fentry/fexit programs load here."""
    require_prog_type(ProgType.TRACING)


def _first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def supported_prog_types() -> list[ProgType]:
    """Every program type this kernel loads."""
    return [t for t in ProgType if t != ProgType.UNSPEC and probe_prog_type(t)]


def supported_map_types() -> list[MapType]:
    """Every map type this kernel creates."""
    return [t for t in MapType if t != MapType.UNSPEC and probe_map_type(t)]


def supported_helpers(prog_type: ProgType) -> list[Helper]:
    """The helpers programs of `prog_type` may call here."""
    return [h for h in Helper if h != Helper.UNSPEC and probe_helper(prog_type, h)]


def clear_cache() -> None:
    """Forget cached answers (after loading a module, changing sysctls...)."""
    for f in (prog_type_probe, map_type_probe, helper_probe, probe_attach_type):
        f.cache_clear()

