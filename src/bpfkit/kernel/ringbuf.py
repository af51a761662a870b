"""Reading BPF ring buffers (BPF_MAP_TYPE_RINGBUF) and writing user ring buffers (USER_RINGBUF).

The kernel lets user space map a ring buffer map (kernel/bpf/ringbuf.c, ringbuf_map_mmap_kern): page 0
holds the consumer position and is writable; from page 1 come the producer position page and the data
area, read-only, with the data pages mapped twice in a row so a record that runs past the end reads
contiguously. `RingBuffer` maps each added ring that way, waits for wakeups with epoll, and hands each
committed record to a callback as a zero-copy memoryview; once the callback returns it stores the new
consumer position, so the kernel may reuse the space. On x86-64 (total store order) a plain store made
after the callback's reads is the release store the protocol asks for. The view is released at that
point: keep ``bytes(record)`` to hold on to the data.

    with RingBuffer(events_map, handle) as rb:
        while running:
            rb.poll(100)

Minimum kernel: 5.8 (RINGBUF), 6.1 (USER_RINGBUF).
"""

from __future__ import annotations

import errno as _errno
import mmap as _mmap
import struct
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from bpfkit._records import record
from bpfkit.errors import KernelError
from bpfkit.events import ringbuf as rbdec
from bpfkit.kernel.epoll import Poller
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.maps import read_info
from bpfkit.kernel.syscall import Syscalls
from bpfkit.uapi.enums import MapType

Callback = Callable[[memoryview], Any]
"""Called with each record's bytes (a memoryview valid until the callback returns)."""

PAGE_SIZE = _mmap.PAGESIZE
_POS = struct.Struct("=Q")
_WORD = struct.Struct("=I")


def _map_fd_and_size(m: Any, expect: MapType, sys: Syscalls | None) -> tuple[Fd, int, str]:
    """A private dup of the map's fd, its data size (max_entries) and a name for messages."""
    if isinstance(m, Fd):
        owned = m.dup()
    elif hasattr(m, "fd") and isinstance(m.fd, Fd):
        owned = m.fd.dup()
    else:
        base = Fd(int(m.fileno() if hasattr(m, "fileno") else m), "map", sys)
        try:
            owned = base.dup()
        finally:
            base.detach()  # not ours to close
    try:
        info = read_info(owned)
        if info.type != expect:
            t = info.type.name if isinstance(info.type, MapType) else info.type
            raise KernelError(
                "ring buffer", _errno.EINVAL, f"map {info.name!r} is a {t} map, not {expect.name}")
        owned.what = f"{expect.name.lower()} map {info.name!r}"
        return owned, info.max_entries, info.name
    except BaseException:
        owned.close()
        raise


@record(frozen=False)
class _Ring:
    fd: Fd
    name: str
    size: int
    callback: Callback | None
    cons_mm: _mmap.mmap
    prod_mm: _mmap.mmap
    data: memoryview
    cons: int

    def producer(self) -> int:
        return int(_POS.unpack_from(self.prod_mm, 0)[0])

    def store(self, pos: int) -> None:
        _POS.pack_into(self.cons_mm, 0, pos)
        self.cons = pos

    def close(self) -> None:
        self.data.release()
        for mm in (self.cons_mm, self.prod_mm):
            try:
                mm.close()
            except BufferError:  # a caller still holds a view of a record; unmapped when it is freed
                pass
        self.fd.close()


class RingBuffer:
    """A reader of one or more ring buffer maps, each with its own callback (libbpf's ring_buffer).

    APIs: `poll(timeout_ms)` waits then runs callbacks; `consume()` runs them without waiting;
    ``for rec in rb`` / `records(timeout_ms)` and ``async for rec in rb`` yield records instead of
    calling back (each is consumed when the next one is asked for). `received` and `discarded` count
    records since creation. Records of one ring come in production order.
    """

    def __init__(self, map: Any = None, callback: Callback | None = None, *,
                 sys: Syscalls | None = None) -> None:
        self._sys = sys
        self._rings: list[_Ring] = []
        self._poller = Poller()
        self.received = 0
        self.discarded = 0
        if map is not None:
            try:
                self.add(map, callback)
            except BaseException:
                self.close()
                raise

    def add(self, map: Any, callback: Callback | None = None) -> None:
        """Add ring buffer `map` (a Map, Fd or fd number; the reader keeps its own dup of the fd)."""
        fd, size, name = _map_fd_and_size(map, MapType.RINGBUF, self._sys)
        sys = fd.syscalls
        cons_mm = prod_mm = None
        try:
            cons_mm = sys.mmap(fd.fileno(), PAGE_SIZE, writable=True, offset=0)
            prod_mm = sys.mmap(fd.fileno(), PAGE_SIZE + 2 * size, writable=False, offset=PAGE_SIZE)
            data = memoryview(prod_mm)[PAGE_SIZE:PAGE_SIZE + 2 * size]
            cons = int(_POS.unpack_from(cons_mm, 0)[0])
            ring = _Ring(fd, name, size, callback, cons_mm, prod_mm, data, cons)
            self._poller.register(fd.fileno(), len(self._rings))
        except BaseException:
            for mm in (cons_mm, prod_mm):
                if mm is not None:
                    mm.close()
            fd.close()
            raise
        self._rings.append(ring)

    # --- ownership -----------------------------------------------------------------------------------------

    def fileno(self) -> int:
        """The epoll fd: readable when any ring has data (for select/asyncio loops)."""
        return self._poller.fileno()

    @property
    def closed(self) -> bool:
        return self._poller.closed

    def close(self) -> None:
        """Unmap every ring and close the fds; idempotent."""
        rings, self._rings = self._rings, []
        for ring in rings:
            ring.close()
        self._poller.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_rings", None):
            try:
                warnings.warn("RingBuffer was never closed", ResourceWarning, stacklevel=2, source=self)
            except Exception:
                pass
            self.close()

    # --- reading -------------------------------------------------------------------------------------------

    def _drain(self, ring: _Ring) -> int:
        """Run the callback on every committed record of `ring`; returns how many it saw.

        The same walk as `bpfkit.events.ringbuf.scan`, inlined: the generator's per-record overhead
        was a third of the time per record (benchmarks/bench_events.py, drain phase).
        """
        callback = ring.callback
        if callback is None:
            raise KernelError(
                "ring buffer", _errno.EINVAL, f"ring {ring.name!r} was added without a callback; "
                "iterate over the reader instead")
        data, size, mask = ring.data, ring.size, ring.size - 1
        prod_mm, cons_mm = ring.prod_mm, ring.cons_mm
        read_word, read_pos, store = _WORD.unpack_from, _POS.unpack_from, _POS.pack_into
        busy, discard, len_mask, hdr = rbdec.BUSY_BIT, rbdec.DISCARD_BIT, rbdec.LEN_MASK, rbdec.HDR_SZ
        count = discarded = 0
        cons = ring.cons
        try:
            while True:
                (prod,) = read_pos(prod_mm, 0)
                if cons >= prod:
                    break
                start = cons
                while cons < prod:
                    off = cons & mask
                    (word,) = read_word(data, off)
                    if word & busy:  # the producer is still writing: it wakes us when it commits
                        break
                    length = word & len_mask
                    nxt = cons + ((length + hdr + 7) & ~7)
                    if length > size - hdr or nxt > prod:
                        raise rbdec.RingbufFormatError(
                            f"ring buffer {ring.name!r}: record at position {cons} claims {length} bytes, "
                            f"beyond the producer position {prod}", off)
                    if word & discard:
                        discarded += 1
                    else:
                        view = data[off + hdr:off + hdr + length]
                        count += 1
                        try:
                            callback(view)
                        finally:
                            view.release()
                            store(cons_mm, 0, nxt)  # after the callback: the kernel may now reuse it
                            cons = nxt
                        continue
                    store(cons_mm, 0, nxt)
                    cons = nxt
                if cons == start:
                    break
        finally:
            ring.cons = cons
            self.received += count
            self.discarded += discarded
        return count

    def consume(self) -> int:
        """Handle every available record of every ring without waiting; returns the number handled."""
        return sum(self._drain(ring) for ring in self._rings)

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to `timeout_ms` (-1: forever) for data, then handle the ready rings' records."""
        if self._poller.closed:
            raise KernelError(
                "ring buffer", _errno.EBADF, "the reader is closed")
        return sum(self._drain(self._rings[i]) for i in self._poller.wait(timeout_ms))

    def _available(self) -> Iterator[memoryview]:
        """Every available record, consumed when the next one is asked for (or the iterator closed)."""
        for ring in list(self._rings):
            while True:
                prod = ring.producer()
                if ring.cons >= prod:
                    break
                start = ring.cons
                for nxt, view in rbdec.scan(ring.data, ring.cons, prod, ring.size):
                    if view is None:
                        self.discarded += 1
                        ring.store(nxt)
                        continue
                    self.received += 1
                    try:
                        yield view
                    finally:
                        view.release()
                        ring.store(nxt)
                if ring.cons == start:
                    break

    def records(self, timeout_ms: int | None = None) -> Iterator[memoryview]:
        """Yield records as they come; stop after `timeout_ms` without any (None: never stop).

        Each record is a view valid until the next one is asked for.
        """
        while True:
            got = False
            for view in self._available():
                got = True
                yield view
            if not got and not self._poller.wait(timeout_ms) and timeout_ms is not None:
                return

    def __iter__(self) -> Iterator[memoryview]:
        return self.records()

    async def arecords(self) -> AsyncIterator[memoryview]:
        """Yield records as they come, waiting in the running asyncio loop between bursts."""
        while True:
            for view in self._available():
                yield view
            await self._poller.readable(recheck=0.1)

    def __aiter__(self) -> AsyncIterator[memoryview]:
        return self.arecords()


class UserRingBuffer:
    """A writer to a BPF_MAP_TYPE_USER_RINGBUF map, drained in the kernel by bpf_user_ringbuf_drain.

    The mapping is the reverse of a ring buffer's: the consumer page is read-only (the kernel advances
    it), the producer page and the doubly mapped data area are writable. `write` copies one record in
    and publishes it by storing the new producer position; it returns False when the ring is full.
    Minimum kernel: 6.1.
    """

    def __init__(self, map: Any, *, sys: Syscalls | None = None) -> None:
        fd, size, name = _map_fd_and_size(map, MapType.USER_RINGBUF, sys)
        self._fd: Fd | None = fd
        self.name = name
        self.size = size
        try:
            self._cons_mm = fd.syscalls.mmap(fd.fileno(), PAGE_SIZE, writable=False, offset=0)
        except BaseException:
            fd.close()
            raise
        try:
            self._prod_mm = fd.syscalls.mmap(fd.fileno(), PAGE_SIZE + 2 * size, writable=True,
                                             offset=PAGE_SIZE)
        except BaseException:
            self._cons_mm.close()
            fd.close()
            raise
        self._prod = int(_POS.unpack_from(self._prod_mm, 0)[0])

    def free_space(self) -> int:
        """Bytes the ring can take now (records need header + 8-byte alignment on top of their data)."""
        cons = int(_POS.unpack_from(self._cons_mm, 0)[0])
        return self.size - (self._prod - cons)

    def write(self, data: bytes | bytearray | memoryview, *, discard: bool = False) -> bool:
        """Append one record (False, nothing written, when there is no room)."""
        if self._fd is None:
            raise KernelError(
                "user ring buffer", _errno.EBADF, "the writer is closed")
        length = len(data)
        total = rbdec.record_size(length)
        if length > rbdec.LEN_MASK or total > self.size:
            raise KernelError(
                "user ring buffer", _errno.E2BIG, f"a {length}-byte record can never fit ring "
                f"{self.name!r} of {self.size} bytes")
        if total > self.free_space():
            return False
        off = PAGE_SIZE + (self._prod & (self.size - 1))
        self._prod_mm[off + rbdec.HDR_SZ:off + rbdec.HDR_SZ + length] = bytes(data)
        self._prod_mm[off:off + rbdec.HDR_SZ] = rbdec.encode_header(length, discard=discard)
        self._prod += total
        _POS.pack_into(self._prod_mm, 0, self._prod)  # publish after the record bytes (release)
        return True

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._cons_mm.close()
            self._prod_mm.close()
            fd.close()

    def __enter__(self) -> UserRingBuffer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                warnings.warn("UserRingBuffer was never closed", ResourceWarning, stacklevel=2, source=self)
            except Exception:
                pass
            self.close()
