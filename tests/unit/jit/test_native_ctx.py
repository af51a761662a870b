"""Context loads the verifier proved run without a bounds check (`bpfkit.vm.jit.native_ctx`).

A verified program's loads of plain context fields compile to a plain `mov` (counted in
`CompiledCode.unchecked`), its loads of the packet's data and data_end pointers to a read of the run
block's packet window; data_meta and `__sk_buff.len`, which the VM computes on load, stay checked.
Results are the interpreter's; a tracing context shorter than a load gets the checked code and faults
like the interpreter.
"""

from __future__ import annotations

import pytest

from bpfkit.errors import VmMemoryError
from bpfkit.isa import assemble
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import Vm
from bpfkit.vm.jit import CompiledCode, jit_supported, program_for, runtime_for
from bpfkit.vm.machine import VmProgram

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")

XDP = """
    r2 = *(u32 *)(r1 + 12)
    r3 = *(u32 *)(r1 + 16)
    r4 = *(u32 *)(r1 + 12)
    r5 = *(u32 *)(r1 + 0)
    r6 = *(u32 *)(r1 + 4)
    r0 = r2
    r0 <<= 8
    r0 += r3
    r0 += r4
    r5 += 14
    if r5 > r6 goto out
    r0 += 1000
out:
    exit
"""
SKB = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 8)
    r4 = *(u32 *)(r1 + 16)
    r5 = *(u8 *)(r1 + 48)
    r0 = r2
    r0 += r3
    r0 += r4
    r0 += r5
    exit
"""
KPROBE = """
    r2 = *(u64 *)(r1 + 112)
    r3 = *(u64 *)(r1 + 104)
    r0 = r2
    r0 ^= r3
    exit
"""
XDP_CTX = bytes(12) + (7).to_bytes(4, "little") + (3).to_bytes(4, "little") + (5).to_bytes(4, "little")
SKB_CTX = bytes(8) + (1000).to_bytes(4, "little") + bytes(36) + b"\x09" + bytes(143)
PT_REGS = bytes(range(168))


def _run(text: str, prog_type: ProgType, data: bytes, ctx: bytes, *, verify: bool,
         engine: str) -> tuple[int, CompiledCode | None, VmProgram]:
    vm = Vm()
    prog = vm.load(assemble(text), prog_type=prog_type, verify=verify)
    retval = prog.test_run(data, ctx=ctx, engine=engine).retval  # type: ignore[arg-type]
    code = program_for(prog.loaded, runtime_for(vm.mem)).compiled if engine == "jit" else None
    return retval, code, prog


CASES = [("xdp", XDP, ProgType.XDP, bytes(60), XDP_CTX, 0),  # data, data_end from the run block
         ("skb", SKB, ProgType.SCHED_CLS, bytes(60), SKB_CTX, 1),  # len stays checked
         ("kprobe", KPROBE, ProgType.KPROBE, b"", PT_REGS, 0)]


@pytest.mark.parametrize(("name", "text", "prog_type", "data", "ctx", "left"), CASES,
                         ids=[c[0] for c in CASES])
def test_plain_context_loads_run_unchecked_with_the_interpreters_results(
        name: str, text: str, prog_type: ProgType, data: bytes, ctx: bytes, left: int) -> None:
    expected, _, verified = _run(text, prog_type, data, ctx, verify=True, engine="interp")
    assert verified.verification is not None and verified.verification.ctx_loads
    plain, plain_code, _ = _run(text, prog_type, data, ctx, verify=False, engine="jit")
    fast, code, _ = _run(text, prog_type, data, ctx, verify=True, engine="jit")
    assert plain == fast == expected
    assert plain_code is not None and code is not None
    loads = sum(1 for line in text.splitlines() if "*(u" in line)
    assert (plain_code.checked, plain_code.unchecked) == (loads, 0)
    assert (code.checked, code.unchecked) == (left, loads - left)


def test_a_context_shorter_than_a_load_keeps_the_check_and_faults_like_the_interpreter() -> None:
    vm = Vm()
    prog = vm.load(assemble(KPROBE), prog_type=ProgType.KPROBE, verify=True)
    errors = []
    for engine in ("interp", "jit"):
        with pytest.raises(VmMemoryError) as err:
            prog.test_run(ctx=PT_REGS[:110], engine=engine)  # type: ignore[arg-type]
        errors.append((err.value.pc, str(err.value)))
    assert errors[0] == errors[1] and errors[0][0] == 0
    short = program_for(prog.loaded, runtime_for(vm.mem)).compiled
    assert short.checked == 2
    full = prog.test_run(ctx=PT_REGS, engine="jit").retval
    assert full == prog.test_run(ctx=PT_REGS, engine="interp").retval
    assert program_for(prog.loaded, runtime_for(vm.mem)).compiled.checked == 0


def test_the_verifier_lists_context_loads_only() -> None:
    vm = Vm()
    prog = vm.load(assemble("""
        r2 = *(u32 *)(r1 + 12)
        *(u64 *)(r10 - 8) = r2
        r3 = *(u64 *)(r10 - 8)
        r0 = r3
        exit
    """), prog_type=ProgType.XDP, verify=True)
    assert prog.verification is not None
    assert prog.verification.ctx_loads == frozenset({0})
    assert 0 not in prog.verification.proven_safe


ADJUST = """
    r6 = r1
    r2 = 4
    call bpf_xdp_adjust_head
    if r0 != 0 goto out
    r2 = *(u32 *)(r6 + 0)
    r3 = *(u32 *)(r6 + 4)
    r4 = r2
    r4 += 2
    if r4 > r3 goto out
    r0 = *(u8 *)(r2 + 0)
    r5 = *(u8 *)(r2 + 1)
    r0 <<= 8
    r0 |= r5
    exit
out:
    r0 = 0xffff
    exit
"""


def test_packet_pointers_follow_the_packet_after_a_helper_moved_it() -> None:
    results = []
    for data in (bytes(range(60)), bytes(range(5)), bytes(range(6))):
        outs = []
        for verify, engine in ((True, "interp"), (False, "jit"), (True, "jit")):
            retval, code, _ = _run(ADJUST, ProgType.XDP, data, b"", verify=verify, engine=engine)
            outs.append(retval)
            if code is not None and verify:
                assert code.checked == 0  # the packet pointers and the packet bytes
        assert outs == [outs[0]] * 3
        results.append(outs[0])
    assert results == [0x0405, 0xFFFF, 0xFFFF]
