"""`Fd`: ownership of one kernel file descriptor (a map, program, link, BTF, perf event...).

An `Fd` closes its descriptor exactly once: on `close()`, at the end of a `with` block, or, as a last
resort, when garbage collected, where it warns `ResourceWarning` because the owner forgot to close it.
"""

from __future__ import annotations

import warnings
from types import TracebackType
from typing import TypeVar

from bpfkit.errors import KernelError
from bpfkit.kernel import syscall


class Fd:
    """An owned file descriptor. `what` names the object for messages (``map 'counts'``)."""

    __slots__ = ("_fd", "_sys", "what")

    unclosed: int = 0
    """How many Fds were garbage collected while still open (tests check it stays put)."""

    def __init__(self, fd: int, what: str = "fd", sys: syscall.Syscalls | None = None) -> None:
        if fd < 0:
            raise ValueError(f"invalid fd {fd} for {what}")
        self._fd = fd
        self._sys = sys if sys is not None else syscall.current()
        self.what = what

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def syscalls(self) -> syscall.Syscalls:
        """The `Syscalls` this fd was made with (and will be closed with)."""
        return self._sys

    def fileno(self) -> int:
        """The descriptor number; raises `KernelError(EBADF)` once closed."""
        if self._fd < 0:
            raise KernelError(f"{self.what}", 9, "the fd is closed")  # 9: EBADF
        return self._fd

    def __int__(self) -> int:
        return self.fileno()

    def __index__(self) -> int:
        return self.fileno()

    def dup(self) -> Fd:
        """A new `Fd` for the same kernel object, owned separately."""
        return Fd(self._sys.dup(self.fileno()), self.what, self._sys)

    def detach(self) -> int:
        """Give up ownership: return the number, which the caller must now close."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def close(self) -> None:
        """Close the descriptor; later calls do nothing."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            self._sys.close(fd)

    def __enter__(self) -> Fd:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd < 0:
            return
        Fd.unclosed += 1
        try:
            warnings.warn(f"{self.what} (fd {fd}) was never closed", ResourceWarning, stacklevel=2,
                          source=self)
        except Exception:
            pass
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<Fd {self.what} {state}>"


_Owner = TypeVar("_Owner", bound="FdOwner")


class FdOwner:
    """Base of kernel objects that own one `Fd` (maps, programs, links): fileno, close, `with`."""

    _fd: Fd

    @property
    def fd(self) -> Fd:
        return self._fd

    def fileno(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        """Close the fd (the object lives on while pinned, attached or referenced); idempotent."""
        self._fd.close()

    def __enter__(self: _Owner) -> _Owner:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
