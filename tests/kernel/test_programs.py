"""Loading and running programs in the running kernel: test_run, verifier errors and logs, info, pins."""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.errors import KernelError, VerifierError
from bpfkit.isa import Instruction, assemble
from bpfkit.kernel import features
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program, enable_stats
from bpfkit.obj.spec import MapSpec, ProgramSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType, XdpAction

pytestmark = pytest.mark.kernel

RET_42 = bytes.fromhex("b70000002a000000" "9500000000000000")  # r0 = 42; exit
EXIT_ONLY = bytes.fromhex("9500000000000000")  # exit without setting r0: refused


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    d = Path("/sys/fs/bpf") / f"bpfkit-prog-{os.getpid()}"
    d.mkdir()
    try:
        yield d
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


def test_load_raw_bytes_and_test_run() -> None:
    with Program.load(RET_42, ProgType.SOCKET_FILTER, name="ret42") as p:
        r = p.test_run(b"\0" * 64, repeat=10)
        assert r.retval == 42 and r.duration_ns >= 0
        assert p.verifier_log is None


def test_load_instructions_from_isa() -> None:
    prog = [Instruction(0xB7, dst=0, imm=7), Instruction(0x07, dst=0, imm=5), Instruction(0x95)]
    with Program.load(prog, ProgType.XDP) as p:
        assert p.test_run(b"\0" * 64).retval == 12


def test_load_assembled_text() -> None:
    with Program.load(assemble("r0 = 3\nr0 <<= 2\nexit"), ProgType.XDP) as p:
        assert p.test_run(b"\0" * 32).retval == 12


def test_xdp_pass_returns_the_packet() -> None:
    code = insn(0xB7, 0, imm=XdpAction.PASS) + insn(0x95)
    packet = bytes(range(60))
    with Program.load(code, ProgType.XDP) as p:
        r = p.test_run(packet)
        assert r.retval == XdpAction.PASS and r.data_out == packet


def test_data_out_grows_with_the_packet() -> None:
    """bpf_xdp_adjust_tail(ctx, 100) grows the packet past a small output buffer."""
    code = (insn(0xB7, 2, imm=100) + insn(0x85, imm=65)  # r2 = 100; call bpf_xdp_adjust_tail
            + insn(0xB7, 0, imm=XdpAction.PASS) + insn(0x95))
    packet = bytes(range(64))
    with Program.load(code, ProgType.XDP) as p:
        r = p.test_run(packet, data_out_size=len(packet))
        assert len(r.data_out) == len(packet) + 100
        assert r.data_out[:64] == packet


def test_ctx_in_and_out() -> None:
    """An skb program given a __sk_buff context: the kernel reads ctx_in and writes ctx_out."""
    # struct __sk_buff: mark at offset 8, priority at 32 (include/uapi/linux/bpf.h)
    code = insn(0x61, 0, 1, off=8) + insn(0x95)  # r0 = *(u32 *)(r1 + 8) -> skb->mark
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 8, 77)
    with Program.load(code, ProgType.SCHED_CLS) as p:
        r = p.test_run(bytes(64), ctx_in=bytes(ctx))
        assert r.retval == 77
        assert len(r.ctx_out) == 192 and struct.unpack_from("<I", r.ctx_out, 8) == (77,)


def test_verifier_error_message_and_log() -> None:
    with pytest.raises(VerifierError) as ei:
        Program.load(EXIT_ONLY, ProgType.XDP, name="noret")
    e = ei.value
    assert e.errno == errno.EACCES
    assert "R0 !read_ok" in e.log
    assert "R0 !read_ok" in str(e) and "program 'noret' refused by the verifier" in str(e)
    assert e.syscall == "bpf(BPF_PROG_LOAD)"


def test_verifier_error_omits_lines_of_long_logs() -> None:
    body = b"".join(insn(0xB7, 1, imm=i) for i in range(30))  # 30 logged instructions, then bad exit
    with pytest.raises(VerifierError) as ei:
        Program.load(body + EXIT_ONLY, ProgType.XDP, log_level=2)
    lines = [ln for ln in ei.value.log.splitlines() if ln.strip()]
    assert len(lines) > 30
    assert f"({len(lines) - VerifierError.TAIL_LINES} lines omitted)" in str(ei.value)


def test_log_grows_from_a_tiny_buffer() -> None:
    body = b"".join(insn(0xB7, 1, imm=i) for i in range(200)) + RET_42
    with Program.load(body, ProgType.XDP, log_level=2, log_size=128) as small, \
            Program.load(body, ProgType.XDP, log_level=2, log_size=1 << 20) as big:
        assert small.verifier_log == big.verifier_log
        assert small.verifier_log is not None and len(small.verifier_log) > 4096
        assert not small.log_truncated


def test_partial_log_when_capped() -> None:
    body = b"".join(insn(0xB7, 1, imm=i) for i in range(200)) + RET_42
    with Program.load(body, ProgType.XDP, log_level=2, log_size=128, max_log_size=1024) as p:
        assert p.log_truncated
        assert p.verifier_log is not None and 0 < len(p.verifier_log) < 1024
        assert p.test_run(b"\0" * 64).retval == 42  # the program itself loaded
    with pytest.raises(VerifierError) as ei:
        Program.load(body[:-16] + EXIT_ONLY, ProgType.XDP, log_level=2, log_size=128, max_log_size=1024)
    assert ei.value.truncated and "R0 !read_ok" in ei.value.log  # the end of the log is kept


def test_unknown_program_type_is_a_kernel_error() -> None:
    with pytest.raises(KernelError) as ei:
        Program.load(RET_42, 999, name="x")
    assert ei.value.errno == errno.EINVAL and not isinstance(ei.value, VerifierError)
    assert "prog_type" in str(ei.value)


def test_info_tag_and_dumps() -> None:
    with Program.load(RET_42, ProgType.SOCKET_FILTER, name="tagged") as p:
        info = p.info()
        assert info.type == ProgType.SOCKET_FILTER and info.name == "tagged" and info.id > 0
        # the tag starts the hash of the instructions (kernel/bpf/core.c, bpf_prog_calc_tag): SHA-1 until
        # Linux 6.17, SHA-256 since
        digests = (hashlib.sha1(RET_42).hexdigest()[:16], hashlib.sha256(RET_42).hexdigest()[:16])
        assert info.tag == p.tag and info.tag in digests
        assert info.map_ids == () and info.xlated_len == 16 and info.gpl_compatible
        assert info.verified_insns == 2
        assert p.xlated() == RET_42
        jit_on = Path("/proc/sys/net/core/bpf_jit_enable").read_text().strip() != "0"
        assert (len(p.jited()) > 0) == jit_on


def test_map_ids_of_a_program_using_maps() -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1)) as a, Map.create(MapSpec(MapType.HASH, 4, 4, 1)) as b:
        # r1 = map_a (BPF_PSEUDO_MAP_FD); r1 = map_b; r0 = 0; exit
        code = (insn(0x18, 1, 1, imm=a.fileno()) + insn(0) + insn(0x18, 1, 1, imm=b.fileno()) + insn(0)
                + insn(0xB7, 0, imm=0) + insn(0x95))
        with Program.load(code, ProgType.XDP) as p:
            assert sorted(p.info().map_ids) == sorted([a.id, b.id])


def test_gpl_only_helper_needs_gpl_license() -> None:
    # bpf_ktime_get_ns is not GPL-only; bpf_trace_printk is.
    code = insn(0xBF, 1, 10) + insn(0x07, 1, imm=-8) + insn(0x7A, 10, off=-8, imm=0) \
        + insn(0xB7, 2, imm=8) + insn(0x85, imm=6) + insn(0xB7, 0) + insn(0x95)
    with Program.load(code, ProgType.XDP, license="GPL") as p:
        assert p.info().gpl_compatible
    with pytest.raises(VerifierError, match="GPL"):
        Program.load(code, ProgType.XDP, license="Proprietary")


def test_run_statistics() -> None:
    with Program.load(RET_42, ProgType.XDP) as p:
        with enable_stats():
            p.test_run(b"\0" * 64, repeat=10)
        info = p.info()
        assert info.run_cnt == 10 and info.run_time_ns > 0


def test_expected_attach_type() -> None:
    spec = ProgramSpec(ProgType.CGROUP_SOCK_ADDR, RET_42[:0] + insn(0xB7, 0, imm=1) + insn(0x95),
                       name="connect4", expected_attach_type=AttachType.CGROUP_INET4_CONNECT)
    with Program.load(spec) as p:
        assert p.expected_attach_type == AttachType.CGROUP_INET4_CONNECT
    with pytest.raises(KernelError):
        Program.load(spec, expected_attach_type=AttachType.CGROUP_INET_INGRESS)


def test_pin_from_pinned_from_id(pin_dir: Path) -> None:
    path = pin_dir / "prog"
    with Program.load(RET_42, ProgType.XDP, name="pinned") as p:
        p.pin(path)
        pid, ptag = p.id, p.tag
    with Program.from_pinned(path) as q:
        assert q.id == pid and q.name == "pinned" and q.type == ProgType.XDP
        assert q.test_run(b"\0" * 64).retval == 42
    with Program.from_id(pid) as r:
        assert r.tag == ptag


def test_tracing_programs_follow_the_probe() -> None:
    if features.probe_tracing_programs():
        pytest.skip("this kernel loads tracing programs; the refusal path is not testable here")
    with pytest.raises(features.NotSupportedError, match="BPF_PROG_TYPE_TRACING") as ei:
        features.require_tracing_programs()
    assert ei.value.min_kernel == "5.5"
