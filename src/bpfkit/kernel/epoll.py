"""`Poller`: one epoll instance over the fds of an event reader (ring buffers, per-CPU perf events).

Waiting blocks in epoll_wait (level-triggered: a buffer with unread data stays ready); asyncio readers
register the epoll fd itself with the running loop, which reports it readable when any member is.
"""

from __future__ import annotations

import errno as _errno
import select
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

from bpfkit.errors import KernelError


class Poller:
    """An epoll instance mapping each registered fd to a key (the index of a ring or CPU)."""

    def __init__(self) -> None:
        self._ep: select.epoll | None = select.epoll()
        self._keys: dict[int, int] = {}

    def fileno(self) -> int:
        if self._ep is None:
            raise KernelError("epoll", _errno.EBADF, "the reader is closed")
        return self._ep.fileno()

    def register(self, fd: int, key: int, events: int = select.EPOLLIN) -> None:
        """Watch `fd`; `wait` reports readiness as `key`."""
        if self._ep is None:
            raise KernelError("epoll_ctl", _errno.EBADF, "the reader is closed")
        try:
            self._ep.register(fd, events)
        except OSError as e:
            raise KernelError(f"epoll_ctl(ADD, fd {fd})", e.errno or _errno.EINVAL) from None
        self._keys[fd] = key

    def wait(self, timeout_ms: int | None = None) -> list[int]:
        """Keys of the ready fds after waiting up to `timeout_ms` (None or negative: forever)."""
        if self._ep is None:
            raise KernelError("epoll_wait", _errno.EBADF, "the reader is closed")
        timeout = -1.0 if timeout_ms is None or timeout_ms < 0 else timeout_ms / 1000.0
        try:
            events = self._ep.poll(timeout)
        except OSError as e:  # EINTR is retried by Python (PEP 475)
            raise KernelError("epoll_wait", e.errno or _errno.EINVAL) from None
        keys = self._keys
        return [keys[fd] for fd, _ in events if fd in keys]

    async def readable(self, recheck: float | None = None) -> None:
        """Wait, inside the running asyncio loop, until some registered fd is ready.

        With `recheck` (seconds), return after that long at the latest: the caller looks at the
        buffers again, so a wakeup the kernel coalesced or that arrived while the epoll fd was being
        registered with the loop costs at most that delay instead of a hang.
        """
        import asyncio  # here, not at the top: asyncio costs ~15 ms of start-up to blocking readers

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, ready)
        timer = loop.call_later(recheck, ready) if recheck is not None else None
        try:
            await fut
        finally:
            loop.remove_reader(fd)
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        """Close the epoll fd; idempotent."""
        ep, self._ep = self._ep, None
        if ep is not None:
            ep.close()
        self._keys.clear()

    @property
    def closed(self) -> bool:
        return self._ep is None
