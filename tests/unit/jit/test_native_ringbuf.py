"""Ring buffer helpers in native code (`bpfkit.vm.jit.native_ringbuf`), against the interpreter.

Verified programs reserve, submit, discard and output without calling Python; the records, the
positions, the NULL/-EAGAIN answers of a full ring and the reader's view are the interpreter's. The
same program with `JitOptions(native_helpers=False)` (the Python trampoline) gives the same too.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bpfkit.errors import VmMemoryError
from bpfkit.isa import assemble
from bpfkit.isa.instruction import Instruction
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.vm import Vm, VmRingBuffer
from bpfkit.vm.jit import JitOptions, JitProgram, jit_supported, set_options
from bpfkit.vm.jit.runner import JitRun
from bpfkit.vm.machine import VmProgram
from bpfkit.vm.maps import RingbufMap

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")

EVENTS = """
    r6 = r1
    r1 = map[id:0]
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto full
    r7 = r0
    r1 = 0x1122
    *(u64 *)(r7 + 0) = r1
    r2 = *(u32 *)(r6 + 12)
    *(u64 *)(r7 + 8) = r2
    r1 = r7
    r2 = 0
    call bpf_ringbuf_submit
    r1 = map[id:0]
    r2 = 8
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto full
    r1 = r0
    r2 = 0
    call bpf_ringbuf_discard
    r1 = 0x3333
    *(u64 *)(r10 - 8) = r1
    r1 = map[id:0]
    r2 = r10
    r2 += -5
    r3 = 5
    r4 = 0
    call bpf_ringbuf_output
    r8 = r0
    r1 = map[id:0]
    r2 = 0
    call bpf_ringbuf_query
    r0 <<= 8
    r0 |= r8
    exit
full:
    r0 = 99
    exit
"""
COMM = """
    r1 = map[id:0]
    r2 = 24
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto out
    r6 = r0
    r1 = 7
    *(u64 *)(r6 + 16) = r1
    r1 = r6
    r2 = 16
    call bpf_get_current_comm
    r1 = r6
    r2 = 0
    call bpf_ringbuf_submit
    r0 = 1
    exit
out:
    r0 = 0
    exit
"""
CTX = bytes(12) + (0x0A0B0C0D).to_bytes(4, "little") + bytes(8)
RING_HELPERS = (Helper.RINGBUF_RESERVE, Helper.RINGBUF_SUBMIT, Helper.RINGBUF_DISCARD,
                Helper.RINGBUF_OUTPUT)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Helper ids of the calls JIT runs made through the Python trampoline."""
    seen: Counter[int] = Counter()
    real = JitRun.helper

    def helper(self: JitRun, jp: JitProgram, pc: int, args: tuple[int, ...]) -> int:
        step = jp.loaded.steps[pc]
        seen[step.insn.imm if step is not None else -1] += 1
        return real(self, jp, pc, args)
    monkeypatch.setattr(JitRun, "helper", helper)
    return seen


def _setup(text: str, *, size: int = 4096, verify: bool = True,
           native: bool = True) -> tuple[Vm, VmProgram, RingbufMap]:
    vm = Vm()
    rb = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, size, name="rb"))
    assert isinstance(rb, RingbufMap)
    insns = [i if i.opcode != 0x18 or i.src != 1 else Instruction(i.opcode, i.dst, i.src, i.off, rb.fd)
             for i in assemble(text)]
    prog = vm.load(insns, prog_type=ProgType.XDP, verify=verify)
    if not native:
        result = prog.verification
        assert result is not None
        set_options(prog.loaded, JitOptions(proven_safe=result.proven_safe, ctx_loads=result.ctx_loads,
                                            verified=True, native_helpers=False))
    return vm, prog, rb


def _runs(engine: str, runs: int, *, native: bool = True, drain_every: int = 0,
          size: int = 4096) -> list[tuple[int, list[bytes], int, int, int]]:
    _, prog, rb = _setup(EVENTS, size=size, native=native)
    out = []
    for i in range(runs):
        r = prog.test_run(bytes(64), ctx=CTX, engine=engine)  # type: ignore[arg-type]
        records = rb.drain() if drain_every and i % drain_every == 0 else []
        out.append((r.retval, records, rb.discarded, rb.prod_pos, r.instructions))
    out.append((0, rb.drain(), rb.discarded, rb.cons_pos, 0))
    return out


def test_native_events_match_the_interpreter_until_the_ring_is_full() -> None:
    expected = _runs("interp", 120)
    assert expected[0][0] == ((24 + 16 + 16) << 8)  # output gave 0; AVAIL_DATA after the three records
    assert any(r[0] == 99 for r in expected)  # the ring filled up: reserve returned NULL
    assert _runs("jit", 120) == expected
    assert _runs("jit", 120, native=False) == expected


def test_positions_wrap_around_the_ring_like_the_interpreter() -> None:
    expected = _runs("interp", 300, drain_every=3)
    assert expected[-2][3] > 3 * 4096  # the producer went round the ring several times
    assert _runs("jit", 300, drain_every=3) == expected


def test_verified_programs_never_call_the_python_ring_helpers(trips: Counter[int]) -> None:
    _, prog, rb = _setup(EVENTS)
    prog.test_run(bytes(64), ctx=CTX, engine="jit", repeat=10)
    assert sum(trips[h] for h in RING_HELPERS) == 0
    assert trips[Helper.RINGBUF_QUERY] == 10  # not native: still Python
    assert len(rb.drain()) == 20
    trips.clear()
    _, prog, _ = _setup(EVENTS, native=False)
    prog.test_run(bytes(64), ctx=CTX, engine="jit", repeat=10)
    assert sum(trips[h] for h in RING_HELPERS) == 50  # reserve, submit, reserve, discard, output


def test_unverified_programs_keep_the_python_helpers_and_their_checks(trips: Counter[int]) -> None:
    overflow = EVENTS.replace("*(u64 *)(r7 + 8) = r2", "*(u64 *)(r7 + 12) = r2")  # 4 bytes past the end
    outcomes = []
    for engine in ("interp", "jit"):
        _, prog, rb = _setup(overflow, verify=False)
        with pytest.raises(VmMemoryError, match="out of bounds of the ringbuf record region") as err:
            prog.test_run(bytes(64), ctx=CTX, engine=engine)  # type: ignore[arg-type]
        outcomes.append((err.value.pc, rb.drain(), rb.discarded, rb.prod_pos))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2] == 1  # the reservation left open was discarded when the run ended
    assert trips[Helper.RINGBUF_RESERVE] == 1  # reserve went through Python in the JIT


def test_a_helper_the_user_replaced_runs_in_python() -> None:
    _, prog, rb = _setup(EVENTS)
    replaced = Vm()
    replaced.register_helper(Helper.RINGBUF_OUTPUT, lambda rt, *args: 7)
    ring = replaced.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb"))
    insns = [i if i.opcode != 0x18 or i.src != 1 else Instruction(i.opcode, i.dst, i.src, i.off, ring.fd)
             for i in assemble(EVENTS)]
    mine = replaced.load(insns, prog_type=ProgType.XDP, verify=True)
    results = [mine.test_run(bytes(64), ctx=CTX, engine=e).retval & 0xFF for e in ("interp", "jit")]
    assert results == [7, 7]
    assert prog.test_run(bytes(64), ctx=CTX, engine="jit").retval & 0xFF == 0
    assert len(rb.drain()) == 2


def test_a_native_record_handed_to_a_python_helper_gets_a_region() -> None:
    results = []
    for engine in ("interp", "jit"):
        vm, prog, rb = _setup(COMM)
        rets = [prog.test_run(engine=engine).retval for _ in range(3)]  # type: ignore[arg-type]
        results.append((rets, rb.drain(), vm.mem.version > 0, len(rb.by_addr)))
    assert results[0] == results[1]
    records = results[0][1]
    assert len(records) == 3 and records[0][:6] == b"python" and records[0][16:] == (7).to_bytes(8, "little")
    assert results[1][3] == 0  # every region a record got was unmapped at submit


def test_the_reader_sees_natively_produced_records() -> None:
    got: dict[str, list[bytes]] = {}
    for engine in ("interp", "jit"):
        _, prog, rb = _setup(EVENTS, size=1 << 16)
        seen: list[bytes] = []
        with VmRingBuffer(rb, lambda view, seen=seen: seen.append(bytes(view))) as reader:  # type: ignore[misc]
            for _ in range(5):
                prog.test_run(bytes(64), ctx=CTX, engine=engine, repeat=7)  # type: ignore[arg-type]
                reader.poll(0)
            got[engine] = seen
            assert reader.received == 70 and reader.discarded == 35
    assert got["jit"] == got["interp"]
    assert got["jit"][:2] == [(0x1122).to_bytes(8, "little") + (0x0A0B0C0D).to_bytes(8, "little"),
                              (0x3333).to_bytes(8, "little")[3:]]


def test_reservations_that_do_not_fit_are_null_like_the_kernel() -> None:
    # A record may not bring the producer a full ring ahead of the consumer (kernel: > mask).
    sizes = [4096 - 8, 4096 - 16, 4096 - 15, 0, 5000, 1 << 40]
    for size in sizes:
        text = f"r1 = map[id:0]\nr2 = {size} ll\nr3 = 0\ncall bpf_ringbuf_reserve\nif r0 == 0 goto out\n" \
               "r1 = r0\nr2 = 0\ncall bpf_ringbuf_discard\nr0 = 1\nexit\nout:\nr0 = 0\nexit"
        answers = []
        for engine in ("interp", "jit"):
            _, prog, rb = _setup(text)
            if size == 0:  # exactly a full ring left: 4096 - 8 bytes in use, a record needs 8
                rb.output(bytes(4096 - 16))
            answers.append(prog.test_run(engine=engine).retval)  # type: ignore[arg-type]
        assert answers[0] == answers[1], size
        assert answers[0] == (1 if size == 4096 - 16 else 0), size
