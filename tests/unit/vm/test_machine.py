"""The `Vm`/`VmProgram` API and the program contexts (raw memory, XDP, skb, tracing)."""

from __future__ import annotations

import struct

import pytest

from bpfkit.errors import VmError, VmMemoryError
from bpfkit.isa import Builder
from bpfkit.obj.spec import ProgramSpec
from bpfkit.uapi.enums import Helper, ProgType, XdpAction
from bpfkit.uapi.insn import Reg
from bpfkit.vm import TestRunResult, Vm
from bpfkit.vm.context import XDP_PACKET_HEADROOM

from .conftest import run_both

R = Reg
ETH_IP_UDP = (bytes(6) + bytes([2] * 6) + b"\x08\x00"
              + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
              + b"\x30\x39\x00\x35\x00\x08\x00\x00")


def test_raw_memory_runs_get_pointer_and_length() -> None:
    b = Builder().ldx(1, R.R0, R.R1, 1).add(R.R0, R.R2).st(1, R.R1, 0, 0x7F).exit()
    r = run_both(b, b"\x01\x02\x03")
    assert r.retval == 2 + 3
    assert r.data_out == b"\x7f\x02\x03"
    assert run_both(Builder().mov(R.R0, R.R1).add(R.R0, R.R2).exit()).retval == 0


def test_test_run_result_shape() -> None:
    prog = Vm().load(Builder().mov(R.R0, 1).exit().build())
    r = prog.test_run(repeat=50)
    assert isinstance(r, TestRunResult) and r.retval == 1 and r.duration_ns > 0 and r.instructions == 2


def _xdp_parser() -> Builder:
    """XDP_PASS for IPv4/UDP to port 53 (bounds-checked like a verified program), else XDP_DROP."""
    b = Builder()
    b.ldx(4, R.R2, R.R1, 0).ldx(4, R.R3, R.R1, 4)
    b.mov(R.R4, R.R2).add(R.R4, 42).jmp("jgt", R.R4, R.R3, "drop")
    b.ldx(2, R.R5, R.R2, 12).jmp("jne", R.R5, 0x0008, "drop")
    b.ldx(1, R.R5, R.R2, 23).jmp("jne", R.R5, 17, "drop")
    b.ldx(2, R.R5, R.R2, 36).endian(R.R5, 16, "be").jmp("jne", R.R5, 53, "drop")
    b.mov(R.R0, int(XdpAction.PASS)).exit()
    b.label("drop").mov(R.R0, int(XdpAction.DROP)).exit()
    return b


def test_xdp_context_fields_load_as_packet_pointers() -> None:
    r = run_both(_xdp_parser(), ETH_IP_UDP, prog_type=ProgType.XDP)
    assert r.retval == XdpAction.PASS
    assert r.data_out == ETH_IP_UDP
    data, data_end, meta, *_ = struct.unpack("<6I", r.ctx_out)
    assert (data, data_end, meta) == (0, len(ETH_IP_UDP), 0)
    assert run_both(_xdp_parser(), ETH_IP_UDP[:40], prog_type=ProgType.XDP).retval == XdpAction.DROP


def test_xdp_reading_past_data_end_faults() -> None:
    # Opt-out (verify=False): unchecked packet reads on purpose: the run-time check is under test.
    b = Builder().ldx(4, R.R2, R.R1, 0).ldx(1, R.R0, R.R2, 100).exit()
    with pytest.raises(VmMemoryError, match="packet"):
        run_both(b, bytes(60), prog_type=ProgType.XDP, verify=False)


def test_xdp_data_pointer_differences_and_read_only_ctx() -> None:
    b = Builder().ldx(4, R.R2, R.R1, 0).ldx(4, R.R3, R.R1, 4).mov(R.R0, R.R3).sub(R.R0, R.R2).exit()
    assert run_both(b, bytes(77), prog_type=ProgType.XDP).retval == 77
    # Opt-out (verify=False): a ctx write is under test (the verifier refuses it first).
    with pytest.raises(VmMemoryError, match="read-only"):
        run_both(Builder().mov(R.R0, 0).stx(4, R.R1, 0, R.R0).exit(), bytes(20), prog_type=ProgType.XDP,
                 verify=False)


def test_xdp_adjust_head_moves_data_into_the_headroom() -> None:
    b = Builder().mov(R.R6, R.R1).mov(R.R2, -4).call(Helper.XDP_ADJUST_HEAD)
    b.jmp("jne", R.R0, 0, "bad")
    b.ldx(4, R.R2, R.R6, 0).ldx(4, R.R3, R.R6, 4).mov(R.R4, R.R2).add(R.R4, 4)
    b.jmp("jgt", R.R4, R.R3, "bad").st(4, R.R2, 0, 0x44434241)
    b.mov(R.R0, 2).exit().label("bad").mov(R.R0, 0).exit()
    r = run_both(b, bytes(20), prog_type=ProgType.XDP)
    assert r.retval == 2 and r.data_out == b"ABCD" + bytes(20)
    # too far: more than the headroom
    b2 = Builder().mov(R.R2, -(XDP_PACKET_HEADROOM + 1)).call(Helper.XDP_ADJUST_HEAD).exit()
    assert run_both(b2, bytes(20), prog_type=ProgType.XDP).retval == (-22) & ((1 << 64) - 1)


def test_xdp_adjust_tail_and_meta() -> None:
    b = Builder().mov(R.R6, R.R1).mov(R.R2, -10).call(Helper.XDP_ADJUST_TAIL)
    b.mov(R.R1, R.R6).mov(R.R2, -8).call(Helper.XDP_ADJUST_META)
    b.ldx(4, R.R2, R.R6, 8).ldx(4, R.R3, R.R6, 0).mov(R.R0, R.R3).sub(R.R0, R.R2).exit()
    r = run_both(b, bytes(range(30)), prog_type=ProgType.XDP)
    assert r.retval == 8
    assert len(r.data_out) == 8 + 20 and r.data_out[8:] == bytes(range(20))


def test_tc_skb_context() -> None:
    b = Builder().ldx(4, R.R2, R.R1, 76).ldx(4, R.R3, R.R1, 80).mov(R.R0, R.R3).sub(R.R0, R.R2)
    b.ldx(4, R.R4, R.R1, 16).alu("lsh", R.R4, 32).add(R.R0, R.R4)  # protocol in the high half
    b.st(4, R.R1, 8, 0x1234)  # mark is writable
    b.exit()
    r = run_both(b, ETH_IP_UDP, prog_type=ProgType.SCHED_CLS)
    # Opt-out (verify=False): ctx writes and a short packet fail at run time on purpose.
    assert r.retval == (0x0008 << 32) | len(ETH_IP_UDP)
    assert struct.unpack_from("<I", r.ctx_out, 8)[0] == 0x1234
    assert struct.unpack_from("<I", r.ctx_out, 0)[0] == len(ETH_IP_UDP)
    with pytest.raises(VmMemoryError, match="read-only"):
        run_both(Builder().st(4, R.R1, 0, 1).mov(R.R0, 0).exit(), ETH_IP_UDP, prog_type=ProgType.SCHED_CLS,
                 verify=False)
    with pytest.raises(VmError, match="Ethernet"):
        run_both(Builder().mov(R.R0, 0).exit(), b"short", prog_type=ProgType.SCHED_CLS, verify=False)


def test_socket_filter_sees_the_network_header_and_ld_abs() -> None:
    b = Builder().mov(R.R6, R.R1).ld_abs(1, 9).mov(R.R7, R.R0)  # IPv4 protocol (offset from L3)
    b.ld_abs(4, 16).mov(R.R8, R.R0)  # destination address, big-endian
    b.mov(R.R1, 0).ld_ind(2, R.R1, 20)  # UDP source port through LD_IND
    b.alu("lsh", R.R7, 48).alu("lsh", R.R0, 32).add(R.R0, R.R7).add(R.R0, R.R8).exit()
    r = run_both(b, ETH_IP_UDP, prog_type=ProgType.SOCKET_FILTER)
    assert r.retval == (17 << 48) | (12345 << 32) | 0x0A000002
    assert r.data_out == ETH_IP_UDP


def test_ld_abs_out_of_range_returns_zero_from_the_program() -> None:
    b = Builder().mov(R.R6, R.R1).mov(R.R0, 5).ld_abs(4, 1000).mov(R.R0, 9).exit()
    assert run_both(b, ETH_IP_UDP, prog_type=ProgType.SOCKET_FILTER).retval == 0
    b2 = Builder().mov(R.R6, R.R1).ld_abs(4, -4).mov(R.R0, 9).exit()
    assert run_both(b2, ETH_IP_UDP, prog_type=ProgType.SOCKET_FILTER).retval == 0


def test_tracing_context_is_read_only_bytes() -> None:
    # Opt-out (verify=False): a write to the read-only context is under test (the verifier refuses it first).
    b = Builder().ldx(8, R.R0, R.R1, 8).exit()
    r = run_both(b, ctx=struct.pack("<QQ", 1, 0xABCDEF), prog_type=ProgType.RAW_TRACEPOINT, verify=False)
    assert r.retval == 0xABCDEF
    with pytest.raises(VmMemoryError):
        run_both(Builder().st(8, R.R1, 0, 1).exit(), ctx=bytes(16), prog_type=ProgType.TRACEPOINT,
                 verify=False)


def test_program_spec_and_engines() -> None:
    spec = ProgramSpec.of(ProgType.XDP, _xdp_parser().build(), name="parser")
    with Vm() as vm:
        prog = vm.load(spec)
        assert prog.name == "parser" and prog.prog_type is ProgType.XDP
        assert prog.test_run(ETH_IP_UDP, engine="interp").retval == XdpAction.PASS
        assert "def F_0" in prog.python_source
        with pytest.raises(VmError, match="engine"):
            prog.test_run(ETH_IP_UDP, engine="turbo")  # type: ignore[arg-type]


def test_repeat_keeps_packet_changes_like_the_kernel() -> None:
    b = Builder().ldx(1, R.R0, R.R1, 0).add(R.R0, 1).stx(1, R.R1, 0, R.R0).exit()
    r = Vm().load(b.build()).test_run(b"\x00", repeat=5)
    assert r.retval == 5 and r.data_out == b"\x05"
