"""The bpfkit exception hierarchy.

Every error bpfkit raises on bad input or a failed kernel call is a `BpfkitError`, so callers can catch
one class. This module imports nothing else from bpfkit.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Sequence
from typing import Any


class BpfkitError(Exception):
    """Base of every error bpfkit raises on purpose."""


class ParseError(BpfkitError):
    """Input bytes or text could not be parsed.

    `offset` is the byte offset (or instruction index, or line number, as `where` says) of the fault.
    """

    def __init__(self, message: str, offset: int | None = None, *, where: str | None = None) -> None:
        self.message = message
        self.offset = offset
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        if self.where:
            return f"{self.where}: {self.message}"
        if self.offset is not None:
            return f"at offset {self.offset}: {self.message}"
        return self.message


class ElfError(ParseError):
    """A malformed or unsupported ELF object."""


class BtfError(ParseError):
    """A malformed BTF or .BTF.ext blob, or a type that cannot be found or laid out."""


class AsmError(ParseError):
    """An invalid instruction encoding or assembly listing.

    `index` is the instruction index (for bytecode) and `line` the 1-based source line (for text).
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        self.index = index
        self.line = line
        self.source = source
        parts = []
        if line is not None:
            parts.append(f"line {line}")
        if index is not None:
            parts.append(f"instruction {index}")
        where = ", ".join(parts) or None
        if source is not None and where:
            where = f"{where} ({source.strip()!r})"
        super().__init__(message, index, where=where)


class LinkError(BpfkitError):
    """A symbol could not be linked or relocated."""

    def __init__(self, message: str, symbol: str | None = None) -> None:
        self.symbol = symbol
        super().__init__(f"{symbol}: {message}" if symbol else message)


class RelocationError(LinkError):
    """A relocation in an object could not be applied."""


class CoreRelocationError(RelocationError):
    """A CO-RE relocation could not be resolved against the target BTF."""


class CompileError(BpfkitError):
    """A compiler front end (bpftrace language or C) refused its input.

    `diagnostics` holds the rendered diagnostics, each naming file, line and column.
    """

    def __init__(self, diagnostics: Sequence[Any] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class VerificationError(BpfkitError):
    """bpfkit's own verifier refused a program; `report` explains where and why."""

    def __init__(self, report: Any) -> None:
        self.report = report
        super().__init__(str(report))


class VmError(BpfkitError):
    """A fault while running a program in the userspace VM, at instruction `pc`."""

    def __init__(self, message: str, pc: int | None = None, insn: Any = None) -> None:
        self.message = message
        self.pc = pc
        self.insn = insn
        where = ""
        if pc is not None:
            where = f"pc {pc}"
            if insn is not None:
                where += f" ({insn})"
            where += ": "
        super().__init__(where + message)


class VmMemoryError(VmError):
    """An out-of-bounds or otherwise invalid memory access in the VM."""


class VmHelperError(VmError):
    """A helper call failed or is unknown to the VM."""


class VmLimitError(VmError):
    """The instruction budget, call depth or tail-call limit was exceeded."""


# Kernel-internal errno values that leak to user space through bpf(2) (include/linux/errno.h).
_KERNEL_ERRNOS = {524: ("ENOTSUPP", "Operation is not supported")}


class KernelError(BpfkitError, OSError):
    """A system call failed; names the syscall (and bpf command) and errno."""

    def __init__(self, syscall: str, err: int, message: str | None = None) -> None:
        self.syscall = syscall
        name, text_ = _KERNEL_ERRNOS.get(err, (_errno.errorcode.get(err, str(err)), os.strerror(err)))
        self.errno_name = name
        text = f"{syscall}: {name} ({text_})"
        if message:
            text += f": {message}"
        OSError.__init__(self, err, text)
        self.errno = err
        self.strerror = text

    def __str__(self) -> str:
        return str(self.strerror)


def _is_verifier_stats(line: str) -> bool:
    return line.startswith(("processed ", "verification time ", "stack depth "))


class VerifierError(KernelError):
    """The kernel's verifier refused a program. `log` keeps the whole verifier log."""

    TAIL_LINES = 5

    def __init__(self, syscall: str, err: int, log: str, *, program: str | None = None,
                 truncated: bool = False) -> None:
        self.log = log
        self.program = program
        self.truncated = truncated
        lines = [ln for ln in log.rstrip("\n").split("\n") if ln.strip()]
        # The kernel ends a log with statistics ("processed N insns ..."); the reason is above them.
        reason_lines = [ln for ln in lines if not _is_verifier_stats(ln)]
        tail = reason_lines[-self.TAIL_LINES:]
        omitted = len(lines) - len(tail)
        reason = "\n".join(tail) if tail else "(no verifier log)"
        if omitted:
            reason += f"\n({omitted} lines omitted)"
        if truncated:
            reason += "\n(log truncated)"
        head = f"program {program!r} refused by the verifier" if program else "refused by the verifier"
        super().__init__(syscall, err, f"{head}:\n{reason}")


class NotSupportedError(KernelError):
    """The running kernel lacks a feature (`feature`, available from `min_kernel`)."""

    def __init__(self, feature: str, min_kernel: str | None = None, err: int = _errno.EOPNOTSUPP,
                 detail: str | None = None) -> None:
        self.feature = feature
        self.min_kernel = min_kernel
        msg = f"{feature} is not supported by this kernel"
        if min_kernel:
            msg += f" (needs Linux {min_kernel} or newer)"
        if detail:
            msg += f": {detail}"
        super().__init__("feature", err, msg)
