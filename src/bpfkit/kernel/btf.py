"""BTF objects in the kernel: load a blob (BPF_BTF_LOAD), open one by id, read its info; the running
kernel's own BTF (cached); and sanitizing a blob for kernels that do not know newer BTF kinds.

Minimum kernel: 4.18 (BPF_BTF_LOAD); 5.2 for DATASEC/VAR, 5.13 FLOAT, 5.16 DECL_TAG, 5.17 TYPE_TAG,
6.0 ENUM64 (kernel/bpf/btf.c).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
from collections.abc import Iterable

from bpfkit._records import record
from bpfkit.btf import (
    BtfBuilder,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Ptr,
    Spec,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    load_btf,
)
from bpfkit.errors import BtfError, KernelError
from bpfkit.kernel import objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.uapi.attr import BpfBtfInfo, BtfLoadAttr
from bpfkit.uapi.btf import Kind
from bpfkit.uapi.enums import Cmd

VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
_LOG_SIZE = 1 << 20


@record
class BtfInfo:
    """`struct bpf_btf_info` of a loaded BTF object."""

    id: int
    size: int
    name: str
    kernel_btf: bool


class BtfHandle:
    """A BTF object in the kernel (its fd), e.g. a program object's BTF for maps and func/line info."""

    def __init__(self, fd: Fd, spec: Spec | None = None) -> None:
        self._fd = fd
        self.spec = spec

    @classmethod
    def load(cls, btf: Spec | bytes, *, sanitize: bool = True, log_level: int = 1,
             sys: Syscalls | None = None) -> BtfHandle:
        """Load `btf` (a Spec or a raw blob) with BPF_BTF_LOAD.

        With `sanitize`, kinds the running kernel does not know are first replaced by ones it does
        (see `sanitize_btf`). A refusal raises `KernelError` with the tail of the kernel's BTF log.
        """
        sys = sys or current()
        spec = btf if isinstance(btf, Spec) else load_btf(btf)
        data = spec.data
        if sanitize:
            missing = unsupported_kinds(spec)
            if missing:
                data = sanitize_btf(spec, missing)
        return cls(_btf_load(sys, data, log_level), spec)

    @classmethod
    def from_id(cls, btf_id: int, sys: Syscalls | None = None) -> BtfHandle:
        """Open the BTF object with id `btf_id` (BPF_BTF_GET_FD_BY_ID)."""
        return cls(objects.fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id, "BTF", sys))

    @property
    def fd(self) -> Fd:
        return self._fd

    def fileno(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> BtfHandle:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: object) -> None:
        self.close()

    def info(self) -> BtfInfo:
        """Id, size, name and whether it is a kernel (vmlinux/module) BTF."""
        name = ctypes.create_string_buffer(64)
        raw = BpfBtfInfo(name=ctypes.addressof(name), name_len=len(name))
        objects.info_by_fd(self._fd, raw)
        return BtfInfo(int(raw.id), int(raw.btf_size), objects.c_string(name.raw), bool(raw.kernel_btf))

    @property
    def id(self) -> int:
        return self.info().id

    def __repr__(self) -> str:
        return f"<BtfHandle fd={-1 if self.closed else self.fileno()}>"


def _btf_load(sys: Syscalls, data: bytes, log_level: int) -> Fd:
    blob = ctypes.create_string_buffer(data, len(data))
    attr = BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(data))
    try:
        return Fd(sys.bpf(Cmd.BTF_LOAD, attr), "BTF", sys)
    except KernelError as e:
        err = e.errno or 0
        if not log_level or err in (_errno.EPERM, _errno.ENOMEM):
            raise bpf_error(Cmd.BTF_LOAD, err, attr, "BTF") from None
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr.btf_log_buf, attr.btf_log_size, attr.btf_log_level = ctypes.addressof(log), _LOG_SIZE, log_level
    try:
        return Fd(sys.bpf(Cmd.BTF_LOAD, attr), "BTF", sys)
    except KernelError as e:
        text = log.value.decode(errors="replace").strip().splitlines()
        reason = " | ".join(text[-4:]) if text else "no log"
        raise KernelError("bpf(BPF_BTF_LOAD)", e.errno or 0,
                          f"the kernel refused the BTF: {reason}") from None


# ------------------------------------------------------------------------------------------ kernel BTF


@functools.lru_cache(maxsize=1)
def vmlinux_spec(path: str = VMLINUX_PATH) -> Spec:
    """The running kernel's BTF, read once from /sys/kernel/btf/vmlinux (no root needed)."""
    if not os.path.exists(path):
        raise BtfError(f"{path} does not exist: the kernel was built without CONFIG_DEBUG_INFO_BTF",
                       where=path)
    return load_btf(path)


# ------------------------------------------------------------------------------------------ sanitizing

_PROBE_TYPES: dict[Kind, list[Type]] = {
    Kind.FLOAT: [Float("float", 4)],
    Kind.DECL_TAG: [Int("int", 4, IntEncoding.SIGNED), Var("v", 1), DeclTag("tag", 2)],
    Kind.TYPE_TAG: [Int("int", 4, IntEncoding.SIGNED), TypeTag("tag", 1), Ptr(2)],
    Kind.ENUM64: [Enum64("e", 8, (EnumValue("a", 1 << 40),))],
    Kind.DATASEC: [Int("int", 4, IntEncoding.SIGNED), Var("v", 1), Datasec(".data", 4, ())],
    Kind.FUNC: [FuncProto(0), Func("f", 1, FuncLinkage.GLOBAL)],
}


@functools.cache
def probe_btf_kind(kind: Kind) -> bool:
    """Whether the running kernel accepts BTF of `kind` (loads a tiny blob using it)."""
    types = _PROBE_TYPES.get(kind)
    if types is None:
        return True
    b = BtfBuilder()
    b.add_all(types)
    try:
        fd = _btf_load(current(), b.marshal(), 0)
    except KernelError:
        return False
    fd.close()
    return True


def unsupported_kinds(spec: Spec) -> frozenset[Kind]:
    """The kinds used in `spec` that the running kernel does not know."""
    used = {t.kind for t in spec.types()}
    if Kind.VAR in used:
        used.add(Kind.DATASEC)
    return frozenset(k for k in used if k in _PROBE_TYPES and not probe_btf_kind(k))


def sanitize_btf(spec: Spec, unsupported: Iterable[Kind]) -> bytes:
    """`spec` re-encoded with each type of an `unsupported` kind replaced, keeping every type id:
    FLOAT -> struct of the same size, DECL_TAG -> int, TYPE_TAG -> const, ENUM64 -> union of the same
    size, DATASEC -> struct, VAR -> int, FUNC -> typedef, FUNC_PROTO -> enum (what older kernels accept)."""
    drop = set(unsupported)
    if Kind.DATASEC in drop:
        drop.add(Kind.VAR)
    if Kind.FUNC in drop:
        drop.add(Kind.FUNC_PROTO)
    b = BtfBuilder()
    for t in spec.types():
        b.add(_replacement(t) if t.kind in drop else t)
    return b.marshal(spec.byteorder)  # type: ignore[arg-type]


def _replacement(t: Type) -> Type:
    if isinstance(t, Float):
        return Struct(t.name, t.size)
    if isinstance(t, DeclTag | Var):
        return Int(t.name, 1)
    if isinstance(t, TypeTag):
        return Const(t.type_id)
    if isinstance(t, Enum64):
        return Union(t.name, t.size)
    if isinstance(t, Datasec):
        return Struct(t.name, t.size)
    if isinstance(t, Func):
        return Typedef(t.name, t.type_id)
    if isinstance(t, FuncProto):
        return Enum("", 4, tuple(EnumValue(p.name, 0) for p in t.params if p.name))
    return t
