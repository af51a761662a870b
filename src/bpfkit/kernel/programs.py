"""`Program`: load a program into the kernel (BPF_PROG_LOAD), run it (BPF_PROG_TEST_RUN), inspect it.

The verifier log: with ``log_level=0`` a failed load is tried again with level 1 and a buffer, so the
`VerifierError` can say why. With a log level the buffer grows on ENOSPC (to the size the kernel asks
for, ``log_true_size``, Linux 6.4, else 4x) up to ``max_log_size``; past that the (partial) log is kept
and marked truncated.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bpfkit.errors import AsmError, KernelError, VerifierError
from bpfkit.kernel import objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd, FdOwner
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.obj.spec import ProgramSpec
from bpfkit.uapi.attr import ProgLoadAttr, ProgTestRunAttr
from bpfkit.uapi.enums import AttachType, Cmd, ProgType, StatsType

if TYPE_CHECKING:
    from bpfkit.kernel.proginfo import ProgramInfo as ProgramInfo
    from bpfkit.kernel.proginfo import read_info as read_info
    from bpfkit.kernel.testrun import TestRunResult as TestRunResult

DEFAULT_LOG_SIZE = 64 * 1024
"""First verifier log buffer (bytes)."""
MAX_LOG_SIZE = 64 * 1024 * 1024
"""Largest verifier log buffer bpfkit grows to by default (the kernel's own limit is 1 GiB)."""

# Errors after which loading again with a log can explain the failure (the verifier ran, or the attr
# check that failed logs its reason). EPERM/EBADF/ENOMEM come before the verifier writes anything.
_LOG_WORTHY = frozenset({_errno.EACCES, _errno.EINVAL, _errno.E2BIG, _errno.EFAULT, _errno.ENOENT,
                         _errno.ENOTSUP, 524, _errno.ERANGE, _errno.EBUSY, _errno.EDEADLK, _errno.ELOOP})


def _prog_type(value: int) -> ProgType | int:
    try:
        return ProgType(value)
    except ValueError:
        return value


def _insn_bytes(insns: Any) -> bytes:
    if isinstance(insns, (bytes, bytearray, memoryview)):
        data = bytes(insns)
    else:
        from bpfkit.isa import encode

        data = encode(insns)
    if not data or len(data) % 8:
        raise AsmError(f"bytecode must be a non-empty multiple of 8 bytes, got {len(data)}")
    return data


def _fileno(obj: Any) -> int:
    return int(obj.fileno()) if hasattr(obj, "fileno") else int(obj)


class Program(FdOwner):
    """A loaded program. Make one with `load`, `from_pinned`, `from_id` or `from_fd`; close it when done.

    `verifier_log` holds the log of a load made with a log level (None otherwise).
    """

    def __init__(self, fd: Fd, prog_type: ProgType | int, name: str = "",
                 expected_attach_type: AttachType | int | None = None, verifier_log: str | None = None,
                 log_truncated: bool = False) -> None:
        self._fd = fd
        self.type = prog_type
        self.name = name
        self.expected_attach_type = expected_attach_type
        self.verifier_log = verifier_log
        self.log_truncated = log_truncated
        self._id: int | None = None

    # --- loading -------------------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        program: ProgramSpec | bytes | Sequence[Any],
        prog_type: ProgType | int | None = None,
        *,
        name: str | None = None,
        license: str | None = None,
        expected_attach_type: AttachType | int | None = None,
        attach_btf_id: int | None = None,
        attach_btf_obj: Any = None,
        attach_prog: Any = None,
        flags: int | None = None,
        kern_version: int | None = None,
        log_level: int = 0,
        log_size: int = DEFAULT_LOG_SIZE,
        max_log_size: int = MAX_LOG_SIZE,
        btf: Any = None,
        func_info: bytes | None = None,
        func_info_rec_size: int | None = None,
        line_info: bytes | None = None,
        line_info_rec_size: int | None = None,
        fd_array: Sequence[Any] = (),
        ifindex: int = 0,
        sys: Syscalls | None = None,
    ) -> Program:
        """Load `program` (a ProgramSpec, bytecode, or instructions for `bpfkit.isa.encode`).

        Keyword arguments override the spec's fields. `btf` is the BTF object that `func_info` and
        `line_info` refer to; `attach_btf_obj` the module BTF, `attach_prog` the target program of
        an extension or fentry on a BPF program. Raises `VerifierError` (with the whole log) when the
        verifier refuses the program, `KernelError` for other failures.
        Minimum kernel: 3.19; each program type has its own.
        """
        if isinstance(program, ProgramSpec):
            spec = program
        else:
            if prog_type is None:
                raise TypeError("Program.load: prog_type is needed when loading bare instructions")
            spec = ProgramSpec(ProgType.UNSPEC, _insn_bytes(program))  # prog_type below wins
        ptype = prog_type if prog_type is not None else spec.type
        name = spec.name if name is None else name
        lic = spec.license if license is None else license
        eat = expected_attach_type if expected_attach_type is not None else spec.expected_attach_type
        code = _insn_bytes(spec.insns)
        sys = sys or current()

        keep: list[Any] = []  # buffers the attr points into, alive until the call returns

        def addr(data: bytes) -> int:
            buf = ctypes.create_string_buffer(data)
            keep.append(buf)
            return ctypes.addressof(buf)

        attr = ProgLoadAttr(
            prog_type=ptype, insn_cnt=len(code) // 8, insns=addr(code), license=addr(lic.encode()),
            kern_version=spec.kern_version if kern_version is None else kern_version,
            prog_flags=spec.flags if flags is None else flags, prog_name=objects.kernel_name(name),
            prog_ifindex=ifindex, expected_attach_type=int(eat or 0),
            attach_btf_id=spec.attach_btf_id if attach_btf_id is None else attach_btf_id,
        )
        if attach_prog is not None:
            attr.attach_prog_fd = _fileno(attach_prog)
        elif attach_btf_obj is not None:
            attr.attach_btf_obj_fd = _fileno(attach_btf_obj)
        if btf is not None:
            attr.prog_btf_fd = _fileno(btf)
        finfo = spec.func_info if func_info is None else func_info
        if finfo:
            attr.func_info_rec_size = func_info_rec_size or spec.func_info_rec_size or 8
            attr.func_info = addr(finfo)
            attr.func_info_cnt = len(finfo) // attr.func_info_rec_size
        linfo = spec.line_info if line_info is None else line_info
        if linfo:
            attr.line_info_rec_size = line_info_rec_size or spec.line_info_rec_size or 16
            attr.line_info = addr(linfo)
            attr.line_info_cnt = len(linfo) // attr.line_info_rec_size
        if fd_array:
            arr = (ctypes.c_int32 * len(fd_array))(*(_fileno(f) for f in fd_array))
            keep.append(arr)
            attr.fd_array = ctypes.addressof(arr)

        fd, log, truncated = _load_with_log(sys, attr, log_level, log_size, max_log_size, name)
        label = f"program {name!r}" if name else "program"
        return cls(Fd(fd, label, sys), _prog_type(ptype), name, eat, log, truncated)

    @classmethod
    def from_fd(cls, fd: Fd | int) -> Program:
        """Wrap a program fd (taking ownership), learning its type and name from the kernel."""
        from bpfkit.kernel.proginfo import read_info

        owned = fd if isinstance(fd, Fd) else Fd(fd, "program")
        try:
            info = read_info(owned)
        except BaseException:
            owned.close()
            raise
        prog = cls(owned, info.type, info.name)
        prog._id = info.id
        return prog

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> Program:
        """Open the program pinned at `path` on a bpf file system."""
        return cls.from_fd(objects.get_pinned(path, "program"))

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        """Open the program with kernel id `prog_id` (needs CAP_SYS_ADMIN)."""
        return cls.from_fd(objects.fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id, "program"))

    # --- ownership -----------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        t = self.type.name if isinstance(self.type, ProgType) else self.type
        return f"<Program {self.name!r} {t}>"

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the program at `path` on a bpf file system; remove the file (os.unlink) to unpin."""
        objects.pin(self._fd, path)

    # --- running -------------------------------------------------------------------------------------------

    def test_run(
        self,
        data_in: bytes = b"",
        *,
        data_out_size: int | None = None,
        ctx_in: bytes | ctypes.Structure | None = None,
        ctx_out_size: int | None = None,
        repeat: int = 1,
        flags: int = 0,
        cpu: int = 0,
        batch_size: int = 0,
    ) -> TestRunResult:
        """Run the program on `data_in` (a packet) and/or `ctx_in` in the kernel (BPF_PROG_TEST_RUN).

        `data_out_size` defaults to len(data_in) + 512 (programs may grow the packet); a too small
        output buffer is grown to what the kernel reports. `duration_ns` is the mean over `repeat` runs.
        Minimum kernel: 4.12; ctx_in/ctx_out 5.2; flags/cpu 5.10.
        """
        data = bytes(data_in)
        ctx = bytes(ctx_in) if ctx_in is not None else b""
        out_size = len(data) + 512 if data_out_size is None and data else (data_out_size or 0)
        ctx_size = len(ctx) if ctx_out_size is None else ctx_out_size
        from bpfkit.kernel.testrun import TestRunResult

        for _ in range(3):
            din = ctypes.create_string_buffer(data)
            dout = ctypes.create_string_buffer(out_size)
            cin = ctypes.create_string_buffer(ctx)
            cout = ctypes.create_string_buffer(ctx_size)
            attr = ProgTestRunAttr(prog_fd=self._fd.fileno(), repeat=repeat, flags=flags, cpu=cpu,
                                   batch_size=batch_size)
            if data:
                attr.data_in, attr.data_size_in = ctypes.addressof(din), len(data)
            if out_size:
                attr.data_out, attr.data_size_out = ctypes.addressof(dout), out_size
            if ctx:
                attr.ctx_in, attr.ctx_size_in = ctypes.addressof(cin), len(ctx)
            if ctx_size:
                attr.ctx_out, attr.ctx_size_out = ctypes.addressof(cout), ctx_size
            try:
                self._fd.syscalls.bpf(Cmd.PROG_TEST_RUN, attr)
            except KernelError as e:
                grow = attr.data_size_out > out_size or attr.ctx_size_out > ctx_size
                if e.errno == _errno.ENOSPC and grow:
                    out_size = max(out_size, attr.data_size_out)
                    ctx_size = max(ctx_size, attr.ctx_size_out)
                    continue
                raise bpf_error(Cmd.PROG_TEST_RUN, e.errno or 0, attr, self._label()) from None
            n_out = min(attr.data_size_out, out_size) if out_size else 0
            n_ctx = min(attr.ctx_size_out, ctx_size) if ctx_size else 0
            return TestRunResult(int(attr.retval), dout.raw[:n_out], cout.raw[:n_ctx], int(attr.duration))
        raise KernelError("bpf(BPF_PROG_TEST_RUN)", _errno.ENOSPC, f"{self._label()}: output keeps growing")

    def _label(self) -> str:
        return f"program {self.name!r}" if self.name else "program"

    # --- introspection ------------------------------------------------------------------------------------

    def info(self) -> ProgramInfo:
        """The kernel's view of the program: id, tag, map ids, run statistics..."""
        from bpfkit.kernel.proginfo import read_info  # not needed to load or run (start-up)

        return read_info(self._fd)

    @property
    def id(self) -> int:
        if self._id is None:
            self._id = self.info().id
        return self._id

    @property
    def tag(self) -> str:
        """The program tag (hex SHA-1 prefix of the instructions, as bpftool shows it)."""
        return self.info().tag

    def xlated(self) -> bytes:
        """The instructions as the kernel rewrote them (what bpftool prog dump xlated shows)."""
        from bpfkit.kernel.proginfo import dump

        return dump(self._fd, jited=False)

    def jited(self) -> bytes:
        """The JIT-compiled machine code (empty when the JIT is off)."""
        from bpfkit.kernel.proginfo import dump

        return dump(self._fd, jited=True)


class _Refused(Exception):
    """Internal: a load with a log buffer failed with `err`; `log` is what the verifier wrote."""

    def __init__(self, err: int, log: str, truncated: bool) -> None:
        super().__init__(err)
        self.err, self.log, self.truncated = err, log, truncated


def enable_stats(stats_type: StatsType = StatsType.RUN_TIME, sys: Syscalls | None = None) -> Fd:
    """Count run_cnt/run_time_ns of every program while the returned Fd is open (BPF_ENABLE_STATS).
    Minimum kernel: 5.8."""
    sys = sys or current()
    from bpfkit.uapi.attr import EnableStatsAttr  # a lazy layout (uapi._attr_lazy)

    attr = EnableStatsAttr(type=stats_type)
    return Fd(sys.bpf(Cmd.ENABLE_STATS, attr), "bpf stats", sys)


def _load_with_log(sys: Syscalls, attr: ProgLoadAttr, log_level: int, log_size: int, max_log_size: int,
                   name: str) -> tuple[int, str | None, bool]:
    """Run BPF_PROG_LOAD; returns (fd, log or None, log truncated)."""
    label = f"program {name!r}" if name else "program"
    level = log_level
    if level == 0:
        try:
            return sys.bpf(Cmd.PROG_LOAD, attr), None, False
        except KernelError as e:
            if e.errno not in _LOG_WORTHY:
                raise bpf_error(Cmd.PROG_LOAD, e.errno or 0, attr, label) from None
        level = 1  # BPF_LOG_LEVEL1: enough to say why
    try:
        return _load_logged(sys, attr, level, log_size, max_log_size)
    except _Refused as r:
        if not r.log.strip():
            raise bpf_error(Cmd.PROG_LOAD, r.err, attr, label) from None
        raise VerifierError("bpf(BPF_PROG_LOAD)", r.err, r.log, program=name or None,
                            truncated=r.truncated) from None


def _load_logged(sys: Syscalls, attr: ProgLoadAttr, level: int, size: int,
                 max_size: int) -> tuple[int, str | None, bool]:
    """Load with a log buffer, growing it on ENOSPC; raises _Refused with the log on failure."""
    size = max(128, min(size, max_size))
    try:
        while True:
            buf = ctypes.create_string_buffer(size)
            attr.log_level, attr.log_size, attr.log_buf = level, size, ctypes.addressof(buf)
            attr.log_true_size = 0
            try:
                return sys.bpf(Cmd.PROG_LOAD, attr), _text(buf), False
            except KernelError as e:
                err = e.errno or 0
                if err != _errno.ENOSPC:
                    raise _Refused(err, _text(buf), False) from None
            if size < max_size:
                wanted = int(attr.log_true_size)
                size = min(max_size, wanted if wanted > size else size * 4)
                continue
            # The log does not fit: keep what there is, and find out whether the program loads.
            partial = _text(buf)
            attr.log_level, attr.log_size, attr.log_buf = 0, 0, 0
            try:
                return sys.bpf(Cmd.PROG_LOAD, attr), partial, True
            except KernelError as e2:
                raise _Refused(e2.errno or 0, partial, True) from None
    finally:
        attr.log_level, attr.log_size, attr.log_buf = 0, 0, 0


def _text(buf: ctypes.Array[ctypes.c_char]) -> str:
    return buf.value.decode(errors="replace")


def __getattr__(name: str) -> Any:
    # `ProgramInfo` and `read_info` live in `bpfkit.kernel.proginfo`, imported when first asked for.
    if name in ("ProgramInfo", "read_info"):
        from bpfkit.kernel import proginfo

        value = getattr(proginfo, name)
        globals()[name] = value
        return value
    if name == "TestRunResult":  # in `bpfkit.kernel.testrun`: loading a program does not need it
        from bpfkit.kernel.testrun import TestRunResult

        globals()[name] = TestRunResult
        return TestRunResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
