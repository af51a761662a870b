"""Program commands against the fake: BPF_PROG_LOAD packing, the verifier-log policy, test_run, info."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import struct
from collections.abc import Iterator

import pytest

from bpfkit.errors import AsmError, KernelError, VerifierError
from bpfkit.isa import Instruction, encode
from bpfkit.kernel.fake import FakeSyscalls, read_user, write_user
from bpfkit.kernel.programs import Program, enable_stats
from bpfkit.kernel.syscall import override
from bpfkit.obj.spec import ProgramSpec
from bpfkit.uapi.attr import BpfProgInfo, ObjInfoAttr, ProgLoadAttr, ProgTestRunAttr
from bpfkit.uapi.enums import AttachType, Cmd, ProgType

RET_42 = bytes.fromhex("b70000002a000000" "9500000000000000")

# Offsets in the PROG_LOAD member of union bpf_attr (include/uapi/linux/bpf.h).
LOAD = struct.Struct("<IIQQIIQII16sIIIIQIIQIIIIQQIIiI")


@pytest.fixture
def fake() -> Iterator[FakeSyscalls]:
    f = FakeSyscalls()
    with override(f):
        yield f
    assert not f.open_fds


def test_load_packs_prog_load_attr(fake: FakeSyscalls) -> None:
    seen: dict[str, bytes] = {}

    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        seen["insns"] = read_user(a.insns, a.insn_cnt * 8)
        seen["license"] = ctypes.string_at(a.license)
        return fake.new_fd()

    fake.on(Cmd.PROG_LOAD, load)
    with Program.load(RET_42, ProgType.CGROUP_SOCK_ADDR, name="connect4", license="Dual BSD/GPL",
                      expected_attach_type=AttachType.CGROUP_INET4_CONNECT, flags=1, kern_version=0x60100,
                      attach_btf_id=9, ifindex=3) as p:
        assert p.type == ProgType.CGROUP_SOCK_ADDR and p.name == "connect4" and p.verifier_log is None
    raw = fake.bpf_calls(Cmd.PROG_LOAD)[0].attr
    assert len(raw) == ctypes.sizeof(ProgLoadAttr) == 168
    f = LOAD.unpack_from(raw)
    assert f[0:2] == (ProgType.CGROUP_SOCK_ADDR, 2)  # prog_type, insn_cnt
    assert f[4:7] == (0, 0, 0)  # log_level, log_size, log_buf: no log on the first try
    assert f[7:9] == (0x60100, 1)  # kern_version, prog_flags
    assert f[9] == b"connect4".ljust(16, b"\0")
    assert f[10:12] == (3, AttachType.CGROUP_INET4_CONNECT)  # ifindex, expected_attach_type
    assert struct.unpack_from("<I", raw, 108) == (9,)  # attach_btf_id
    assert seen == {"insns": RET_42, "license": b"Dual BSD/GPL"}


def test_load_accepts_instructions_and_specs(fake: FakeSyscalls) -> None:
    code: dict[int, bytes] = {}

    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        fd = fake.new_fd()
        code[fd] = read_user(a.insns, a.insn_cnt * 8)
        return fd

    fake.on(Cmd.PROG_LOAD, load)
    insns = [Instruction(0xB7, dst=0, imm=42), Instruction(0x95)]
    with Program.load(insns, ProgType.XDP) as a, \
            Program.load(ProgramSpec.of(ProgType.XDP, insns, name="spec")) as b:
        assert code[a.fileno()] == code[b.fileno()] == encode(insns) == RET_42
        assert b.name == "spec"


def test_bad_bytecode_refused_before_the_kernel(fake: FakeSyscalls) -> None:
    with pytest.raises(AsmError, match="multiple of 8"):
        Program.load(b"\x95\0\0", ProgType.XDP)
    with pytest.raises(TypeError, match="prog_type is needed"):
        Program.load(RET_42)
    assert not fake.bpf_calls()


def _verifier(log: str, err: int = errno.EACCES, *, true_size: bool = True):  # type: ignore[no-untyped-def]
    """A PROG_LOAD handler: refuses without a log; with a log, writes (as much as fits of) `log`."""
    sizes: list[int] = []

    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        sizes.append(a.log_size)
        if not a.log_level:
            return -err
        data = log.encode() + b"\0"
        if true_size:
            a.log_true_size = len(data)
        if len(data) > a.log_size:
            # the rotating log keeps the end (kernel/bpf/log.c)
            write_user(a.log_buf, data[-a.log_size:-1] + b"\0" if a.log_size > 1 else b"\0")
            return -errno.ENOSPC
        write_user(a.log_buf, data)
        return -err

    return load, sizes


def test_failed_load_is_retried_with_a_log(fake: FakeSyscalls) -> None:
    log = "".join(f"{i}: (b7) r{i % 10} = {i}\n" for i in range(20)) + "R0 !read_ok\nprocessed 21 insns\n"
    handler, sizes = _verifier(log)
    fake.on(Cmd.PROG_LOAD, handler)
    with pytest.raises(VerifierError) as ei:
        Program.load(RET_42, ProgType.XDP, name="bad")
    e = ei.value
    assert e.errno == errno.EACCES and e.log == log and not e.truncated
    assert "R0 !read_ok" in str(e) and "(17 lines omitted)" in str(e) and "'bad'" in str(e)
    calls = fake.bpf_calls(Cmd.PROG_LOAD)
    assert len(calls) == 2
    assert LOAD.unpack_from(calls[1].attr)[4:6] == (1, 65536)  # log_level 1, default buffer
    assert sizes == [0, 65536]


def test_refusal_without_log_is_a_plain_kernel_error(fake: FakeSyscalls) -> None:
    handler, _ = _verifier("", errno.EINVAL)
    fake.on(Cmd.PROG_LOAD, handler)
    with pytest.raises(KernelError) as ei:
        Program.load(RET_42, ProgType.XDP, name="x")
    assert type(ei.value) is KernelError
    assert "expected_attach_type" in str(ei.value) and "program 'x'" in str(ei.value)


def test_eperm_is_not_retried(fake: FakeSyscalls) -> None:
    fake.fail(Cmd.PROG_LOAD, errno.EPERM)
    with pytest.raises(KernelError) as ei:
        Program.load(RET_42, ProgType.TRACING)
    assert ei.value.errno == errno.EPERM and not isinstance(ei.value, VerifierError)
    assert len(fake.bpf_calls(Cmd.PROG_LOAD)) == 1


def test_log_grows_to_log_true_size(fake: FakeSyscalls) -> None:
    log = "x" * 5000 + "\nreason\n"
    handler, sizes = _verifier(log)
    fake.on(Cmd.PROG_LOAD, handler)
    with pytest.raises(VerifierError) as ei:
        Program.load(RET_42, ProgType.XDP, log_level=2, log_size=200)
    assert sizes == [200, len(log) + 1]
    assert ei.value.log == log


def test_log_grows_4x_without_log_true_size(fake: FakeSyscalls) -> None:
    handler, sizes = _verifier("y" * 3000 + "\n", true_size=False)
    fake.on(Cmd.PROG_LOAD, handler)
    with pytest.raises(VerifierError):
        Program.load(RET_42, ProgType.XDP, log_level=1, log_size=256)
    assert sizes == [256, 1024, 4096]


def test_partial_log_kept_when_the_cap_is_reached(fake: FakeSyscalls) -> None:
    log = "".join(f"line {i}\n" for i in range(100))
    state = {"n": 0}

    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        state["n"] += 1
        if not a.log_level:
            return fake.new_fd()  # the program itself is fine
        data = log.encode()
        write_user(a.log_buf, data[-(a.log_size - 1):] + b"\0")
        a.log_true_size = len(data) + 1
        return -errno.ENOSPC

    fake.on(Cmd.PROG_LOAD, load)
    with Program.load(RET_42, ProgType.XDP, log_level=2, log_size=128, max_log_size=256) as p:
        assert p.log_truncated
        assert p.verifier_log is not None and p.verifier_log.endswith("line 99\n")
        assert len(p.verifier_log) == 255
    assert state["n"] == 3  # 128, then the 256 cap, then without a log


def test_successful_logged_load_keeps_log(fake: FakeSyscalls) -> None:
    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        write_user(a.log_buf, b"processed 2 insns\n\0")
        return fake.new_fd()

    fake.on(Cmd.PROG_LOAD, load)
    with Program.load(RET_42, ProgType.XDP, log_level=4) as p:
        assert p.verifier_log == "processed 2 insns\n" and not p.log_truncated
    assert LOAD.unpack_from(fake.bpf_calls(Cmd.PROG_LOAD)[0].attr)[4] == 4


def test_test_run_packs_and_grows_data_out(fake: FakeSyscalls) -> None:
    sizes: list[int] = []

    def run(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgTestRunAttr)
        sizes.append(a.data_size_out)
        data = read_user(a.data_in, a.data_size_in)
        out = data * 300  # grows past the default buffer
        a.retval, a.duration = 7, 123
        if a.ctx_out:
            write_user(a.ctx_out, read_user(a.ctx_in, a.ctx_size_in)[::-1])
        if len(out) > a.data_size_out:
            a.data_size_out = len(out)
            return -errno.ENOSPC
        write_user(a.data_out, out)
        a.data_size_out = len(out)
        return 0

    fake.on(Cmd.PROG_TEST_RUN, run)
    with Program.load(RET_42, ProgType.SCHED_CLS) as p:
        r = p.test_run(b"ab", ctx_in=b"\x01\x02\x03\x04", repeat=5, flags=1, cpu=1)
        assert (r.retval, r.duration_ns, r.data_out, r.ctx_out) == (7, 123, b"ab" * 300, b"\x04\x03\x02\x01")
        raw = fake.bpf_calls(Cmd.PROG_TEST_RUN)[0].attr
        fd, _retval, size_in, size_out = struct.unpack_from("<4I", raw)
        assert (fd, size_in, size_out) == (p.fileno(), 2, 2 + 512)
        assert struct.unpack_from("<II", raw, 32) == (5, 0)  # repeat, duration
        assert struct.unpack_from("<II", raw, 40) == (4, 4)  # ctx sizes
        assert struct.unpack_from("<III", raw, 64) == (1, 1, 0)  # flags, cpu, batch_size
    assert sizes == [514, 600]


def test_info_reads_map_ids_in_a_second_call(fake: FakeSyscalls) -> None:
    def info(a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr)
        req = BpfProgInfo.from_buffer_copy(read_user(a.info, ctypes.sizeof(BpfProgInfo)))
        out = BpfProgInfo(type=ProgType.XDP, id=5, nr_map_ids=2, name=b"prog", gpl_compatible=1,
                          run_cnt=3)
        out.tag[:] = list(hashlib.sha1(b"x").digest()[:8])
        if req.map_ids:
            write_user(req.map_ids, struct.pack("=II", 11, 12))
            out.map_ids = req.map_ids
        write_user(a.info, bytes(out))
        return 0

    fake.on(Cmd.OBJ_GET_INFO_BY_FD, info)
    with Program.load(RET_42, ProgType.XDP) as p:
        i = p.info()
        assert (i.id, i.type, i.name, i.map_ids, i.gpl_compatible, i.run_cnt) == (5, ProgType.XDP, "prog",
                                                                                  (11, 12), True, 3)
        assert i.tag == hashlib.sha1(b"x").digest()[:8].hex()
        assert p.id == 5
    assert len(fake.bpf_calls(Cmd.OBJ_GET_INFO_BY_FD)) == 4  # info(): counts, then ids; again for .id


def test_enable_stats(fake: FakeSyscalls) -> None:
    with enable_stats() as fd:
        assert fd.what == "bpf stats"
    assert fake.bpf_calls(Cmd.ENABLE_STATS)[0].attr == struct.pack("<I", 0)


def test_btf_func_line_info_and_fd_array_packing(fake: FakeSyscalls) -> None:
    seen: dict[str, bytes] = {}

    def load(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgLoadAttr)
        seen["func"] = read_user(a.func_info, a.func_info_cnt * a.func_info_rec_size)
        seen["line"] = read_user(a.line_info, a.line_info_cnt * a.line_info_rec_size)
        seen["fds"] = read_user(a.fd_array, 8)
        return fake.new_fd()

    fake.on(Cmd.PROG_LOAD, load)
    func_info = struct.pack("<II", 0, 7)  # one bpf_func_info: insn_off 0, type_id 7
    line_info = struct.pack("<IIII", 0, 1, 2, 3 << 10 | 5) * 2  # two bpf_line_info records
    with Program.load(RET_42, ProgType.XDP, btf=33, func_info=func_info, line_info=line_info,
                      fd_array=[44, 45], attach_prog=46):
        pass
    f = LOAD.unpack_from(fake.bpf_calls(Cmd.PROG_LOAD)[0].attr)
    assert f[12] == 33  # prog_btf_fd
    assert (f[13], f[15]) == (8, 1)  # func_info_rec_size, func_info_cnt
    assert (f[16], f[18]) == (16, 2)  # line_info_rec_size, line_info_cnt
    assert f[20] == 46  # attach_prog_fd
    assert seen == {"func": func_info, "line": line_info, "fds": struct.pack("=ii", 44, 45)}


def test_next_id_and_fd_by_id(fake: FakeSyscalls) -> None:
    from bpfkit.kernel import objects
    from bpfkit.uapi.attr import GetIdAttr

    def next_id(a: ctypes.Structure) -> int:
        assert isinstance(a, GetIdAttr)
        if a.start_id >= 3:
            return -errno.ENOENT
        a.next_id = a.start_id + 1
        return 0

    fake.on(Cmd.PROG_GET_NEXT_ID, next_id)
    ids, cur = [], 0
    while (n := objects.next_id(Cmd.PROG_GET_NEXT_ID, cur)) is not None:
        ids.append(n)
        cur = n
    assert ids == [1, 2, 3]
    with objects.fd_by_id(Cmd.PROG_GET_FD_BY_ID, 3, "program") as fd:
        assert fd.what == "program id 3"
    assert fake.bpf_calls(Cmd.PROG_GET_FD_BY_ID)[0].attr == struct.pack("<IIIi", 3, 0, 0, 0)
