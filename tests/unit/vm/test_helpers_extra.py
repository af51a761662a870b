"""skb writes and checksum helpers, spin locks, stack ids and formatted output in the VM (the kernel
comparison of the checksum helpers is tests/kernel/test_vm_maps_vs_kernel.py)."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError, VmHelperError
from bpfkit.isa import Builder
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm
from bpfkit.vm.helpers_extra import (
    csum_add,
    csum_fold,
    csum_partial,
    csum_replace2,
    csum_replace4,
)

R = Reg
U64 = (1 << 64) - 1


def neg(code: int) -> int:
    return -code & U64


def checksum(words: bytes) -> int:
    """RFC 1071 over big-endian 16-bit words: the value a header's checksum field must hold."""
    s = sum(struct.unpack(f"!{len(words) // 2}H", words))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return int(~s & 0xFFFF)


def _header(words: list[int]) -> bytes:
    body = struct.pack("!9H", *words)
    return body + struct.pack("!H", checksum(body + b"\0\0"))


def _valid(hdr: bytes) -> bool:
    """The header's words, checksum included, sum to ones' complement zero (0xffff, or 0 = -0)."""
    return bool(sum(struct.unpack(f"!{len(hdr) // 2}H", hdr)) % 0xFFFF == 0)


def _le(data: bytes | bytearray) -> int:
    return int.from_bytes(data, "little")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=9, max_size=9), st.integers(0, 7),
       st.integers(0, 0xFFFFFFFF))
def test_csum_replace4_gives_a_valid_header(words: list[int], at: int, new: int) -> None:
    """Oracle: recomputing the checksum of the rewritten header from scratch (RFC 1071)."""
    hdr = bytearray(_header(words))
    old = hdr[2 * at:2 * at + 4]
    hdr[2 * at:2 * at + 4] = new.to_bytes(4, "little")
    hdr[18:20] = csum_replace4(_le(hdr[18:20]), _le(old), new).to_bytes(2, "little")
    assert _valid(bytes(hdr))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=9, max_size=9), st.integers(0, 8),
       st.integers(0, 0xFFFF))
def test_csum_replace2_gives_a_valid_header(words: list[int], at: int, new: int) -> None:
    hdr = bytearray(_header(words))
    old = _le(hdr[2 * at:2 * at + 2])
    hdr[2 * at:2 * at + 2] = new.to_bytes(2, "little")
    hdr[18:20] = csum_replace2(_le(hdr[18:20]), old, new).to_bytes(2, "little")
    assert _valid(bytes(hdr))


def test_ones_complement_basics() -> None:
    assert csum_add(0xFFFFFFFF, 1) == 1  # end-around carry
    assert csum_fold(0) == 0xFFFF
    assert csum_partial(b"\x01\x02\x03", 0) == 0x030201  # a partial word is zero-padded


# -- programs -------------------------------------------------------------------------------------
def _frame() -> bytes:
    ip = _header([0x4500, 28, 1, 0, 0x4011, 0, 0x0A00, 1, 0x0A00])[:16]
    ip = bytes(ip) + bytes([10, 0, 0, 2])
    ip = ip[:10] + struct.pack("!H", checksum(ip[:10] + b"\0\0" + ip[12:])) + ip[12:]
    return b"\x02" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", 1, 2, 8, 0x1111)


def _run(b: Builder, engine: str, data: bytes, prog_type: ProgType = ProgType.SCHED_CLS,
         vm: Vm | None = None, verify: bool = True) -> tuple[int, bytes]:
    vm = vm or Vm()
    r = vm.load(b.build(), prog_type=prog_type, relocations=b.relocations,
                maps={m.name: m for m in vm.maps}, verify=verify).test_run(data, engine=engine)  # type: ignore[arg-type]
    return r.retval, r.data_out


def test_store_bytes_and_l3_fix_keep_the_header_valid(engine: str) -> None:
    data = _frame()
    b = Builder().mov(R.R6, R.R1)
    b.mov(R.R1, R.R6).mov(R.R2, 30).mov(R.R3, R.R10).add(R.R3, -8).mov(R.R4, 4).call(Helper.SKB_LOAD_BYTES)
    b.st(4, R.R10, -4, 0x0302A8C0).mov(R.R1, R.R6).mov(R.R2, 30).mov(R.R3, R.R10).add(R.R3, -4)
    b.mov(R.R4, 4).mov(R.R5, 0).call(Helper.SKB_STORE_BYTES).mov(R.R7, R.R0)
    b.mov(R.R1, R.R6).mov(R.R2, 24).ldx(4, R.R3, R.R10, -8).ldx(4, R.R4, R.R10, -4).mov(R.R5, 4)
    b.call(Helper.L3_CSUM_REPLACE).add(R.R0, R.R7).exit()
    rc, out = _run(b, engine, data)
    assert rc == 0 and out[30:34] == bytes([192, 168, 2, 3])
    assert checksum(out[14:34]) == 0 and out[24:26] != data[24:26]


@pytest.mark.parametrize(("offset", "length", "flags", "rc"), [
    (0, 4, 0, 0), (38, 4, 3, 0), (40, 4, 0, neg(errno.EFAULT)), (-1, 1, 0, neg(errno.EFAULT)),
    (0, 4, 4, neg(errno.EINVAL)),
])
def test_store_bytes_errnos(offset: int, length: int, flags: int, rc: int, engine: str) -> None:
    # Bad offsets and flags on purpose: they are run-time errnos, which the verifier lets through.
    b = Builder().st(4, R.R10, -4, 0x11223344).mov(R.R2, offset).mov(R.R3, R.R10).add(R.R3, -4)
    b.mov(R.R4, length).mov(R.R5, flags).call(Helper.SKB_STORE_BYTES).exit()
    got, out = _run(b, engine, _frame())
    assert got == rc
    if rc == 0:
        assert out[offset:offset + 4] == bytes([0x44, 0x33, 0x22, 0x11])


def test_l4_mangled_zero(engine: str) -> None:
    """BPF_F_MARK_MANGLED_0: a zero UDP checksum stays zero (no checksum), a computed zero becomes
    0xffff."""
    data = bytearray(_frame())
    data[40:42] = b"\0\0"
    b = Builder().mov(R.R2, 40).mov(R.R3, 0).mov(R.R4, 0x1234).mov(R.R5, 0x20 | 2)
    b.call(Helper.L4_CSUM_REPLACE).exit()
    assert _run(b, engine, bytes(data)) == (0, bytes(data))
    data[40:42] = (~0x1234 & 0xFFFF).to_bytes(2, "little")
    b = Builder().mov(R.R2, 40).mov(R.R3, 0x1234).mov(R.R4, 0).mov(R.R5, 0x20 | 2)
    b.call(Helper.L4_CSUM_REPLACE).exit()
    rc, out = _run(b, engine, bytes(data))
    assert rc == 0 and out[40:42] == b"\xff\xff"


def test_checksum_helpers_refuse_xdp() -> None:
    # Opt-out (verify=False): the refusal at run time is under test (the kernel and bpfkit's verifier
    # refuse the program at load: bpf_l3_csum_replace is for tc programs).
    b = Builder().mov(R.R2, 24).mov(R.R3, 0).mov(R.R4, 0).mov(R.R5, 2).call(Helper.L3_CSUM_REPLACE).exit()
    with pytest.raises(VmHelperError, match="needs an skb"):
        _run(b, "interp", _frame(), ProgType.XDP, verify=False)


def test_csum_diff_in_a_program(engine: str) -> None:
    b = Builder().st(4, R.R10, -4, 0x01020304).st(4, R.R10, -8, 0x01020305)
    b.mov(R.R1, R.R10).add(R.R1, -4).mov(R.R2, 4).mov(R.R3, R.R10).add(R.R3, -8).mov(R.R4, 4)
    b.mov(R.R5, 0).call(Helper.CSUM_DIFF).exit()
    assert _run(b, engine, _frame())[0] == 1  # new - old, in ones' complement
    b = Builder().mov(R.R1, 0).mov(R.R2, 0).mov(R.R3, 0).mov(R.R4, 0).mov(R.R5, 77).call(Helper.CSUM_DIFF)
    assert _run(b.exit(), engine, _frame())[0] == 77


# -- spin locks -----------------------------------------------------------------------------------
def _locked_add(unlock: bool = True, twice: bool = False) -> Builder:
    b = Builder().st(4, R.R10, -4, 0).ld_map(R.R1, "v").mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").mov(R.R6, R.R0)
    b.mov(R.R1, R.R6).call(Helper.SPIN_LOCK)
    if twice:
        b.mov(R.R1, R.R6).call(Helper.SPIN_LOCK)
    b.ldx(8, R.R1, R.R6, 8).add(R.R1, 1).stx(8, R.R6, 8, R.R1).ldx(4, R.R7, R.R6, 0)
    if unlock:
        b.mov(R.R1, R.R6).call(Helper.SPIN_UNLOCK)
    b.mov(R.R0, R.R7).exit().label("out").mov(R.R0, 99).exit()
    return b


def test_spin_lock_is_held_inside_the_section(engine: str) -> None:
    # Opt-out (verify=False): the lock's place comes from the map value's BTF, which VM maps do not
    # carry: the kernel refuses bpf_spin_lock on such a map ("has to have BTF"), and so does bpfkit's
    # verifier. The helper's run-time semantics are under test.
    vm = Vm()
    v = vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 1, name="v"))
    assert _run(_locked_add(), engine, _frame(), vm=vm, verify=False)[0] == 1  # the lock word reads 1 inside
    assert v.lookup(b"\0" * 4) == bytes(8) + (1).to_bytes(8, "little")  # released, counter bumped
    with pytest.raises(VmHelperError, match="already held"):
        _run(_locked_add(twice=True), engine, _frame(), vm=vm, verify=False)


def test_spin_unlock_of_a_free_lock_and_locks_outside_maps(engine: str) -> None:
    # Opt-out (verify=False): misuse of locks is under test (the kernel refuses it at load).
    b = Builder().mov(R.R1, R.R10).add(R.R1, -8).st(4, R.R10, -8, 0).call(Helper.SPIN_LOCK).exit()
    with pytest.raises(VmHelperError, match="not a struct bpf_spin_lock in a map value"):
        _run(b, engine, _frame(), verify=False)
    vm = Vm()
    vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 1, name="v"))
    b = Builder().st(4, R.R10, -4, 0).ld_map(R.R1, "v").mov(R.R2, R.R10).add(R.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "out").mov(R.R1, R.R0).call(Helper.SPIN_UNLOCK)
    b.label("out").exit()
    with pytest.raises(VmHelperError, match="not held"):
        _run(b, engine, _frame(), vm=vm, verify=False)


# -- stack ids ------------------------------------------------------------------------------------
def _stackid(flags: int) -> Builder:
    return Builder().ld_map(R.R2, "st").mov(R.R3, flags).call(Helper.GET_STACKID).exit()


def _stackid_run(b: Builder, engine: str, vm: Vm) -> int:
    """Run a raw tracepoint program (stack ids are for tracing programs); its r0."""
    prog = vm.load(b.build(), prog_type=ProgType.RAW_TRACEPOINT, relocations=b.relocations,
                   maps={m.name: m for m in vm.maps})
    return prog.test_run(ctx=bytes(8), engine=engine).retval  # type: ignore[arg-type]


def test_get_stackid(engine: str) -> None:
    vm = Vm()
    st_map = vm.create_map(MapSpec(MapType.STACK_TRACE, 4, 8 * 8, 16, name="st"))
    sid = _stackid_run(_stackid(0), engine, vm)
    assert 0 <= sid < 16 and st_map.lookup(sid.to_bytes(4, "little")) is not None
    assert _stackid_run(_stackid(0), engine, vm) == sid  # the same stack, the same id
    # no user stack
    assert _stackid_run(_stackid(1 << 8), engine, vm) == neg(errno.EFAULT)
    # skipped every frame
    assert _stackid_run(_stackid(1), engine, vm) == neg(errno.EFAULT)
    vm.stack_ips = [0x1000, 0x2000, 0x3000]  # type: ignore[attr-defined]
    sid2 = _stackid_run(_stackid(1), engine, vm)
    assert st_map.lookup(sid2.to_bytes(4, "little"))[:16] == struct.pack("<QQ", 0x2000, 0x3000)


@pytest.mark.parametrize(("size", "flags", "rc", "words"), [
    (32, 0, 24, [0x1000, 0x2000, 0x3000, 0]), (16, 1, 16, [0x2000, 0x3000]), (32, 3, 0, [0, 0, 0, 0]),
    (32, 4, neg(errno.EFAULT), [0, 0, 0, 0]), (12, 0, neg(errno.EINVAL), None),
    (32, 1 << 12, neg(errno.EINVAL), [0, 0, 0, 0]), (32, 1 << 8, neg(errno.EFAULT), [0, 0, 0, 0]),
])
def test_get_stack(size: int, flags: int, rc: int, words: list[int] | None, engine: str) -> None:
    # Opt-out (verify=False): the test exports the buffer with bpf_skb_store_bytes from a tc program,
    # where the kernel (and bpfkit's verifier) refuse bpf_get_stack (a tracing helper); the verdicts
    # for tracing programs are in tests/data/verifier/cases/ (get_stack*).
    vm = Vm()
    vm.stack_ips = (0x1000, 0x2000, 0x3000)  # type: ignore[attr-defined]
    b = Builder().mov(R.R6, R.R1)
    for off in range(8, 33, 8):
        b.st(8, R.R10, -off, -1)  # poison: the helper must overwrite or zero
    b.mov(R.R1, R.R6).mov(R.R2, R.R10).add(R.R2, -32).mov(R.R3, size).mov(R.R4, flags)
    b.call(Helper.GET_STACK).mov(R.R7, R.R0)
    b.mov(R.R1, R.R6).mov(R.R2, 14).mov(R.R3, R.R10).add(R.R3, -32).mov(R.R4, 32).mov(R.R5, 0)
    b.call(Helper.SKB_STORE_BYTES).mov(R.R0, R.R7).exit()
    got, out = _run(b, engine, _frame() + bytes(32), vm=vm, verify=False)
    assert got == rc
    if words is not None:
        assert list(struct.unpack_from(f"<{len(words)}Q", out, 14)) == words


# -- formatted output -----------------------------------------------------------------------------
def _fmt_prog(fmt: bytes, args: list[int], out_size: int, helper: Helper) -> Builder:
    b = Builder()
    padded = fmt + bytes(-len(fmt) % 8)
    base = -len(padded)
    for i in range(0, len(padded), 8):
        b.ld_imm64(R.R1, int.from_bytes(padded[i:i + 8], "little")).stx(8, R.R10, base + i, R.R1)
    abase = base - 8 * len(args)
    for i, a in enumerate(args):
        b.ld_imm64(R.R1, a).stx(8, R.R10, abase + 8 * i, R.R1)
    obase = abase - 64
    if helper == Helper.SNPRINTF:
        b.mov(R.R1, R.R10).add(R.R1, obase).mov(R.R2, out_size).mov(R.R3, R.R10).add(R.R3, base)
        b.mov(R.R4, R.R10).add(R.R4, abase).mov(R.R5, 8 * len(args)).call(helper).mov(R.R6, R.R0)
        b.ldx(8, R.R7, R.R10, obase).mov(R.R0, R.R6).exit()  # first 8 bytes written kept in r7
    else:
        b.mov(R.R1, R.R10).add(R.R1, base).mov(R.R2, len(fmt) + 1).mov(R.R3, R.R10).add(R.R3, abase)
        b.mov(R.R4, 8 * len(args)).call(helper).exit()
    return b


def test_snprintf(engine: str) -> None:
    # Opt-out (verify=False): the format string is on the stack (the kernel wants a read-only map
    # value): helper semantics under test.
    vm = Vm()
    b = _fmt_prog(b"%d-%x-%llu", [U64, 255, 1 << 40], 64, Helper.SNPRINTF)
    prog = vm.load(b.build(), prog_type=ProgType.SCHED_CLS, verify=False)
    assert prog.test_run(_frame(), engine=engine).retval == len(f"-1-ff-{1 << 40}") + 1  # type: ignore[arg-type]
    bad = _fmt_prog(b"%d", [1] * 13, 64, Helper.SNPRINTF)
    bad_prog = vm.load(bad.build(), prog_type=ProgType.SCHED_CLS, verify=False)
    assert bad_prog.test_run(_frame()).retval == neg(errno.EINVAL)


def test_trace_vprintk(engine: str) -> None:
    vm = Vm()
    b = _fmt_prog(b"pid %d comm %c", [42, ord("x")], 0, Helper.TRACE_VPRINTK)
    rc = vm.load(b.build(), prog_type=ProgType.SCHED_CLS).test_run(
        _frame(), engine=engine).retval  # type: ignore[arg-type]
    assert vm.trace_output == ["pid 42 comm x"] and rc == len("pid 42 comm x") + 1


@pytest.mark.parametrize("helper", [Helper.GET_CURRENT_TASK, Helper.GET_CURRENT_TASK_BTF, Helper.GET_FUNC_IP])
def test_kernel_only_helpers_are_refused(helper: Helper) -> None:
    """No kernel task_struct, no kernel function: the VM refuses the call rather than fake a pointer."""
    with pytest.raises(BpfkitError, match=f"unknown helper function {int(helper)}"):
        Vm().load(Builder().call(helper).exit().build()).test_run()


def test_printf_strings_and_addresses(engine: str) -> None:
    """Expected text as the kernel gives it (tests/kernel/test_vm_maps_vs_kernel.py compares live):
    an unreadable %s is empty, %pI4/%pi4/%pI6/%pi6 read the address pointed to."""
    fmt = b"%s|%pI4|%pi4|%pI6|%pi6|[%s]|%-6s|\0"
    fmt += bytes(-len(fmt) % 8)
    b = Builder()
    for i in range(0, len(fmt), 8):
        b.ld_imm64(R.R1, int.from_bytes(fmt[i:i + 8], "little")).stx(8, R.R10, -48 + i, R.R1)
    b.ld_imm64(R.R1, int.from_bytes(b"hi\0\0" + bytes([10, 0, 12, 255]), "little")).stx(8, R.R10, -56, R.R1)
    b.ld_imm64(R.R1, int.from_bytes(bytes.fromhex("20010db8000000ff"), "little")).stx(8, R.R10, -72, R.R1)
    b.ld_imm64(R.R1, 1 << 56).stx(8, R.R10, -64, R.R1)
    for i, off in enumerate([-56, -52, -52, -72, -72, 0, -56]):
        if off:
            b.mov(R.R1, R.R10).add(R.R1, off)
        else:
            b.mov(R.R1, 8)
        b.stx(8, R.R10, -128 + 8 * i, R.R1)
    b.mov(R.R1, R.R10).add(R.R1, -48).mov(R.R2, len(fmt)).mov(R.R3, R.R10).add(R.R3, -128).mov(R.R4, 56)
    b.call(Helper.TRACE_VPRINTK).exit()
    vm = Vm()
    vm.load(b.build(), prog_type=ProgType.SCHED_CLS).test_run(_frame(), engine=engine)  # type: ignore[arg-type]
    assert vm.trace_output == ["hi|10.0.12.255|010.000.012.255|2001:0db8:0000:00ff:0000:0000:0000:0001|"
                               "20010db8000000ff0000000000000001|[]|hi    |"]
