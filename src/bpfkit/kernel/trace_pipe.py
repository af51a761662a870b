"""Reading the kernel trace buffer (tracefs ``trace_pipe``), where bpf_printk/bpf_trace_printk writes.

Reading trace_pipe consumes what is read, for every reader on the system: run one reader at a time.
tracefs is mounted at /sys/kernel/tracing when missing (root). Lines are parsed by
`bpfkit.events.trace_pipe`; ``CPU:n [LOST k EVENTS]`` lines add to `lost` instead of being yielded.
"""

from __future__ import annotations

import errno as _errno
import os
import select
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from bpfkit.errors import KernelError
from bpfkit.events.trace_pipe import LostEvents, TraceEvent, TraceParseError, parse_line
from bpfkit.kernel import tracefs

_READ_SIZE = 1 << 16


class TracePipe:
    """An open trace_pipe: `read(timeout_ms)` returns parsed events, iteration yields them as they come.

    Lines that are not trace events are skipped with their text kept in `unparsed` (the last 100).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        p = Path(path) if path is not None else tracefs.tracefs() / "trace_pipe"
        try:
            self._fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            hint = ("the trace buffer is busy: another tracer is reading or mapping it; try again"
                    if e.errno == _errno.EBUSY else None)
            raise KernelError(f"open({p})", e.errno or _errno.EIO, hint) from None
        self.path = p
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._partial = b""
        self.lost = 0
        self.unparsed: list[str] = []

    def fileno(self) -> int:
        if self._fd < 0:
            raise KernelError("trace_pipe", _errno.EBADF, "the reader is closed")
        return self._fd

    def _lines(self, timeout_ms: int | None) -> list[bytes]:
        fd = self.fileno()
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            if not self._poll.poll(-1 if timeout_ms is None else max(timeout_ms, 0)):
                return []
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return []
        except OSError as e:
            raise KernelError(f"read({self.path})", e.errno or _errno.EIO) from None
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return lines

    def read(self, timeout_ms: int | None = 0) -> list[TraceEvent]:
        """The events available now, waiting up to `timeout_ms` (None: forever) when there are none."""
        out: list[TraceEvent] = []
        for raw in self._lines(timeout_ms):
            line = raw.decode("utf-8", "replace")
            if not line.strip():
                continue
            try:
                ev = parse_line(line)
            except TraceParseError:
                self.unparsed = [*self.unparsed[-99:], line]
                continue
            if isinstance(ev, LostEvents):
                self.lost += ev.count
            else:
                out.append(ev)
        return out

    def events(self, timeout_ms: int | None = None) -> Iterator[TraceEvent]:
        """Yield events as they come; stop after `timeout_ms` without any (None: never stop)."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            left = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if left is not None and left < 0:
                return
            batch = self.read(left)
            if batch and timeout_ms is not None:
                deadline = time.monotonic() + timeout_ms / 1000
            yield from batch

    def __iter__(self) -> Iterator[TraceEvent]:
        return self.events()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> TracePipe:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            try:
                warnings.warn("TracePipe was never closed", ResourceWarning, stacklevel=2, source=self)
            except Exception:
                pass
            self.close()
