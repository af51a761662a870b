"""The JIT behind the VM's API: contexts, helpers, maps, limits and errors give exactly what the
interpreter gives; native code is W^X, released on close, and falls back off x86-64."""

from __future__ import annotations

import gc
import struct
import threading
import weakref
from collections.abc import Sequence

import pytest

from bpfkit.errors import BpfkitError, VmError, VmLimitError, VmMemoryError
from bpfkit.isa import Builder, Instruction
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType, XdpAction
from bpfkit.uapi.insn import AtomicOp, Reg
from bpfkit.vm import BPF_MAX_LOOPS, Vm, conformance_helpers
from bpfkit.vm.context import XDP_PACKET_HEADROOM
from bpfkit.vm.jit import JitOptions, jit_supported, program_for, runtime_for, set_options

R = Reg
U64 = (1 << 64) - 1
ETH_IP_UDP = (bytes(6) + bytes([2] * 6) + b"\x08\x00"
              + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
              + b"\x30\x39\x00\x35\x00\x08\x00\x00")

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def run(insns: Sequence[Instruction] | Builder, engine: str, data: bytes = b"", *, ctx: bytes | None = None,
        prog_type: ProgType | None = None, budget: int | None = 100_000) -> tuple[object, ...]:
    """Load unverified (the opt-out: these compare the engines' run-time checks on programs that fault,
    loop or misuse pointers on purpose; verified JIT runs are tested in test_proven_safe.py) and run."""
    program = insns.build() if isinstance(insns, Builder) else list(insns)
    vm = Vm(budget=budget, seed=3, clock=lambda: 1_000_000)
    try:
        with vm.load(program, prog_type=prog_type, verify=False) as prog:
            r = prog.test_run(data, ctx, engine=engine)  # type: ignore[arg-type]
    except BpfkitError as err:
        return ("error", type(err).__name__, str(err))
    return ("ok", r.retval, r.data_out, r.ctx_out, r.instructions, tuple(vm.trace_output))


def same(insns: Sequence[Instruction] | Builder, data: bytes = b"", **kw: object) -> tuple[object, ...]:
    """Run in the interpreter and the JIT; the outcomes (errors included, messages and all) must be
    identical. Returns the JIT's outcome."""
    slow = run(insns, "interp", data, **kw)  # type: ignore[arg-type]
    fast = run(insns, "jit", data, **kw)  # type: ignore[arg-type]
    assert fast == slow
    return fast


# -- contexts ---------------------------------------------------------------------------------------
def xdp_parser() -> Builder:
    b = Builder()
    b.ldx(4, R.R2, R.R1, 0).ldx(4, R.R3, R.R1, 4)
    b.mov(R.R4, R.R2).add(R.R4, 42).jmp("jgt", R.R4, R.R3, "drop")
    b.ldx(2, R.R5, R.R2, 12).jmp("jne", R.R5, 0x0008, "drop")
    b.ldx(1, R.R5, R.R2, 23).jmp("jne", R.R5, 17, "drop")
    b.ldx(2, R.R5, R.R2, 36).endian(R.R5, 16, "be").jmp("jne", R.R5, 53, "drop")
    b.mov(R.R0, int(XdpAction.PASS)).exit()
    b.label("drop").mov(R.R0, int(XdpAction.DROP)).exit()
    return b


def test_xdp_packet_pointers_and_parsing() -> None:
    assert same(xdp_parser(), ETH_IP_UDP, prog_type=ProgType.XDP)[1] == XdpAction.PASS
    assert same(xdp_parser(), ETH_IP_UDP[:40], prog_type=ProgType.XDP)[1] == XdpAction.DROP
    b = Builder().ldx(4, R.R2, R.R1, 0).ldx(4, R.R3, R.R1, 4).mov(R.R0, R.R3).sub(R.R0, R.R2).exit()
    assert same(b, bytes(77), prog_type=ProgType.XDP)[1] == 77


@pytest.mark.parametrize("program", [
    Builder().ldx(4, R.R2, R.R1, 0).ldx(1, R.R0, R.R2, 100).exit(),  # past data_end
    Builder().mov(R.R0, 0).stx(4, R.R1, 0, R.R0).exit(),  # xdp_md is read-only
    Builder().ldx(8, R.R0, R.R1, 0).exit(),  # a pointer field read with 8 bytes
    Builder().ldx(2, R.R0, R.R1, 2).exit(),  # not a field: plain bytes of xdp_md
    Builder().ldx(4, R.R0, R.R1, 12).exit(),  # ingress_ifindex
    Builder().ldx(4, R.R0, R.R1, 24).exit(),  # past the end of xdp_md
    Builder().mov(R.R2, 1).atomic(4, AtomicOp.ADD, R.R1, 0, R.R2).mov(R.R0, 0).exit(),
    Builder().ldx(4, R.R0, R.R1, 0, signed=True).exit(),  # a pointer field, sign-extended
], ids=["past-end", "ctx-store", "ctx-8-byte", "ctx-plain", "ifindex", "ctx-past-end", "ctx-atomic",
        "ctx-signed"])
def test_xdp_context_faults_and_plain_fields(program: Builder) -> None:
    same(program, bytes(60), prog_type=ProgType.XDP)


def test_xdp_adjust_head_tail_and_meta_resync_the_pointers() -> None:
    b = Builder().mov(R.R6, R.R1).mov(R.R2, -4).call(Helper.XDP_ADJUST_HEAD)
    b.jmp("jne", R.R0, 0, "bad")
    b.ldx(4, R.R2, R.R6, 0).ldx(4, R.R3, R.R6, 4).mov(R.R4, R.R2).add(R.R4, 4)
    b.jmp("jgt", R.R4, R.R3, "bad").st(4, R.R2, 0, 0x44434241)
    b.mov(R.R0, 2).exit().label("bad").mov(R.R0, 0).exit()
    out = same(b, bytes(20), prog_type=ProgType.XDP)
    assert out[1] == 2 and out[2] == b"ABCD" + bytes(20)
    b2 = Builder().mov(R.R2, -(XDP_PACKET_HEADROOM + 1)).call(Helper.XDP_ADJUST_HEAD).exit()
    assert same(b2, bytes(20), prog_type=ProgType.XDP)[1] == (-22) & U64
    b3 = Builder().mov(R.R6, R.R1).mov(R.R2, -10).call(Helper.XDP_ADJUST_TAIL)
    b3.mov(R.R1, R.R6).mov(R.R2, -8).call(Helper.XDP_ADJUST_META)
    b3.ldx(4, R.R2, R.R6, 8).ldx(4, R.R3, R.R6, 0).mov(R.R0, R.R3).sub(R.R0, R.R2).exit()
    assert same(b3, bytes(range(30)), prog_type=ProgType.XDP)[1] == 8
    # After adjust_head the old data pointer's bytes are still packet, reads past the new end fault.
    b4 = Builder().mov(R.R6, R.R1).ldx(4, R.R7, R.R1, 0).mov(R.R1, R.R6).mov(R.R2, 8)
    b4.call(Helper.XDP_ADJUST_HEAD).ldx(1, R.R0, R.R7, 0).exit()
    same(b4, bytes(20), prog_type=ProgType.XDP)


def test_tc_skb_context() -> None:
    b = Builder().ldx(4, R.R2, R.R1, 76).ldx(4, R.R3, R.R1, 80).mov(R.R0, R.R3).sub(R.R0, R.R2)
    b.ldx(4, R.R4, R.R1, 16).alu("lsh", R.R4, 32).add(R.R0, R.R4)
    b.st(4, R.R1, 8, 0x1234).ldx(4, R.R5, R.R1, 0).add(R.R0, R.R5).exit()
    out = same(b, ETH_IP_UDP, prog_type=ProgType.SCHED_CLS)
    assert out[1] == (0x0008 << 32) + 2 * len(ETH_IP_UDP)
    assert struct.unpack_from("<I", out[3], 8)[0] == 0x1234  # type: ignore[arg-type]
    same(Builder().st(4, R.R1, 0, 1).mov(R.R0, 0).exit(), ETH_IP_UDP, prog_type=ProgType.SCHED_CLS)
    same(Builder().ldx(2, R.R0, R.R1, 76).exit(), ETH_IP_UDP, prog_type=ProgType.SCHED_CLS)


def test_socket_filter_ld_abs_and_ld_ind() -> None:
    b = Builder().mov(R.R6, R.R1).ld_abs(1, 9).mov(R.R7, R.R0)
    b.ld_abs(4, 16).mov(R.R8, R.R0)
    b.mov(R.R1, 0).ld_ind(2, R.R1, 20)
    b.alu("lsh", R.R7, 48).alu("lsh", R.R0, 32).add(R.R0, R.R7).add(R.R0, R.R8).exit()
    assert same(b, ETH_IP_UDP, prog_type=ProgType.SOCKET_FILTER)[1] == (17 << 48) | (12345 << 32) | 0x0A000002
    for off in (1000, -4, len(ETH_IP_UDP) - 14 - 3):
        b2 = Builder().mov(R.R6, R.R1).mov(R.R0, 5).ld_abs(4, off).mov(R.R0, 9).exit()
        same(b2, ETH_IP_UDP, prog_type=ProgType.SOCKET_FILTER)
    same(Builder().ld_abs(1, 0).exit())  # no packet at all: a fault


def test_tracing_context_is_read_only() -> None:
    assert same(Builder().ldx(8, R.R0, R.R1, 8).exit(), ctx=struct.pack("<QQ", 1, 0xABCDEF),
                prog_type=ProgType.RAW_TRACEPOINT)[1] == 0xABCDEF
    out = same(Builder().st(8, R.R1, 0, 1).exit(), ctx=bytes(16), prog_type=ProgType.TRACEPOINT)
    assert out[0] == "error"


# -- limits and errors ------------------------------------------------------------------------------
def test_budget_exhaustion_names_the_same_instruction() -> None:
    b = Builder().mov(R.R0, 0).label("top").add(R.R0, 1).add(R.R0, 2).add(R.R0, 3).ja("top")
    for budget in (1, 2, 3, 7, 1000, 1001, 1002):
        out = same(b, budget=budget)
        assert out[0] == "error" and out[1] == "VmLimitError"


def test_call_depth_limit() -> None:
    b = Builder().call_local("f").exit().label("f").call_local("f").exit()
    assert "call depth exceeds 8" in str(same(b)[2])


def test_may_goto_counts_down_from_bpf_max_loops() -> None:
    b = Builder().mov(R.R0, 0).label("top").may_goto("out").add(R.R0, 1).ja("top").label("out").exit()
    r = Vm(budget=None).load(b.build()).test_run(engine="jit")
    assert r.retval == BPF_MAX_LOOPS and r.instructions == 3 * BPF_MAX_LOOPS + 3


def test_errors_at_the_same_pc() -> None:
    same(Builder().mov(R.R0, 1))  # falls off the end
    same(Builder().mov(R.R1, 0x1234).callx(R.R1).exit())  # callx to garbage
    same(Builder().mov(R.R1, 0).ldx(8, R.R0, R.R1, 16).exit())  # NULL
    same(Builder().ld_imm64(R.R1, 0xDEAD_0000_0000).st(4, R.R1, 0, 1).mov(R.R0, 0).exit())
    same(Builder().ld_imm64(R.R1, 0x1234).mov(R.R2, 1).call(Helper.MAP_LOOKUP_ELEM).exit())  # not a map


def test_long_jumps_across_big_programs() -> None:
    b = Builder().mov(R.R0, 0).jmp("jeq", R.R1, 0, "far")
    for i in range(600):
        b.add(R.R0, i)
    b.label("far").add(R.R0, 7).jmp("jne", R.R0, 7, "back").exit()
    b.label("back")
    for i in range(300):
        b.alu("xor", R.R0, i)
    b.jmp("jgt", R.R0, 0, "done").exit().label("done").mov(R.R0, 1).exit()
    same(b)
    same(b, b"x")


# -- helpers, maps, calls ---------------------------------------------------------------------------
def test_map_values_written_natively_are_seen_from_python() -> None:
    vm = Vm()
    arr = vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 4, name="arr"))
    h = vm.create_map(MapSpec(MapType.HASH, 4, 8, 64, name="h"))
    b = Builder().mov(R.R6, 0).label("loop")
    b.stx(4, R.R10, -4, R.R6).ld_map(R.R1, "h").mov(R.R2, R.R10).add(R.R2, -4)
    b.mov(R.R3, R.R10).add(R.R3, -16).stx(8, R.R10, -16, R.R6).mov(R.R4, 0).call(Helper.MAP_UPDATE_ELEM)
    b.ld_map(R.R1, "h").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "next").mov(R.R1, 100).atomic(8, AtomicOp.ADD, R.R0, 0, R.R1)
    b.label("next").add(R.R6, 1).jmp("jlt", R.R6, 40, "loop")
    b.st(4, R.R10, -4, 2).ld_map(R.R1, "arr").mov(R.R2, R.R10).add(R.R2, -4).call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", R.R0, 0, "out").st(8, R.R0, 8, 0x55).ldx(8, R.R0, R.R0, 16)  # past the value: fault
    b.label("out").exit()
    # Opt-out: the read past the value is the fault under test (the verifier would refuse it).
    prog = vm.load(b.build(), maps={"arr": arr, "h": h}, relocations=b.relocations, verify=False)
    with pytest.raises(VmMemoryError, match="out of bounds of the map value region arr"):
        prog.test_run(engine="jit")
    assert arr.lookup((2).to_bytes(4, "little"))[8:] == (0x55).to_bytes(8, "little")
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in h.items()} == {
        i: i + 100 for i in range(40)}


def test_ringbuf_and_printk_with_strings_on_the_stack() -> None:
    outs = []
    for engine in ("interp", "jit"):
        vm = Vm()
        rb = vm.create_map(MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb"))
        b = Builder().ld_map(R.R1, "rb").mov(R.R2, 16).mov(R.R3, 0).call(Helper.RINGBUF_RESERVE)
        b.jmp("jeq", R.R0, 0, "out").st(8, R.R0, 0, 0x1122).st(8, R.R0, 8, 0x3344)
        b.mov(R.R1, R.R0).mov(R.R2, 0).call(Helper.RINGBUF_SUBMIT)
        b.ld_imm64(R.R1, int.from_bytes(b"hello\0\0\0", "little")).stx(8, R.R10, -8, R.R1)
        b.ld_imm64(R.R1, int.from_bytes(b"n%d: %s\0", "little")).stx(8, R.R10, -24, R.R1)
        b.st(8, R.R10, -16, 0)
        b.ld_map(R.R1, "rb").mov(R.R2, R.R10).add(R.R2, -24).mov(R.R3, 8).mov(R.R4, 0)
        b.call(Helper.RINGBUF_OUTPUT)
        b.mov(R.R1, R.R10).add(R.R1, -24).mov(R.R2, 16).mov(R.R3, 42).mov(R.R4, R.R10).add(R.R4, -8)
        b.call(Helper.TRACE_PRINTK).label("out").exit()
        r = vm.load(b.build(), maps={"rb": rb}, relocations=b.relocations).test_run(engine=engine)  # type: ignore[arg-type]
        outs.append((r.retval, rb.drain(), vm.trace_output))  # type: ignore[attr-defined]
    assert outs[0] == outs[1]
    assert outs[1][2] == ["n42: hello"]
    assert outs[1][1] == [struct.pack("<QQ", 0x1122, 0x3344), b"n%d: %s\0"]


def test_unwind_ends_each_repeated_run() -> None:
    vm = Vm(helpers=conformance_helpers())
    b = Builder().ldx(1, R.R0, R.R1, 0).add(R.R0, 1).stx(1, R.R1, 0, R.R0).mov(R.R1, 0).call(5)
    b.mov(R.R0, 99).exit()
    r = vm.load(b.build()).test_run(b"\x00", repeat=5, engine="jit")
    assert r.retval == 0 and r.data_out == b"\x05"


def test_repeat_runs_natively_and_keeps_packet_changes() -> None:
    b = Builder().ldx(1, R.R0, R.R1, 0).add(R.R0, 1).stx(1, R.R1, 0, R.R0).exit()
    r = Vm().load(b.build()).test_run(b"\x00", repeat=200, engine="jit")
    assert r.retval == 200 and r.data_out == b"\xc8" and r.instructions == 4


def test_global_data_ld_imm64_points_at_host_memory() -> None:
    vm = Vm()
    data = vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 1, name=".data", contents=((b"\0\0\0\0",
                                                                                   bytes(range(16))),)))
    b = Builder().ld_map(R.R1, ".data", value_offset=4).ldx(4, R.R0, R.R1, 0).st(4, R.R1, 4, 7).exit()
    prog = vm.load(b.build(), maps={".data": data}, relocations=b.relocations)
    assert prog.test_run(engine="jit").retval == int.from_bytes(bytes(range(4, 8)), "little")
    assert data.lookup(bytes(4))[8:12] == (7).to_bytes(4, "little")


def test_threads_share_a_vm_safely() -> None:
    vm = Vm()
    arr = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 1, name="c"))
    b = Builder().st(4, R.R10, -4, 0).ld_map(R.R1, "c").mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").mov(R.R1, 1)
    b.atomic(8, AtomicOp.ADD, R.R0, 0, R.R1).label("out").mov(R.R0, 0).exit()
    prog = vm.load(b.build(), maps={"c": arr}, relocations=b.relocations)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                prog.test_run(repeat=20, engine="jit")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert arr.lookup(bytes(4)) == (4 * 50 * 20).to_bytes(8, "little")


# -- native code lifetime and modes -----------------------------------------------------------------
def _mapping_perms(address: int) -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return perms[:3]
    return ""


def test_code_is_never_writable_and_executable_and_is_unmapped_on_close() -> None:
    vm = Vm()
    prog = vm.load(Builder().mov(R.R0, 3).exit().build())
    assert prog.test_run(engine="jit").retval == 3
    jp = program_for(prog.loaded, runtime_for(vm.mem))
    assert _mapping_perms(jp.buffer.address) == "r-x"
    assert _mapping_perms(jp.buffer.data) == "rw-"
    prog.close()
    assert jp.closed and _mapping_perms(jp.buffer.address) == ""
    prog.close()  # idempotent
    with pytest.raises(VmError, match="closed"):
        jp.enter(None)  # type: ignore[arg-type]
    assert prog.test_run(engine="jit").retval == 3  # recompiled on demand


def test_dropped_programs_are_unmapped_by_the_finalizer() -> None:
    vm = Vm()
    prog = vm.load(Builder().mov(R.R0, 3).exit().build())
    prog.test_run(engine="jit")
    jp = program_for(prog.loaded, runtime_for(vm.mem))
    address, buffer = jp.buffer.address, weakref.ref(jp.buffer)
    del prog, jp
    gc.collect()
    assert buffer() is None and _mapping_perms(address) == ""


def test_unsafe_and_proven_safe_options() -> None:
    vm = Vm()
    b = Builder().mov(R.R2, R.R10).add(R.R2, -8).st(8, R.R2, 0, 5).ldx(8, R.R0, R.R2, 0)
    b.ldx(8, R.R3, R.R10, -8).add(R.R0, R.R3).exit()
    prog = vm.load(b.build(), verify=False)  # the options alone decide the checks
    runtime = runtime_for(vm.mem)
    assert prog.test_run(engine="jit").retval == 10
    compiled = program_for(prog.loaded, runtime).compiled
    assert (compiled.checked, compiled.unchecked) == (2, 1)  # r10-relative is proven by construction
    set_options(prog.loaded, JitOptions(proven_safe=frozenset({3})))
    assert prog.test_run(engine="jit").retval == 10
    compiled = program_for(prog.loaded, runtime).compiled
    assert (compiled.checked, compiled.unchecked) == (1, 2)
    set_options(prog.loaded, JitOptions(unsafe=True))
    assert prog.test_run(engine="jit").retval == 10
    assert program_for(prog.loaded, runtime).compiled.checked == 0


def test_falls_back_to_the_fast_engine_off_x86_64(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    with pytest.warns(RuntimeWarning, match="JIT unavailable.*aarch64"):
        vm = Vm(engine="jit")
    assert vm.engine == "fast"
    prog = Vm().load(Builder().mov(R.R0, 4).exit().build())
    with pytest.warns(RuntimeWarning, match="fast engine"):
        assert prog.test_run(engine="jit").retval == 4


def test_vm_engine_jit() -> None:
    vm = Vm(engine="jit")
    r = vm.load(xdp_parser().build(), prog_type=ProgType.XDP).test_run(ETH_IP_UDP)
    assert r.retval == XdpAction.PASS and r.instructions == 14


def test_kernel_limit_errors_are_vm_limit_errors() -> None:
    with pytest.raises(VmLimitError):
        Vm(budget=10, engine="jit").load(Builder().label("x").ja("x").build(), verify=False).test_run()


def test_closing_a_program_from_its_own_helper_defers_the_unmap() -> None:
    vm = Vm()
    holder: list[object] = []

    def close_me(rt: object, *args: int) -> int:
        holder[0].close()  # type: ignore[attr-defined]
        return 11
    vm.register_helper(0x7001, close_me, "close_me")
    prog = vm.load(Builder().call(0x7001).add(R.R0, 1).exit().build(), verify=False)  # a user helper
    holder.append(prog)
    prog.test_run(engine="jit")  # compiled once; this run closes it from inside
    jp = program_for(prog.loaded, runtime_for(vm.mem))
    address = jp.buffer.address
    assert prog.test_run(engine="jit").retval == 12
    assert jp.closed and _mapping_perms(address) == ""


def test_the_jit_runtime_lives_and_dies_with_its_vm() -> None:
    vm = Vm()
    prog = vm.load(Builder().mov(R.R0, 1).exit().build())
    prog.test_run(engine="jit")
    runtime = weakref.ref(runtime_for(vm.mem))
    assert runtime_for(vm.mem) is runtime()
    del vm, prog
    gc.collect()
    assert runtime() is None


def test_callx_to_subprograms_runs_natively() -> None:
    b = Builder().mov(R.R6, 5).ld_func(R.R7, "double").ld_func(R.R8, "inc")
    b.mov(R.R1, 20).callx(R.R7).mov(R.R1, R.R0).callx(R.R8).add(R.R0, R.R6).exit()
    b.label("double").mov(R.R0, R.R1).add(R.R0, R.R1).exit()
    b.label("inc").mov(R.R6, 1000).mov(R.R0, R.R1).add(R.R0, 1).exit()  # r6 is callee-saved
    assert same(b)[1] == 20 * 2 + 1 + 5


def test_callbacks_nest_to_the_call_depth_limit() -> None:
    """bpf_loop calling a callback that calls bpf_loop again...: each level is a native entry from
    Python; the eighth frame fails exactly as in the interpreter. (A chain of forward references: a
    backward `ld_func` is mis-resolved by LoadedProgram, in every engine.)"""
    b = Builder().mov(R.R1, 1).ld_func(R.R2, "cb0").mov(R.R3, 0).mov(R.R4, 0).call(Helper.LOOP).exit()
    for level in range(10):
        b.label(f"cb{level}").mov(R.R1, 1).ld_func(R.R2, f"cb{level + 1}").mov(R.R3, 0).mov(R.R4, 0)
        b.call(Helper.LOOP).exit()
    b.label("cb10").mov(R.R0, 0).exit()
    out = same(b)
    assert out[0] == "error" and "call depth exceeds 8" in str(out[2])
    shallow = Builder().mov(R.R1, 3).ld_func(R.R2, "cb0").mov(R.R3, 0).mov(R.R4, 0).call(Helper.LOOP).exit()
    for level in range(5):
        shallow.label(f"cb{level}").mov(R.R1, 2).ld_func(R.R2, f"cb{level + 1}").mov(R.R3, 0)
        shallow.mov(R.R4, 0).call(Helper.LOOP).mov(R.R0, 0).exit()
    shallow.label("cb5").mov(R.R0, 0).exit()
    assert same(shallow)[1] == 3
