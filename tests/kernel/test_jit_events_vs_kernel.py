"""The JIT's native ring buffer helpers and tail calls against the kernel (BPF_PROG_TEST_RUN).

The same XDP programs run in the kernel and in bpfkit's JIT (verified, so the helpers are native): the
ring buffer records a reader gets, the NULL answers of a full ring, the tail-call count limit and the
return values must be the kernel's.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bpfkit.isa import Instruction, assemble
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.ringbuf import RingBuffer
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm import Vm, VmRingBuffer
from bpfkit.vm.jit import jit_supported, program_for, runtime_for
from bpfkit.vm.maps import VmMap

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")]

PACKET = bytes(64)
CTX = bytes(12) + (1).to_bytes(4, "little") + bytes(8)  # ingress_ifindex 1: lo exists in every netns
RING = MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")
COUNTER = MapSpec(MapType.ARRAY, 4, 8, 1, name="cnt")
PROGS = MapSpec(MapType.PROG_ARRAY, 4, 4, 2, name="jmp")

EVENTS = """
    r6 = r1
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:1]
    call bpf_map_lookup_elem
    if r0 == 0 goto fail
    r7 = r0
    r8 = 1
    r8 = atomic_fetch_add((u64 *)(r7 + 0), r8)
    r1 = map[id:0]
    r2 = 24
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto full
    *(u64 *)(r0 + 0) = r8
    r1 = *(u32 *)(r6 + 12)
    *(u64 *)(r0 + 8) = r1
    r1 = 0x7777
    *(u64 *)(r0 + 16) = r1
    r1 = r0
    r2 = 0
    r3 = r8
    r3 &= 3
    if r3 == 0 goto discard
    call bpf_ringbuf_submit
    goto output
discard:
    call bpf_ringbuf_discard
output:
    *(u64 *)(r10 - 16) = r8
    r1 = 0x5555
    *(u64 *)(r10 - 24) = r1
    r1 = map[id:0]
    r2 = r10
    r2 += -24
    r3 = 12
    r4 = 0
    call bpf_ringbuf_output
    if r0 != 0 goto full
    r0 = 2
    exit
full:
    r0 = 1
    exit
fail:
    r0 = 0
    exit
"""
LOOP = """
    r6 = r1
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:1]
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r1 = r6
    r2 = map[id:2]
    r3 = 0
    call bpf_tail_call
    r0 = 3
    exit
out:
    r0 = 0
    exit
"""


def _with_fds(text: str, fds: Sequence[int]) -> list[Instruction]:
    return [i if i.opcode != 0x18 or i.src != 1 else Instruction(i.opcode, i.dst, i.src, i.off, fds[i.imm])
            for i in assemble(text)]


def _kernel(text: str, runs: int, repeat: int) -> tuple[list[int], list[bytes], int]:
    """(return values, ring records, counter) of `runs` test runs of `repeat` each in the kernel."""
    records: list[bytes] = []
    with Map.create(RING) as ring, Map.create(COUNTER) as counter, Map.create(PROGS) as progs:
        with Program.load(_with_fds(text, [ring.fileno(), counter.fileno(), progs.fileno()]), ProgType.XDP,
                          license="GPL") as prog, RingBuffer(ring, lambda v: records.append(bytes(v))) as rd:
            progs.update((0).to_bytes(4, "little"), prog.fileno().to_bytes(4, "little"))
            try:
                rets = []
                for _ in range(runs):
                    rets.append(prog.test_run(PACKET, ctx_in=CTX, repeat=repeat).retval)
                rd.consume()
            finally:
                progs.delete((0).to_bytes(4, "little"))
            count = int.from_bytes(counter.lookup((0).to_bytes(4, "little")), "little")
    return rets, records, count


def _vm(text: str, runs: int, repeat: int) -> tuple[list[int], list[bytes], int]:
    vm = Vm()
    maps: list[VmMap] = [vm.create_map(RING), vm.create_map(COUNTER), vm.create_map(PROGS)]
    prog = vm.load(_with_fds(text, [m.fd for m in maps]), prog_type=ProgType.XDP, verify=True)
    prog.set_tail_call(maps[2], 0)
    records: list[bytes] = []
    with VmRingBuffer(maps[0], lambda v: records.append(bytes(v))) as rd:  # type: ignore[arg-type]
        rets = [prog.test_run(PACKET, ctx=CTX, engine="jit", repeat=repeat).retval for _ in range(runs)]
        rd.consume()
    compiled = program_for(prog.loaded, runtime_for(vm.mem)).compiled
    assert compiled.checked == 0  # the map value, the record, the stack and the context
    return rets, records, int.from_bytes(maps[1].lookup(bytes(4)), "little")


def test_ring_buffer_records_and_a_full_ring_match_the_kernel() -> None:
    # 3 runs of 40: the 4 KiB ring fills during the first batch (40-byte reservations, 24-byte
    # outputs), later reservations get NULL and outputs -EAGAIN, exactly as in the kernel.
    kernel = _kernel(EVENTS, 3, 40)
    assert kernel[2] == 120 and len(kernel[1]) > 10 and kernel[0][-1] == 1
    assert _vm(EVENTS, 3, 40) == kernel


def test_tail_call_limit_matches_the_kernel() -> None:
    kernel = _kernel(LOOP, 2, 5)
    assert kernel[0] == [3, 3] and kernel[2] == 2 * 5 * 34  # 1 + MAX_TAIL_CALL_CNT runs per test run
    assert _vm(LOOP, 2, 5) == kernel


RESERVE = """
    r1 = map[id:0]
    r2 = {size}
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto out
    r1 = r0
    r2 = 0
    call bpf_ringbuf_submit
    r0 = 2
    exit
out:
    r0 = 1
    exit
"""


@pytest.mark.parametrize("size", [4096 - 8, 4096 - 15, 4096 - 16, 2048, 1])
def test_the_largest_reservation_matches_the_kernel(size: int) -> None:
    # The kernel refuses a record that would put the producer a full ring ahead of the consumer.
    text = RESERVE.format(size=size)
    kernel = _kernel(text, 2, 1)
    assert _vm(text, 2, 1) == kernel
    assert kernel[0] == ([1, 1] if size > 4096 - 16 else [2, 1] if size > 2040 else [2, 2])
