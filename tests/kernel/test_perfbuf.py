"""Perf buffer reader against the running kernel: an XDP program run with BPF_PROG_TEST_RUN calls
bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, ...) once per run (see event_progs)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.cpus import online_cpus, possible_cpus
from bpfkit.kernel.maps import Map
from bpfkit.kernel.perfbuf import PerfBuffer
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType

pytestmark = pytest.mark.kernel

PACKET = bytes(64)


def _helpers() -> ModuleType:
    path = Path(__file__).with_name("event_progs.py")
    spec = importlib.util.spec_from_file_location("event_progs", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ep = _helpers()


def unpadded(data: bytes, seq: int) -> bytes:
    """`data` without the kernel's padding (to make 4 + size a multiple of 8), after checking its length.

    The padding is not cleared by the kernel (stale ring bytes), so only its length is checked."""
    n = ep.record_length(seq)
    assert len(data) == n + (-(n + 4) % 8), (seq, len(data))
    return data[:n]


@pytest.fixture
def setup() -> Iterator[tuple[Map, Map, Program]]:
    with ep.counter_map() as counter, \
            Map.create(MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus(), name="events")) as events, \
            Program.load(ep.output_program(counter, events, perf=True), ProgType.XDP, license="GPL") as prog:
        yield counter, events, prog


@pytest.fixture
def pinned() -> Iterator[None]:
    saved = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def test_callback_receives_every_sample_in_order(setup: tuple[Map, Map, Program], pinned: None) -> None:
    counter, events, prog = setup
    cpu = online_cpus()[-1]
    os.sched_setaffinity(0, {cpu})
    got: list[tuple[int, bytes]] = []
    with PerfBuffer(events, lambda c, data: got.append((c, bytes(data)))) as reader:
        prog.test_run(PACKET, repeat=1000)
        total = 0
        while total < 1000 and (n := reader.poll(1000)):
            total += n
        assert reader.lost == 0 and reader.received == 1000
    assert ep.counts(counter) == (1000, 0)
    assert [c for c, _ in got] == [cpu] * 1000
    assert [unpadded(d, i) for i, (_, d) in enumerate(got)] == [ep.expected_record(i) for i in range(1000)]


def test_samples_carry_the_cpu_they_were_written_on(setup: tuple[Map, Map, Program], pinned: None) -> None:
    _, events, prog = setup
    cpus = online_cpus()
    if len(cpus) < 2:
        pytest.skip("needs two online CPUs")
    with PerfBuffer(events) as reader:
        for cpu in cpus[:2]:
            os.sched_setaffinity(0, {cpu})
            prog.test_run(PACKET, repeat=3)
        got = sorted((c, bytes(d)[:8]) for c, d in reader.records(timeout_ms=50))
    want = [(c, i.to_bytes(8, "little")) for n, c in enumerate(cpus[:2]) for i in range(3 * n, 3 * n + 3)]
    assert got == sorted(want)


def test_asyncio(setup: tuple[Map, Map, Program], pinned: None) -> None:
    _, events, prog = setup

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        with PerfBuffer(events, page_count=8) as reader:
            producer = loop.run_in_executor(None, lambda: [prog.test_run(PACKET, repeat=25)
                                                           for _ in range(4)])
            async for _cpu, data in reader:
                got.append(bytes(data))
                if len(got) == 100:
                    break
            await producer
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))
    seqs = [int.from_bytes(d[:8], "little") for d in got]
    assert sorted(seqs) == list(range(100))
    assert all(unpadded(d, seq) == ep.expected_record(seq) for d, seq in zip(got, seqs, strict=True))


def test_overflow_every_lost_sample_is_counted(setup: tuple[Map, Map, Program], pinned: None) -> None:
    """One 4 KiB page per CPU holds ~150 samples: of 3000 sent without reading, the rest are reported
    lost by PERF_RECORD_LOST, which the kernel writes with the next sample that fits."""
    counter, events, prog = setup
    os.sched_setaffinity(0, {online_cpus()[0]})
    lost_reports: list[tuple[int, int]] = []
    seqs: list[int] = []
    with PerfBuffer(events, lambda c, d: seqs.append(int.from_bytes(d[:8], "little")), page_count=1,
                    lost_callback=lambda c, n: lost_reports.append((c, n))) as reader:
        prog.test_run(PACKET, repeat=3000)
        reader.consume()
        prog.test_run(PACKET)  # carries the LOST record
        reader.consume()
        attempted, failed = ep.counts(counter)
        assert attempted == 3001 and failed > 0
        assert reader.lost == failed == sum(n for _, n in lost_reports)
        assert reader.received + reader.lost == attempted
        assert seqs == sorted(seqs) and seqs[-1] == 3000


def test_iterator_timeout_and_close_removes_map_entries(setup: tuple[Map, Map, Program]) -> None:
    _, events, prog = setup
    with PerfBuffer(events) as reader:
        assert list(reader.records(timeout_ms=10)) == []
        assert set(reader.cpus) == set(online_cpus())
        with pytest.raises(KernelError, match="no callback"):
            reader.consume()
    # With the events gone from the map, output fails (ENOENT) instead of reaching a closed reader.
    prog.test_run(PACKET)
    counter = setup[0]
    assert ep.counts(counter)[1] == 1


def test_bad_arguments() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="arr")) as m:
        with pytest.raises(KernelError, match="not PERF_EVENT_ARRAY"):
            PerfBuffer(m)
    with Map.create(MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 1, name="small")) as m:
        if len(online_cpus()) > 1:
            with pytest.raises(KernelError, match="has no slot"):
                PerfBuffer(m)
        with pytest.raises(ValueError, match="power of two"):
            PerfBuffer(m, page_count=3)


def test_samples_wrapping_the_data_area_arrive_intact(setup: tuple[Map, Map, Program], pinned: None) -> None:
    """With one data page, 1000 samples of 24/32 bytes go round it ~7 times: some wrap its end."""
    _, events, prog = setup
    os.sched_setaffinity(0, {online_cpus()[0]})
    got: list[bytes] = []
    with PerfBuffer(events, lambda c, d: got.append(bytes(d)), page_count=1) as reader:
        for _ in range(20):
            prog.test_run(PACKET, repeat=50)
            reader.consume()
        assert reader.lost == 0
    assert [unpadded(d, i) for i, d in enumerate(got)] == [ep.expected_record(i) for i in range(1000)]
