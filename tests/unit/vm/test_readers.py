"""VmRingBuffer / VmPerfBuffer: the kernel layer's reader API over the VM's event maps."""

from __future__ import annotations

import pytest

from bpfkit.errors import VmError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.uapi.insn import Reg as R
from bpfkit.vm import Vm
from bpfkit.vm.readers import VmPerfBuffer, VmRingBuffer


def _ring_program() -> Builder:
    """Per run: output record 8*[run counter], reserve+discard one, output the counter again + 100."""
    b = Builder()
    b.st(8, R.R10, -8, 7).ld_map(R.R1, "rb").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 8).mov(R.R4, 0)
    b.call(Helper.RINGBUF_OUTPUT)
    b.ld_map(R.R1, "rb").mov(R.R2, 8).mov(R.R3, 0).call(Helper.RINGBUF_RESERVE)
    b.jmp("jeq", R.R0, 0, "out").mov(R.R1, R.R0).mov(R.R2, 0).call(Helper.RINGBUF_DISCARD)
    b.label("out")
    b.st(8, R.R10, -8, 107).ld_map(R.R1, "rb").mov(R.R2, R.R10).add(R.R2, -8).mov(R.R3, 8).mov(R.R4, 0)
    b.call(Helper.RINGBUF_OUTPUT).mov(R.R0, 0).exit()
    return b


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_ring_buffer_callbacks_in_order_with_discards_counted(engine: str) -> None:
    vm = Vm()
    rb_map = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb"))
    b = _ring_program()
    prog = vm.load(b.build(), maps={"rb": rb_map}, relocations=b.relocations)
    got: list[int] = []
    with VmRingBuffer(rb_map, lambda view: got.append(int.from_bytes(view, "little"))) as rb:
        assert rb.poll(100) == 0
        prog.test_run(engine=engine, repeat=3)  # type: ignore[arg-type]
        assert rb.consume() == 6
        assert got == [7, 107] * 3
        assert (rb.received, rb.discarded) == (6, 3)
        prog.test_run(engine=engine)  # type: ignore[arg-type]
        assert [int.from_bytes(v, "little") for v in rb] == [7, 107]
        assert rb.consume() == 0


def test_two_rings_each_with_its_callback() -> None:
    vm = Vm()
    a = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb"))
    other = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb2"))
    b = _ring_program()
    vm.load(b.build(), maps={"rb": a}, relocations=b.relocations).test_run()
    seen: list[tuple[str, int]] = []
    rb = VmRingBuffer()
    rb.add(a, lambda v: seen.append(("a", int.from_bytes(v, "little"))))
    rb.add(other, lambda v: seen.append(("b", int.from_bytes(v, "little"))))
    assert rb.poll() == 2 and seen == [("a", 7), ("a", 107)]


def test_perf_buffer_gets_cpu_and_data() -> None:
    # Opt-out (verify=False): a raw-memory program passes r1 (memory, not a context) to
    # bpf_perf_event_output: reader semantics under test.
    vm = Vm(ncpus=2)
    pe = vm.create_map(MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 2, name="events"))
    b = Builder().st(4, R.R10, -4, 0xABCD).ld_map(R.R2, "events").ld_imm64(R.R3, 0xFFFFFFFF)
    b.mov(R.R4, R.R10).add(R.R4, -4).mov(R.R5, 4).call(Helper.PERF_EVENT_OUTPUT).exit()
    prog = vm.load(b.build(), maps={"events": pe}, relocations=b.relocations, verify=False)
    prog.test_run(cpu=1)
    prog.test_run(cpu=0)
    samples: list[tuple[int, bytes]] = []
    with VmPerfBuffer(pe, lambda cpu, data: samples.append((cpu, bytes(data)))) as reader:
        assert reader.poll(10) == 2
    assert samples == [(1, (0xABCD).to_bytes(4, "little")), (0, (0xABCD).to_bytes(4, "little"))]
    assert (reader.received, reader.lost) == (2, 0)


def test_readers_refuse_other_maps() -> None:
    vm = Vm()
    array = vm.create_map(MapSpec(MapType.ARRAY, 4, 4, 1, name="a"))
    with pytest.raises(VmError, match="not a VM ring buffer"):
        VmRingBuffer(array)  # type: ignore[arg-type]
    with pytest.raises(VmError, match="not a VM perf event array"):
        VmPerfBuffer(array)  # type: ignore[arg-type]
