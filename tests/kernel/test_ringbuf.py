"""Ring buffer reader and user ring buffer writer against the running kernel.

Producer: an XDP program run with BPF_PROG_TEST_RUN (`repeat` runs, one record each; see event_progs).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.ringbuf import RingBuffer, UserRingBuffer
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType

pytestmark = pytest.mark.kernel

PACKET = bytes(64)


def _helpers() -> ModuleType:
    path = Path(__file__).with_name("event_progs.py")
    spec = importlib.util.spec_from_file_location("event_progs", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("event_progs", mod)
    spec.loader.exec_module(mod)
    return mod


ep = _helpers()


@pytest.fixture
def setup() -> Iterator[tuple[Map, Map, Program]]:
    """(counter, ring buffer of 16 KiB, producer program)."""
    with ep.counter_map() as counter, Map.create(MapSpec(MapType.RINGBUF, 0, 0, 16384, name="rb")) as rb:
        with Program.load(ep.output_program(counter, rb, perf=False), ProgType.XDP, license="GPL") as prog:
            yield counter, rb, prog


def test_callback_receives_every_record_in_order(setup: tuple[Map, Map, Program]) -> None:
    counter, rb, prog = setup
    got: list[bytes] = []
    with RingBuffer(rb, lambda rec: got.append(bytes(rec))) as reader:
        prog.test_run(PACKET, repeat=500)
        assert reader.poll(1000) == 500
        assert reader.consume() == 0
    assert ep.counts(counter) == (500, 0)
    assert got == [ep.expected_record(i) for i in range(500)]
    assert reader.received == 500


def test_records_view_is_released_after_the_callback(setup: tuple[Map, Map, Program]) -> None:
    _, rb, prog = setup
    kept: list[memoryview] = []
    with RingBuffer(rb, kept.append) as reader:
        prog.test_run(PACKET)
        reader.consume()
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_iterator_and_timeout(setup: tuple[Map, Map, Program]) -> None:
    _, rb, prog = setup
    with RingBuffer(rb) as reader:
        prog.test_run(PACKET, repeat=100)
        got = [bytes(r) for r in reader.records(timeout_ms=50)]
        assert got == [ep.expected_record(i) for i in range(100)]
        with pytest.raises(KernelError, match="without a callback"):
            reader.consume()


def test_iterator_break_consumes_only_what_was_seen(setup: tuple[Map, Map, Program]) -> None:
    _, rb, prog = setup
    with RingBuffer(rb) as reader:
        prog.test_run(PACKET, repeat=10)
        for i, _rec in enumerate(reader.records(timeout_ms=50)):
            if i == 3:
                break
        rest = [bytes(r) for r in reader.records(timeout_ms=50)]
    assert rest == [ep.expected_record(i) for i in range(4, 10)]


def test_asyncio_with_a_concurrent_producer(setup: tuple[Map, Map, Program]) -> None:
    _, rb, prog = setup

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        with RingBuffer(rb) as reader:
            producer = loop.run_in_executor(None, lambda: [prog.test_run(PACKET, repeat=50)
                                                           for _ in range(4)])
            async for rec in reader:
                got.append(bytes(rec))
                if len(got) == 200:
                    break
            await producer
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))
    assert got == [ep.expected_record(i) for i in range(200)]


def test_discarded_records_are_skipped() -> None:
    with ep.counter_map() as counter, Map.create(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")) as rb, \
            Program.load(ep.reserve_discard_program(rb, counter), ProgType.XDP, license="GPL") as prog:
        got: list[int] = []
        with RingBuffer(rb, lambda rec: got.append(int.from_bytes(rec, "little"))) as reader:
            prog.test_run(PACKET, repeat=20)
            reader.poll(1000)
            assert got == list(range(0, 20, 2))
            assert reader.discarded == 10


def test_two_rings_in_one_reader() -> None:
    with ep.counter_map() as c1, ep.counter_map() as c2, \
            Map.create(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb1")) as rb1, \
            Map.create(MapSpec(MapType.RINGBUF, 0, 0, 8192, name="rb2")) as rb2, \
            Program.load(ep.output_program(c1, rb1, perf=False), ProgType.XDP, license="GPL") as p1, \
            Program.load(ep.output_program(c2, rb2, perf=False), ProgType.XDP, license="GPL") as p2:
        a: list[bytes] = []
        b: list[bytes] = []
        with RingBuffer(rb1, lambda r: a.append(bytes(r))) as reader:
            reader.add(rb2, lambda r: b.append(bytes(r)))
            p2.test_run(PACKET, repeat=7)
            assert reader.poll(1000) == 7 and not a
            p1.test_run(PACKET, repeat=3)
            reader.poll(1000)
        assert a == [ep.expected_record(i) for i in range(3)]
        assert b == [ep.expected_record(i) for i in range(7)]


def test_overflow_loses_nothing_uncounted() -> None:
    """A 4 KiB ring takes ~200 records: of 5000 sent, every one is either received or counted failed."""
    sent = 5000
    with ep.counter_map() as counter, Map.create(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")) as rb, \
            Program.load(ep.output_program(counter, rb, perf=False), ProgType.XDP, license="GPL") as prog:
        got: list[int] = []
        stop = threading.Event()
        with RingBuffer(rb, lambda r: got.append(int.from_bytes(r[:8], "little"))) as reader:
            def consume() -> None:
                while not stop.is_set():
                    reader.poll(10)
            t = threading.Thread(target=consume)
            t.start()
            try:
                for _ in range(sent // 500):
                    prog.test_run(PACKET, repeat=500)
            finally:
                stop.set()
                t.join()
            reader.consume()
        attempted, failed = ep.counts(counter)
        assert attempted == sent
        assert failed > 0, "the ring never filled: the test did not overflow it"
        assert len(got) + failed == sent
        assert got == sorted(got) and len(set(got)) == len(got)


def test_wrong_map_type_is_refused() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="arr")) as m:
        with pytest.raises(KernelError, match="not RINGBUF"):
            RingBuffer(m)


def test_user_ring_buffer_is_drained_by_the_kernel() -> None:
    with ep.counter_map() as result, \
            Map.create(MapSpec(MapType.USER_RINGBUF, 0, 0, 4096, name="urb")) as urb, \
            ep.user_ringbuf_sum_program(urb, result) as prog, UserRingBuffer(urb) as writer:
        for i in range(1, 21):
            assert writer.write(i.to_bytes(8, "little") + b"x" * (i % 5))
        assert writer.write(b"\xff" * 8, discard=True)
        prog.test_run(PACKET)
        assert ep.counts(result) == (20, sum(range(1, 21)))
        assert writer.free_space() == 4096


def test_user_ring_buffer_full() -> None:
    with Map.create(MapSpec(MapType.USER_RINGBUF, 0, 0, 4096, name="urb")) as urb, UserRingBuffer(urb) as w:
        n = 0
        while w.write(bytes(56)):
            n += 1
        assert n == 4096 // 64
        with pytest.raises(KernelError, match="can never fit"):
            w.write(bytes(5000))


def test_records_wrapping_the_ring_arrive_intact() -> None:
    """A 4 KiB ring taking 2000 records of 16/24 bytes in bursts of 100 wraps ~10 times."""
    with ep.counter_map() as counter, Map.create(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")) as rb, \
            Program.load(ep.output_program(counter, rb, perf=False), ProgType.XDP, license="GPL") as prog:
        got: list[bytes] = []
        with RingBuffer(rb, lambda r: got.append(bytes(r))) as reader:
            for _ in range(20):
                prog.test_run(PACKET, repeat=100)
                reader.consume()
        assert ep.counts(counter) == (2000, 0)
        assert got == [ep.expected_record(i) for i in range(2000)]
