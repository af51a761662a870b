"""Helpers: registry, kernel-semantics helpers (loop, for_each, probe_read, printk, task, time), tail
calls and the conformance plugin's helpers."""

from __future__ import annotations

import errno

import pytest

from bpfkit.errors import VmError, VmHelperError, VmMemoryError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.uapi.insn import MAX_TAIL_CALL_CNT, Reg
from bpfkit.vm import HelperRegistry, RunState, Task, Vm, conformance_helpers, default_helpers

R = Reg
U64 = (1 << 64) - 1


def _put(b: Builder, off: int, data: bytes) -> Builder:
    """Store `data` (a multiple of 8 bytes) at fp + off through r9."""
    for i in range(0, len(data), 8):
        b.ld_imm64(R.R9, int.from_bytes(data[i:i + 8], "little")).stx(8, R.R10, off + i, R.R9)
    return b


def test_default_registry_uses_kernel_ids() -> None:
    reg = default_helpers()
    assert Helper.MAP_LOOKUP_ELEM in reg and Helper.LOOP in reg and Helper.RINGBUF_RESERVE in reg
    assert reg.name_of(Helper.KTIME_GET_NS) == "ktime_get_ns"


def test_user_helpers(engine: str) -> None:
    # Opt-out (verify=False): user-registered helpers (ids >= 1000) are unknown to any verifier.
    vm = Vm()

    def triple(rt: RunState, a: int, b: int, c: int, d: int, e: int) -> int:
        return a * 3

    vm.register_helper(1000, triple, "triple")
    b = Builder().mov(R.R1, 14).call(1000).exit()
    assert vm.load(b.build(), verify=False).test_run(engine=engine).retval == 42  # type: ignore[arg-type]

    def angry(rt: RunState, *_: int) -> int:
        raise VmHelperError("nope")

    vm.register_helper(1001, angry)
    with pytest.raises(VmHelperError, match="pc 0") as info:
        vm.load(Builder().call(1001).exit().build(), verify=False).test_run(engine=engine)  # type: ignore[arg-type]
    assert info.value.pc == 0
    with pytest.raises(VmHelperError):
        HelperRegistry().register(1 << 40, triple)


def test_bpf_loop_calls_back_and_stops(engine: str) -> None:
    # sum i for i in 0..n-1, stopping when i == 6 (callback returns 1)
    b = Builder().st(8, R.R10, -8, 0).mov(R.R1, 10).ld_func(R.R2, "cb").mov(R.R3, R.R10).add(R.R3, -8)
    b.mov(R.R4, 0).call(Helper.LOOP).alu("lsh", R.R0, 32).ldx(8, R.R1, R.R10, -8).add(R.R0, R.R1).exit()
    b.label("cb").ldx(8, R.R3, R.R2, 0).add(R.R3, R.R1).stx(8, R.R2, 0, R.R3)
    b.mov(R.R0, 0).jmp("jne", R.R1, 6, "go").mov(R.R0, 1).label("go").exit()
    r = Vm().load(b.build()).test_run(engine=engine)  # type: ignore[arg-type]
    assert r.retval == (7 << 32) | sum(range(7))
    bad = Builder().mov(R.R1, (1 << 23) + 1).ld_func(R.R2, "cb").mov(R.R3, 0).mov(R.R4, 0)
    bad.call(Helper.LOOP).exit().label("cb").mov(R.R0, 0).exit()
    assert Vm().load(bad.build()).test_run(engine=engine).retval == -errno.E2BIG & U64  # type: ignore[arg-type]


def test_for_each_map_elem(engine: str) -> None:
    vm = Vm()
    h = vm.create_map(MapSpec(MapType.HASH, 4, 8, 8, name="h"))
    for k in range(1, 4):
        h.update(k.to_bytes(4, "little"), (k * 10).to_bytes(8, "little"))
    b = Builder().st(8, R.R10, -8, 0).ld_map(R.R1, "h").ld_func(R.R2, "cb").mov(R.R3, R.R10)
    b.add(R.R3, -8).mov(R.R4, 0).call(Helper.FOR_EACH_MAP_ELEM)
    b.alu("lsh", R.R0, 32).ldx(8, R.R1, R.R10, -8).add(R.R0, R.R1).exit()
    # cb(map, key, value, ctx): *ctx += *key * *value; continue
    b.label("cb").ldx(4, R.R2, R.R2, 0).ldx(8, R.R3, R.R3, 0).alu("mul", R.R2, R.R3)
    b.ldx(8, R.R5, R.R4, 0).add(R.R5, R.R2).stx(8, R.R4, 0, R.R5).mov(R.R0, 0).exit()
    r = vm.load(b.build(), maps={"h": h}, relocations=b.relocations).test_run(engine=engine)  # type: ignore[arg-type]
    assert r.retval == (3 << 32) | (10 + 40 + 90)


def test_probe_read_is_confined_to_vm_memory(engine: str) -> None:
    # Opt-out (verify=False): the program passes wild pointers on purpose: the run-time checks are under test.
    b = Builder().st(8, R.R10, -16, 0x55).mov(R.R1, R.R10).add(R.R1, -8).mov(R.R2, 8)
    b.mov(R.R3, R.R10).add(R.R3, -16).call(Helper.PROBE_READ_KERNEL).ldx(8, R.R0, R.R10, -8).exit()
    assert Vm().load(b.build(), verify=False).test_run(engine=engine).retval == 0x55  # type: ignore[arg-type]
    bad = Builder().st(8, R.R10, -8, -1).mov(R.R1, R.R10).add(R.R1, -8).mov(R.R2, 8)
    bad.ld_imm64(R.R3, 0xFFFF_FFFF_8100_0000).call(Helper.PROBE_READ_USER).mov(R.R6, R.R0)
    bad.ldx(8, R.R0, R.R10, -8).add(R.R0, R.R6).exit()  # dst zeroed, -EFAULT returned
    assert Vm().load(bad.build(), verify=False).test_run(engine=engine).retval == -errno.EFAULT & U64  # type: ignore[arg-type]
    # writing outside VM memory is a fault of the program, not a helper error code
    wild = Builder().mov(R.R1, 8).mov(R.R2, 8).mov(R.R3, R.R10).add(R.R3, -8)
    wild.call(Helper.PROBE_READ_KERNEL).exit()
    with pytest.raises(VmMemoryError):
        Vm().load(wild.build(), verify=False).test_run(engine=engine)  # type: ignore[arg-type]


def test_probe_read_str(engine: str) -> None:
    b = _put(Builder(), -16, b"hi!\0zzzz").mov(R.R1, R.R10).add(R.R1, -8)
    b.mov(R.R2, 8).mov(R.R3, R.R10).add(R.R3, -16).call(Helper.PROBE_READ_KERNEL_STR).exit()
    assert Vm().load(b.build()).test_run(engine=engine).retval == 4  # type: ignore[arg-type]


def test_trace_printk_formats_like_the_kernel(engine: str) -> None:
    vm = Vm()
    fmt = b"n=%d u=%u %s %%\0".ljust(24, b"\0")
    b = _put(Builder(), -32, fmt)
    _put(b, -40, b"abc\0\0\0\0\0")
    b.mov(R.R1, R.R10).add(R.R1, -32).mov(R.R2, 16).mov(R.R3, -5).ld_imm64(R.R4, 0x1_0000_0007)
    b.mov(R.R5, R.R10).add(R.R5, -40).call(Helper.TRACE_PRINTK).exit()
    r = vm.load(b.build()).test_run(engine=engine)  # type: ignore[arg-type]
    assert vm.trace_output == ["n=-5 u=7 abc %"]
    assert r.retval == len("n=-5 u=7 abc %") + 1


def test_task_and_time_helpers(engine: str) -> None:
    vm = Vm(task=Task(pid=7, tgid=6, uid=1000, gid=100, comm="worker"), clock=lambda: 123_456_789)
    b = Builder().call(Helper.GET_CURRENT_PID_TGID).mov(R.R6, R.R0).call(Helper.GET_CURRENT_UID_GID)
    b.mov(R.R7, R.R0).call(Helper.KTIME_GET_NS).mov(R.R8, R.R0)
    b.mov(R.R1, R.R10).add(R.R1, -16).mov(R.R2, 16).call(Helper.GET_CURRENT_COMM)
    b.ldx(8, R.R0, R.R10, -16).exit()
    rt_vals = vm.load(b.build()).test_run(engine=engine)  # type: ignore[arg-type]
    assert rt_vals.retval == int.from_bytes(b"worker\0\0", "little")
    probe = Builder().call(Helper.GET_CURRENT_PID_TGID).exit()
    assert vm.load(probe.build()).test_run(engine=engine).retval == (6 << 32) | 7  # type: ignore[arg-type]
    clock = Builder().call(Helper.KTIME_GET_NS).exit()
    assert vm.load(clock.build()).test_run(engine=engine).retval == 123_456_789  # type: ignore[arg-type]


def test_prandom_is_seeded() -> None:
    b = Builder().call(Helper.GET_PRANDOM_U32).exit().build()
    a = [Vm(seed=3).load(b).test_run().retval for _ in range(2)]
    assert a[0] == a[1] and a[0] < 1 << 32


def _tail_chain(vm: Vm, jt: object) -> object:
    """A program that counts itself in r0's slot at fp and tail-calls index 0 of the array forever."""
    counter = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 1, name="count"))
    b = Builder().mov(R.R6, R.R1).st(4, R.R10, -4, 0).ld_map(R.R1, "count").mov(R.R2, R.R10)
    b.add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").mov(R.R1, 1)
    b.atomic(8, 0, R.R0, 0, R.R1)
    b.mov(R.R1, R.R6).ld_map(R.R2, "jt").mov(R.R3, 0).call(Helper.TAIL_CALL)
    b.label("out").mov(R.R0, 77).exit()
    # Opt-out: in raw-memory mode r1 is memory, not the context bpf_tail_call wants.
    prog = vm.load(b.build(), maps={"jt": jt, "count": counter},  # type: ignore[dict-item]
                   relocations=b.relocations, verify=False)
    return prog, counter


def test_tail_calls_stop_after_max_tail_call_cnt(engine: str) -> None:
    vm = Vm()
    jt = vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 1, name="jt"))
    prog, counter = _tail_chain(vm, jt)
    prog.set_tail_call(jt, 0)  # type: ignore[attr-defined]
    r = prog.test_run(engine=engine)  # type: ignore[attr-defined]
    assert r.retval == 77
    assert counter.lookup(bytes(4)) == (MAX_TAIL_CALL_CNT + 1).to_bytes(8, "little")  # type: ignore[attr-defined]


def test_tail_call_replaces_the_caller(engine: str) -> None:
    # Opt-out (verify=False): raw-memory programs pass r1 (memory, not a context) to bpf_tail_call:
    # helper semantics under test.
    vm = Vm()
    jt = vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 2, name="jt"))
    target = vm.load(Builder().mov(R.R0, 5).exit().build())  # verified: checked again at the tail call
    target.set_tail_call(jt, 1)
    b = Builder().ld_map(R.R2, "jt").mov(R.R3, 1).call(Helper.TAIL_CALL).mov(R.R0, 9).exit()
    prog = vm.load(b.build(), maps={"jt": jt}, relocations=b.relocations, verify=False)
    assert prog.test_run(engine=engine).retval == 5  # type: ignore[arg-type]
    missing = Builder().ld_map(R.R2, "jt").mov(R.R3, 0).call(Helper.TAIL_CALL).mov(R.R0, 9).exit()
    prog2 = vm.load(missing.build(), maps={"jt": jt}, relocations=missing.relocations, verify=False)
    assert prog2.test_run(engine=engine).retval == 9  # type: ignore[arg-type]
    with pytest.raises(VmError):
        target.set_tail_call(vm.create_map(MapSpec(MapType.ARRAY, 4, 4, 1, name="x")), 0)


def test_conformance_helpers() -> None:
    # Opt-out (verify=False): the conformance suite's helpers (ids 0..5) are not kernel helpers.
    reg = conformance_helpers()
    vm = Vm(helpers=reg)
    b = Builder()
    for i, v in enumerate((0x11, 0x22, 0x33, 0x44, 0x55), start=1):
        b.mov(Reg(i), v)
    b.call(0).exit()
    assert vm.load(b.build(), verify=False).test_run().retval == 0x1122334455
    sq = Builder().mov(R.R1, 1_000_000).call(3).exit()
    assert vm.load(sq.build(), verify=False).test_run().retval == 1000
    unwind = Builder().mov(R.R1, 0).call(5).mov(R.R0, 2).exit()
    assert vm.load(unwind.build(), verify=False).test_run().retval == 0
