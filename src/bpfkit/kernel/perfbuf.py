"""Reading BPF perf event output (bpf_perf_event_output into a BPF_MAP_TYPE_PERF_EVENT_ARRAY).

`PerfBuffer` opens one PERF_COUNT_SW_BPF_OUTPUT software event with PERF_SAMPLE_RAW per online CPU
(perf_event_open(2) with pid -1 and that CPU), maps its metadata page plus a 2^n-page data area writable
(so the kernel honours ``data_tail`` and drops, counting them, records that do not fit instead of
overwriting), stores each event's fd in the map at its CPU's index, and enables it. A program then calls
``bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, data, size)``.

Each sample's raw bytes go to ``callback(cpu, data)`` (a zero-copy memoryview, or bytes for a record that
wraps the data area's end). They include the kernel's padding: ``len(data)`` is the size written rounded
up so that 4 + size is a multiple of 8, and the padding bytes are stale ring content, not zeros. Each
PERF_RECORD_LOST goes to ``lost_callback(cpu, count)`` and into `lost`. The tail is stored after the
callbacks of a batch return.

Minimum kernel: 4.4 (BPF_OUTPUT events).
"""

from __future__ import annotations

import errno as _errno
import mmap as _mmap
import struct
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from bpfkit._records import record
from bpfkit.errors import KernelError
from bpfkit.events import perfbuf as pdec
from bpfkit.kernel.cpus import online_cpus
from bpfkit.kernel.epoll import Poller
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.uapi.attr import PerfEventAttr
from bpfkit.uapi.enums import MapType
from bpfkit.uapi.perf import (
    PERF_EVENT_HEADER,
    PerfEventIoc,
    PerfFlag,
    PerfMmapPage,
    PerfRecordType,
    PerfSample,
    PerfSwId,
    PerfType,
)

SampleCallback = Callable[[int, "memoryview | bytes"], Any]
"""``callback(cpu, data)`` for each sample."""
LostCallback = Callable[[int, int], Any]
"""``lost_callback(cpu, count)`` for each PERF_RECORD_LOST."""

PAGE_SIZE = _mmap.PAGESIZE
_POS = struct.Struct("=Q")
_HEADER = PERF_EVENT_HEADER
_U32 = struct.Struct("=I")
_SAMPLE = int(PerfRecordType.SAMPLE)
_LOST = int(PerfRecordType.LOST)
_DATA_HEAD = int(PerfMmapPage.DATA_HEAD)
_DATA_TAIL = int(PerfMmapPage.DATA_TAIL)


@record(frozen=False)
class _CpuBuffer:
    cpu: int
    fd: Fd
    mm: _mmap.mmap
    data: memoryview
    tail: int

    def head(self) -> int:
        return int(_POS.unpack_from(self.mm, _DATA_HEAD)[0])

    def store(self, tail: int) -> None:
        _POS.pack_into(self.mm, _DATA_TAIL, tail)
        self.tail = tail

    def close(self) -> None:
        self.data.release()
        try:
            self.mm.close()
        except BufferError:  # a caller still holds a view of a sample; unmapped when it is freed
            pass
        self.fd.close()


def _raw(body: memoryview | bytes) -> memoryview | bytes:
    (size,) = struct.unpack_from("=I", body, 0)
    return body[4:4 + size]


class PerfBuffer:
    """Per-CPU perf buffers behind a PERF_EVENT_ARRAY map (libbpf's perf_buffer).

    `page_count` data pages per CPU (a power of two); `wakeup_events`: wake the reader every that many
    samples (1: every sample; larger values batch wakeups, and `poll` still drains what is there).
    `cpus` defaults to the online CPUs. APIs: `poll(timeout_ms)`, `consume()`, ``for cpu, data in pb``
    / `records(timeout_ms)`, ``async for cpu, data in pb``; `received` and `lost` count samples.
    """

    def __init__(self, map: Any, callback: SampleCallback | None = None, *,
                 lost_callback: LostCallback | None = None, page_count: int = 64, wakeup_events: int = 1,
                 cpus: Iterable[int] | None = None, sys: Syscalls | None = None) -> None:
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError(f"page_count must be a power of two, not {page_count}")
        if wakeup_events < 1:
            raise ValueError(f"wakeup_events must be at least 1, not {wakeup_events}")
        self._sys = sys or (map.fd.syscalls if hasattr(map, "fd") and isinstance(map.fd, Fd) else current())
        self.callback = callback
        self.lost_callback = lost_callback
        self.received = 0
        self.lost = 0
        self._map = map
        self._buffers: list[_CpuBuffer] = []
        self._poller = Poller()
        map_type = getattr(map, "type", MapType.PERF_EVENT_ARRAY)
        if map_type != MapType.PERF_EVENT_ARRAY:
            self._poller.close()
            kind = getattr(map_type, "name", map_type)
            raise KernelError(
                "perf buffer", _errno.EINVAL, f"map {getattr(map, 'name', '')!r} is a {kind} map, "
                "not PERF_EVENT_ARRAY")
        try:
            for cpu in (online_cpus() if cpus is None else cpus):
                self._open_cpu(cpu, page_count, wakeup_events)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu: int, page_count: int, wakeup_events: int) -> None:
        max_entries = getattr(self._map, "max_entries", None)
        if max_entries is not None and cpu >= max_entries:
            raise KernelError(
                "perf buffer", _errno.E2BIG, f"CPU {cpu} has no slot in the perf event array "
                f"({max_entries} entries); make it at least the CPU count")
        attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwId.BPF_OUTPUT,
                             sample_type=PerfSample.RAW)
        attr.sample_period = 1
        attr.wakeup_events = wakeup_events
        attr.size = 0
        fd = Fd(self._sys.perf_event_open(attr, -1, cpu, -1, PerfFlag.FD_CLOEXEC),
                f"perf event (BPF output, CPU {cpu})", self._sys)
        try:
            size = page_count * PAGE_SIZE
            mm = self._sys.mmap(fd.fileno(), PAGE_SIZE + size, writable=True)
        except BaseException:
            fd.close()
            raise
        buf = _CpuBuffer(cpu, fd, mm, memoryview(mm)[PAGE_SIZE:PAGE_SIZE + size],
                         int(_POS.unpack_from(mm, _DATA_TAIL)[0]))
        self._buffers.append(buf)
        self._poller.register(fd.fileno(), len(self._buffers) - 1)
        self._sys.ioctl(fd.fileno(), PerfEventIoc.ENABLE, 0)
        self._map_update(cpu, fd.fileno())

    def _map_update(self, cpu: int, fd: int) -> None:
        m = self._map
        if hasattr(m, "update"):
            m.update(cpu, fd)
            return
        raise KernelError(
            "perf buffer", _errno.EINVAL, "give the PERF_EVENT_ARRAY as a bpfkit Map")

    # --- ownership -----------------------------------------------------------------------------------------

    def fileno(self) -> int:
        """The epoll fd: readable when any CPU's buffer has data."""
        return self._poller.fileno()

    @property
    def closed(self) -> bool:
        return self._poller.closed

    @property
    def cpus(self) -> list[int]:
        return [b.cpu for b in self._buffers]

    def close(self) -> None:
        """Remove the events from the map, disable and unmap them, close the fds; idempotent."""
        buffers, self._buffers = self._buffers, []
        for b in buffers:
            try:
                if not getattr(self._map, "closed", False) and hasattr(self._map, "delete"):
                    self._map.delete(b.cpu)
            except (KernelError, KeyError):
                pass  # already replaced or removed
            b.close()
        self._poller.close()

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_buffers", None):
            try:
                warnings.warn("PerfBuffer was never closed", ResourceWarning, stacklevel=2, source=self)
            except Exception:
                pass
            self.close()

    # --- reading -------------------------------------------------------------------------------------------

    def _lost(self, cpu: int, body: memoryview | bytes) -> None:
        n = pdec.lost_count(body)
        self.lost += n
        if self.lost_callback is not None:
            self.lost_callback(cpu, n)

    def _drain(self, buf: _CpuBuffer) -> int:
        """Run the callbacks on every record of `buf`; returns the samples handled.

        `bpfkit.events.perfbuf.scan` inlined for contiguous records (the generator's per-record
        overhead was measured at a third of the time per sample); wrapping records go through it.
        """
        callback = self.callback
        if callback is None:
            raise KernelError(
                "perf buffer", _errno.EINVAL, "the reader has no callback; iterate over it instead")
        cpu, data, mm = buf.cpu, buf.data, buf.mm
        size = len(data)
        mask = size - 1
        read_header, read_u32, read_pos = _HEADER.unpack_from, _U32.unpack_from, _POS.unpack_from
        sample, hdr = _SAMPLE, pdec.HEADER_SIZE
        count = 0
        tail = buf.tail
        try:
            while True:
                (head,) = read_pos(mm, _DATA_HEAD)
                if tail >= head:
                    return count
                while tail < head:
                    off = tail & mask
                    if off + hdr > size:
                        tail = self._slow_record(buf, tail, head)
                        continue
                    rtype, _misc, rsize = read_header(data, off)
                    if rsize < hdr or tail + rsize > head:
                        raise pdec.PerfFormatError(f"perf buffer of CPU {cpu}: record at position {tail} "
                                                   f"has size {rsize} (head at {head})", off)
                    if off + rsize > size:
                        tail = self._slow_record(buf, tail, head)
                        continue
                    if rtype == sample:
                        (raw,) = read_u32(data, off + 8)
                        if 12 + raw > rsize:
                            raise pdec.PerfFormatError(f"perf buffer of CPU {cpu}: sample raw size {raw} "
                                                       f"exceeds its record ({rsize} bytes)", off)
                        view = data[off + 12:off + 12 + raw]
                        count += 1
                        tail += rsize
                        try:
                            callback(cpu, view)
                        finally:
                            view.release()
                    else:
                        if rtype == _LOST:
                            self._lost(cpu, data[off + 8:off + rsize])
                        tail += rsize
                buf.store(tail)  # after the batch's callbacks: the kernel may now reuse the space
        finally:
            buf.store(tail)
            self.received += count

    def _slow_record(self, buf: _CpuBuffer, tail: int, head: int) -> int:
        """Handle the one record at `tail` that wraps the data area's end (copied); the next tail."""
        for nxt, rtype, body in pdec.scan(buf.data, tail, head):
            if rtype == _SAMPLE:
                self.received += 1
                assert self.callback is not None
                self.callback(buf.cpu, pdec.sample_raw(body))
            elif rtype == _LOST:
                self._lost(buf.cpu, body)
            return nxt
        return head  # pragma: no cover - scan always yields for tail < head

    def consume(self) -> int:
        """Handle every available record of every CPU without waiting; returns the samples handled."""
        return sum(self._drain(b) for b in self._buffers)

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to `timeout_ms` (-1: forever) for data, then handle the ready CPUs' records."""
        if self._poller.closed:
            raise KernelError(
                "perf buffer", _errno.EBADF, "the reader is closed")
        return sum(self._drain(self._buffers[i]) for i in self._poller.wait(timeout_ms))

    def _available(self) -> Iterator[tuple[int, memoryview | bytes]]:
        for buf in list(self._buffers):
            while True:
                head = buf.head()
                if buf.tail >= head:
                    break
                pos = buf.tail
                try:
                    for nxt, rtype, body in pdec.scan(buf.data, pos, head):
                        pos = nxt
                        if rtype == _SAMPLE:
                            self.received += 1
                            yield buf.cpu, _raw(body)
                        elif rtype == _LOST:
                            self._lost(buf.cpu, body)
                finally:
                    buf.store(pos)  # the batch's views stay valid until here

    def records(self, timeout_ms: int | None = None) -> Iterator[tuple[int, memoryview | bytes]]:
        """Yield ``(cpu, data)`` per sample; stop after `timeout_ms` without any (None: never stop).

        A sample's data is valid until the batch it came in is done: copy it (``bytes(data)``) to keep it.
        """
        while True:
            got = False
            for rec in self._available():
                got = True
                yield rec
            if not got and not self._poller.wait(timeout_ms) and timeout_ms is not None:
                return

    def __iter__(self) -> Iterator[tuple[int, memoryview | bytes]]:
        return self.records()

    async def arecords(self) -> AsyncIterator[tuple[int, memoryview | bytes]]:
        """Yield ``(cpu, data)`` per sample, waiting in the running asyncio loop between bursts."""
        while True:
            for rec in self._available():
                yield rec
            await self._poller.readable(recheck=0.1)

    def __aiter__(self) -> AsyncIterator[tuple[int, memoryview | bytes]]:
        return self.arecords()
