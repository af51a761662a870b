"""Event readers over the VM's ring buffer and perf event array maps, with the API of the kernel
layer's `RingBuffer` and `PerfBuffer` (callbacks, `poll`, `consume`, iteration), so code written for
the kernel reads VM events unchanged. The VM runs programs synchronously: every record a run produced
is there when the run returns, so `poll` never waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from bpfkit.errors import VmError
from bpfkit.vm.maps import PerfEventArrayMap, RingbufMap

Callback = Callable[[memoryview], Any]
SampleCallback = Callable[[int, "memoryview | bytes"], Any]


class VmRingBuffer:
    """Reads one or more VM ring buffer maps, each with its own callback, in production order.

    `received` and `discarded` count records since creation (discarded records are skipped).
    """

    def __init__(self, map: RingbufMap | None = None, callback: Callback | None = None) -> None:
        self._rings: list[tuple[RingbufMap, Callback | None, int]] = []
        self.received = 0
        self.discarded = 0
        if map is not None:
            self.add(map, callback)

    def add(self, map: RingbufMap, callback: Callback | None = None) -> None:
        if not isinstance(map, RingbufMap):
            raise VmError(f"{type(map).__name__} is not a VM ring buffer map")
        self._rings.append((map, callback, map.discarded))

    def _take(self) -> Iterator[tuple[Callback | None, memoryview]]:
        for i, (ring, callback, seen) in enumerate(self._rings):
            records = ring.drain()
            self.discarded += ring.discarded - seen
            self._rings[i] = (ring, callback, ring.discarded)
            for data in records:
                self.received += 1
                yield callback, memoryview(data)

    def consume(self) -> int:
        """Run the callbacks for every record available; the number handled."""
        count = 0
        for callback, view in self._take():
            if callback is not None:
                callback(view)
            count += 1
        return count

    def poll(self, timeout_ms: int = -1) -> int:
        """As `consume` (nothing arrives while waiting: VM programs run synchronously)."""
        return self.consume()

    def records(self, timeout_ms: int | None = None) -> Iterator[memoryview]:
        """Yield the available records instead of calling back."""
        for _, view in self._take():
            yield view

    def __iter__(self) -> Iterator[memoryview]:
        return self.records()

    def close(self) -> None:
        self._rings.clear()

    def __enter__(self) -> VmRingBuffer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class VmPerfBuffer:
    """Reads a VM perf event array map: the callback gets `(cpu, data)` per sample, oldest first.
    The VM keeps every sample, so `lost` stays 0."""

    def __init__(self, map: PerfEventArrayMap, callback: SampleCallback | None = None) -> None:
        if not isinstance(map, PerfEventArrayMap):
            raise VmError(f"{type(map).__name__} is not a VM perf event array map")
        self._map = map
        self.callback = callback
        self.received = 0
        self.lost = 0

    def records(self, timeout_ms: int | None = None) -> Iterator[tuple[int, memoryview | bytes]]:
        for cpu, data in self._map.drain():
            self.received += 1
            yield cpu, memoryview(data)

    def consume(self) -> int:
        count = 0
        for cpu, data in self.records():
            if self.callback is not None:
                self.callback(cpu, data)
            count += 1
        return count

    def poll(self, timeout_ms: int = -1) -> int:
        """As `consume` (nothing arrives while waiting: VM programs run synchronously)."""
        return self.consume()

    def __iter__(self) -> Iterator[tuple[int, memoryview | bytes]]:
        return self.records()

    def close(self) -> None:
        pass

    def __enter__(self) -> VmPerfBuffer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
