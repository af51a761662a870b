"""BTF-based tracing: fentry/fexit/fmod_ret on kernel (or BPF) functions, LSM hooks, tp_btf.

These programs name their target at load time (`attach_btf_id`, found here in the kernel's BTF with
`vmlinux_btf_id`), so attaching only says "now": BPF_LINK_CREATE with the program's attach type
(Linux 5.13 for tracing links made this way), falling back to BPF_RAW_TRACEPOINT_OPEN with no name
(Linux 5.5), which is how older kernels attach every BTF-typed tracing program.
Minimum kernel: 5.5 (fentry/fexit), 5.7 (fmod_ret, LSM).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
from typing import Any

from bpfkit.errors import KernelError, NotSupportedError
from bpfkit.kernel.attach.base import AttachedLink, link_create, program_label, syscalls_of
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.uapi.attr import LinkCreateAttr, RawTracepointOpenAttr
from bpfkit.uapi.enums import AttachType, Cmd

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

TP_BTF_PREFIX = "btf_trace_"
"""tp_btf targets are the typedefs `btf_trace_<tracepoint>` (include/trace/bpf_probe.h)."""

LSM_PREFIX = "bpf_lsm_"
"""LSM hooks are the kernel functions `bpf_lsm_<hook>` (kernel/bpf/bpf_lsm.c)."""

_TRACING_ATTACH = (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN,
                   AttachType.LSM_MAC, AttachType.TRACE_RAW_TP)


@functools.cache
def _vmlinux() -> Any:
    from bpfkit.btf import load_btf

    return load_btf(VMLINUX_BTF)


def vmlinux_btf_id(name: str, kind: str = "func") -> int:
    """The id of kernel type `name` of `kind` (``func``, ``typedef``...) in the running kernel's BTF.

    Raises NotSupportedError when there is no kernel BTF, KernelError(ENOENT) when `name` is unknown.
    """
    from bpfkit.btf import Kind

    try:
        spec = _vmlinux()
    except OSError as e:
        raise NotSupportedError("kernel BTF (CONFIG_DEBUG_INFO_BTF)", "5.4", _errno.ENOENT,
                                f"{VMLINUX_BTF}: {e}") from None
    ids = spec.find_ids(name, Kind[kind.upper()])
    if not ids:
        raise KernelError("btf", _errno.ENOENT, f"no {kind} {name!r} in the kernel's BTF ({VMLINUX_BTF})")
    return int(ids[0])


def tracing_target_id(attach_type: AttachType, target: str) -> int:
    """The `attach_btf_id` a program of `attach_type` needs to attach to `target` (a function, an LSM
    hook name without ``bpf_lsm_``, or a tracepoint name for tp_btf)."""
    if attach_type == AttachType.TRACE_RAW_TP:
        return vmlinux_btf_id(TP_BTF_PREFIX + target, "typedef")
    if attach_type == AttachType.LSM_MAC and not target.startswith(LSM_PREFIX):
        return vmlinux_btf_id(LSM_PREFIX + target)
    return vmlinux_btf_id(target)


def raw_tracepoint_open(program: Any, name: str | None, cookie: int, what: str) -> Fd:
    """BPF_RAW_TRACEPOINT_OPEN (name None: the program's own BTF target)."""
    sys = syscalls_of(program)
    buf = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = RawTracepointOpenAttr(name=ctypes.addressof(buf) if buf is not None else 0,
                                 prog_fd=program.fileno(), cookie=cookie)
    try:
        fd = sys.bpf(Cmd.RAW_TRACEPOINT_OPEN, attr)
    except KernelError as e:
        raise bpf_error(Cmd.RAW_TRACEPOINT_OPEN, e.errno or 0, attr, f"{program_label(program)} on {what}") \
            from None
    return Fd(fd, f"raw tracepoint link ({what})", sys)


def attach_tracing(program: Any, attach_type: AttachType | None = None, *, target: str = "",
                   cookie: int = 0, target_prog: Any = None) -> AttachedLink:
    """Attach a loaded fentry/fexit/fmod_ret/LSM/tp_btf `program` to the target it was loaded for.

    `attach_type` defaults to the program's `expected_attach_type`; `target` only labels the link;
    `target_prog` is the BPF program an fentry/fexit on a BPF function watches (Linux 5.5).
    """
    atype = attach_type if attach_type is not None else getattr(program, "expected_attach_type", None)
    if atype is None or AttachType(atype) not in _TRACING_ATTACH:
        raise ValueError(f"attach_tracing: {program_label(program)} needs a tracing attach type "
                         f"(fentry, fexit, fmod_ret, lsm or tp_btf), not {atype!r}")
    atype = AttachType(atype)
    what = target or atype.name.lower()
    if atype == AttachType.TRACE_RAW_TP:
        link = raw_tracepoint_open(program, None, cookie, what)
        return AttachedLink("tp_btf", what, link=link, program=program)

    def fill(attr: LinkCreateAttr) -> None:
        attr.tracing.cookie = cookie

    target_fd = target_prog.fileno() if target_prog is not None else 0
    kind = "lsm" if atype == AttachType.LSM_MAC else atype.name.lower().replace("trace_", "")
    try:
        link = link_create(program, atype, target_fd=target_fd, fill=fill, what=what)
    except KernelError as e:
        if e.errno != _errno.EINVAL or cookie or target_prog is not None:
            raise
        link = raw_tracepoint_open(program, None, 0, what)  # kernels before tracing links via LINK_CREATE
    return AttachedLink(kind, what, link=link, program=program)


def attach_fentry(program: Any, *, target: str = "", cookie: int = 0) -> AttachedLink:
    """Attach a program loaded with BPF_TRACE_FENTRY. Minimum kernel: 5.5."""
    return attach_tracing(program, AttachType.TRACE_FENTRY, target=target, cookie=cookie)


def attach_fexit(program: Any, *, target: str = "", cookie: int = 0) -> AttachedLink:
    """Attach a program loaded with BPF_TRACE_FEXIT. Minimum kernel: 5.5."""
    return attach_tracing(program, AttachType.TRACE_FEXIT, target=target, cookie=cookie)


def attach_fmod_ret(program: Any, *, target: str = "", cookie: int = 0) -> AttachedLink:
    """Attach a program loaded with BPF_MODIFY_RETURN. Minimum kernel: 5.7."""
    return attach_tracing(program, AttachType.MODIFY_RETURN, target=target, cookie=cookie)


def attach_lsm(program: Any, *, target: str = "", cookie: int = 0) -> AttachedLink:
    """Attach a program loaded with BPF_LSM_MAC (its return value decides the hook). Minimum kernel: 5.7."""
    return attach_tracing(program, AttachType.LSM_MAC, target=target, cookie=cookie)
