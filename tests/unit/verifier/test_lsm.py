"""BPF LSM programs (BPF_PROG_TYPE_LSM, BPF_LSM_MAC) against a small hand-made target BTF, so the rules
(context typed from bpf_lsm_<hook>, return value ranges, license, hooks, helpers) are tested without
the running kernel's; tests/data/verifier/cases/btf_typed.py checks them against the real one. No
LSM program is ever loaded in a kernel (project rule)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from bpfkit._records import replace
from bpfkit.btf import load_btf, marshal
from bpfkit.btf.types import Func, FuncProto, Int, Member, Param, Ptr, Struct
from bpfkit.errors import VerificationError, VmError, VmMemoryError
from bpfkit.isa import assemble
from bpfkit.obj import MapSpec, ProgramSpec
from bpfkit.obj.load import load_object
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import AttachType, MapType, ProgType
from bpfkit.uapi.insn import PseudoSrc
from bpfkit.vm import Vm, VmProgram
from bpfkit.vm.machine import needs_target_btf
from bpfkit.vm.verifier import VerifierResult, lsm, verify, verify_program
from bpfkit.vm.verifier.lsm import MAX_ERRNO

# ids: 1 int, 2 unsigned int, 3 struct file, 4 struct file *, 5 int(struct file *), 6..9 int hooks,
# 10 void(struct file *), 11..12 void hooks, 13 int(struct file *, int), 14 file_permission
TYPES = [
    Int("int", 4, IntEncoding.SIGNED),
    Int("unsigned int", 4),
    Struct("file", 16, (Member("f_lock", 1, 0), Member("f_mode", 2, 32), Member("f_next", 4, 64))),
    Ptr(3),
    FuncProto(1, (Param("file", 4),)),
    Func("bpf_lsm_file_open", 5),
    Func("bpf_lsm_inode_xattr_skipcap", 5),
    Func("bpf_lsm_vm_enough_memory", 5),
    Func("bpf_lsm_verify_prog", 5),
    FuncProto(0, (Param("file", 4),)),
    Func("bpf_lsm_file_free_security", 10),
    Func("bpf_lsm_task_free", 10),
    FuncProto(1, (Param("file", 4), Param("mask", 1))),
    Func("bpf_lsm_file_permission", 13),
]
BTF = load_btf(marshal(TYPES))  # type: ignore[arg-type]


def run(text: str, hook: str = "file_open", **kw: Any) -> VerifierResult:
    kw.setdefault("expected_attach_type", AttachType.LSM_MAC)
    kw.setdefault("btf", BTF)
    return verify(assemble(text), prog_type=ProgType.LSM, attach_to=hook, **kw)


def refusal(text: str, hook: str = "file_open", **kw: Any) -> str:
    with pytest.raises(VerificationError) as info:
        run(text, hook, **kw)
    report = info.value.report
    assert report.hint
    return report.message


@pytest.mark.parametrize("ret", [0, -1, -13, -MAX_ERRNO])
def test_int_hook_returns_zero_or_an_errno(ret: int) -> None:
    run(f"r0 = {ret}\nexit")


@pytest.mark.parametrize("ret", [1, 2, -MAX_ERRNO - 1, 0x7FFFFFFF])
def test_int_hook_refuses_other_values(ret: int) -> None:
    msg = refusal(f"r0 = {ret}\nexit")
    assert f"smin={ret} smax={ret} should have been in [-4095, 0]" in msg


def test_return_value_is_checked_on_its_low_32_bits() -> None:
    run("r0 = 0x100000000 ll\nexit")  # low 32 bits: 0
    assert "should have been in" in refusal("r0 = 0x100000001 ll\nexit")


def test_unbounded_return_is_refused_and_a_bounded_one_accepted() -> None:
    assert "unknown scalar value should have been in [-4095, 0]" in refusal(
        "call bpf_get_prandom_u32\nexit")
    run("call bpf_get_prandom_u32\nif r0 == 0 goto +1\nr0 = -1\nexit")


def test_bool_hook_returns_zero_or_one() -> None:
    run("r0 = 1\nexit", "inode_xattr_skipcap")
    assert "should have been in [0, 1]" in refusal("r0 = -1\nexit", "inode_xattr_skipcap")


def test_void_hook_ignores_the_return_value() -> None:
    run("r0 = 12345\nexit", "file_free_security")
    run("exit", "file_free_security")  # r0 need not even be set
    assert "R0 !read_ok" in refusal("exit")  # an int hook's must


def test_pointer_return_is_refused() -> None:
    assert "not a known value" in refusal("r0 = r10\nexit")


def test_arguments_are_typed_from_the_hook_prototype() -> None:
    # ctx[0] is struct file *: trusted at file_open, read without a NULL check.
    run("r2 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 4)\nr0 = 0\nexit")
    run("r2 = *(u64 *)(r1 + 0)\nr2 = *(u64 *)(r2 + 8)\nr0 = 0\nexit")
    assert "only read is supported" in refusal("r2 = *(u64 *)(r1 + 0)\nr3 = 0\n*(u32 *)(r2 + 4) = r3\n"
                                               "r0 = 0\nexit")
    assert "3-th argument" in refusal("r0 = *(u64 *)(r1 + 16)\nr0 = 0\nexit")
    assert "invalid bpf_context access" in refusal("r2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit")
    assert "not multiple of 8" in refusal("r0 = *(u32 *)(r1 + 4)\nr0 = 0\nexit")


def test_a_second_argument_is_a_number() -> None:
    run("r0 = *(u64 *)(r1 + 8)\nr0 &= 0\nexit", "file_permission")
    assert "should have been in" in refusal("r0 = *(u64 *)(r1 + 8)\nexit", "file_permission")


def test_return_value_so_far_is_in_the_hook_range() -> None:
    """The slot after the arguments holds the hook's return value so far: passing it on is allowed,
    anything derived from it is checked like any number."""
    run("r0 = *(u64 *)(r1 + 8)\nexit")
    run("r0 = *(u64 *)(r1 + 16)\nexit", "file_permission")
    assert "smin=-4094 smax=1" in refusal("r0 = *(u64 *)(r1 + 8)\nr0 += 1\nexit")
    # A narrower read keeps only its bytes' range: -1 read as a u32 is 0xffffffff.
    assert "should have been in" in refusal("r0 = *(u32 *)(r1 + 8)\nexit")
    run("r0 = *(u64 *)(r1 + 8)\nr0 = 5\nexit", "file_free_security")  # void: a number, any value


def test_hook_arguments_are_trusted_except_at_untrusted_hooks() -> None:
    """Pointer arguments are trusted (bpf_lsm_is_trusted) except at the hooks of untrusted_lsm_hooks
    (objects being set up or torn down, such as task_free's): there they are plain pointers, still
    readable (the kernel makes loads through them safe at run time)."""
    text = "r2 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 4)\nr0 = 0\nexit"
    assert "R2_w=trusted_ptr_file()" in run(text, log_level=2).log
    log = run(text, "task_free", log_level=2).log
    assert "R2_w=ptr_file()" in log and "trusted_ptr" not in log


def test_license_must_be_gpl_compatible() -> None:
    assert refusal("r0 = 0\nexit", license="Proprietary") == "LSM programs must have a GPL compatible license"
    run("r0 = 0\nexit", license="Dual BSD/GPL")


def test_hook_must_exist_and_be_attachable() -> None:
    assert "is not an LSM hook" in refusal("r0 = 0\nexit", "no_such_hook")
    assert "disabled hook bpf_lsm_vm_enough_memory" in refusal("r0 = 0\nexit", "vm_enough_memory")
    assert "wrong type name bpf_lsm_verify_prog" in refusal("r0 = 0\nexit", "verify_prog")
    assert "names no LSM hook" in refusal("r0 = 0\nexit", "")
    run("r0 = 0\nexit", "bpf_lsm_file_open")  # the kernel function's name works too


def test_attach_type_must_be_lsm_mac() -> None:
    assert "BPF_LSM_MAC" in refusal("r0 = 0\nexit", expected_attach_type=None)
    assert "LSM_CGROUP" in refusal("r0 = 0\nexit", expected_attach_type=AttachType.LSM_CGROUP)


def test_needs_the_target_btf() -> None:
    msg = refusal("r0 = 0\nexit", btf=None)
    assert msg == "an LSM program's context needs the kernel's BTF"
    assert needs_target_btf(ProgType.LSM, assemble("r0 = 0\nexit"))


@pytest.mark.parametrize("helper", ["bpf_get_current_pid_tgid", "bpf_get_current_task", "bpf_ktime_get_ns",
                                    "bpf_get_smp_processor_id"])
def test_tracing_helpers_are_available(helper: str) -> None:
    run(f"call {helper}\nr0 = 0\nexit")


@pytest.mark.parametrize("helper", ["bpf_skb_load_bytes", "bpf_xdp_adjust_head", "bpf_seq_printf",
                                    "bpf_get_local_storage"])
def test_other_helpers_are_refused(helper: str) -> None:
    assert f"cannot use helper {helper}#" in refusal(f"call {helper}\nr0 = 0\nexit")


def test_gpl_only_helper_check_comes_after_the_license_check() -> None:
    # The license refusal is the program-level one, before any helper is looked at.
    msg = refusal("call bpf_get_current_task\nr0 = 0\nexit", license="MIT")
    assert msg == "LSM programs must have a GPL compatible license"


RETVAL_INDEX = """
    r6 = *(u64 *)(r1 + 8)
    r6 += 4095
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:0]
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r0 += r6
    r7 = *(u8 *)(r0 + 0)
    out:
    r0 = 0
    exit
"""
"""Indexes a 4096-byte map value with the hook's return value so far plus 4095: in bounds for every
value the kernel passes ([-4095, 0]), not for what a VM caller may put in the context."""


MAP_ACCESS = 11
"""The slot of RETVAL_INDEX's map value load (the map LD_IMM64 takes two)."""
RETVAL = lsm.CtxRange(8, 8, -MAX_ERRNO, 0, "the return value so far of LSM hook file_open")


def test_proof_from_the_return_value_so_far_is_kept_with_the_range_it_assumes() -> None:
    """The map value load is proven safe from the return value's range, and the result says which
    context value in which range the proof assumes (`ctx_ranges`), for the VM to enforce."""
    maps = {0: MapSpec(MapType.ARRAY, 4, 4096, 1, name="arr")}
    result = run(RETVAL_INDEX, maps=maps)
    assert MAP_ACCESS in result.proven_safe
    assert result.ctx_ranges == (RETVAL,)
    # Not read: same range (the kernel guarantees it whatever the program reads).
    assert run(RETVAL_INDEX.replace("(r1 + 8)", "(r1 + 0)\nr6 = 0"), maps=maps).ctx_ranges == (RETVAL,)


def test_ctx_ranges_follow_the_hook() -> None:
    """The slot is the one past the hook's last argument; a bool hook's range is [0, 1]; a void hook
    (its return value ignored) and other program types assume nothing."""
    (second,) = run("r0 = 0\nexit", "file_permission").ctx_ranges
    assert (second.offset, second.size, second.lo, second.hi) == (16, 8, -MAX_ERRNO, 0)
    assert "file_permission" in second.what
    (boolean,) = run("r0 = 0\nexit", "inode_xattr_skipcap").ctx_ranges
    assert (boolean.offset, boolean.lo, boolean.hi) == (8, 0, 1)
    assert run("r0 = 0\nexit", "file_free_security").ctx_ranges == ()
    assert verify(assemble("r0 = 0\nexit"), prog_type=ProgType.XDP).ctx_ranges == ()


def _retval_program(engine: str) -> VmProgram:
    vm = Vm(engine=engine)  # type: ignore[arg-type]
    arr = vm.create_map(MapSpec(MapType.ARRAY, 4, 4096, 1, name="arr"))
    insns = [replace(i, imm=arr.fd) if i.src == PseudoSrc.MAP_FD and i.opcode == 0x18 else i
             for i in assemble(RETVAL_INDEX)]
    spec = ProgramSpec.of(ProgType.LSM, insns, expected_attach_type=AttachType.LSM_MAC, attach_to="file_open")
    prog = vm.load(spec, btf=BTF)
    assert prog.verified
    return prog


@pytest.mark.parametrize("engine", ["fast", "interp"])
def test_vm_refuses_a_context_outside_the_hook_range(engine: str) -> None:
    """The VM runs the access proven from the return value's range unchecked (fast engine), so it
    refuses, before running, a context the kernel would never pass: an out-of-range value never
    reaches the access. The kernel's values run."""
    prog = _retval_program(engine)
    assert prog.verification is not None and MAP_ACCESS in prog.verification.proven_safe
    assert [prog.test_run(b"", struct.pack("<Qq", 0, r)).retval for r in (0, -1, -MAX_ERRNO)] == [0, 0, 0]
    for bad in (10**9, 1, -MAX_ERRNO - 1, -(1 << 63), (1 << 32) - 1):
        for start in (prog.test_run, prog.debug):
            with pytest.raises(VmError) as info:
                start(b"", struct.pack("<Qq", 0, bad))
            assert type(info.value) is VmError  # refused up front, not a fault of the run
            message = str(info.value)
            assert f"hold {bad}, outside [-4095, 0]" in message
            assert "ctx bytes 8..16 (u64 slot 1: the return value so far of LSM hook file_open)" in message
    # A context too short to hold the value: reading it faults (context accesses are always checked).
    with pytest.raises(VmMemoryError, match="pc 0"):
        prog.test_run(b"", bytes(8))


@pytest.mark.parametrize("engine", ["fast", "interp"])
def test_vm_refuses_the_context_at_a_tail_call_into_an_lsm_program(engine: str) -> None:
    """A tail call into an LSM program verified for a hook with fewer arguments: the caller's context
    holds another value in the callee's return-value slot, refused before the callee runs."""
    prog = _retval_program(engine)
    vm = prog.vm
    jump = vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 1, name="jump"))
    prog.set_tail_call(jump, 0)
    caller_insns = [replace(i, imm=jump.fd) if i.src == PseudoSrc.MAP_FD and i.opcode == 0x18 else i
                    for i in assemble("r2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = -7\nexit")]
    caller = vm.load(ProgramSpec.of(ProgType.LSM, caller_insns, expected_attach_type=AttachType.LSM_MAC,
                                    attach_to="file_permission"), btf=BTF)
    # mask 0 is in range for the callee, which runs (returns 0; the caller, had it not, -7).
    assert caller.test_run(b"", struct.pack("<QQq", 0, 0, -1)).retval == 0
    with pytest.raises(VmError, match=r"bpf_tail_call: .*hold 4, outside \[-4095, 0\]"):
        caller.test_run(b"", struct.pack("<QQq", 0, 4, -1))  # mask 4 is the callee's slot 1


def test_lsm_fixture_against_hand_built_btf() -> None:
    """tests/data/obj/lsm.o (SEC("lsm/file_open"), GPL, counts in .bss) on every machine: accepted with
    a target BTF that has bpf_lsm_file_open, refused without one and with a non-GPL license."""
    obj = load_object(Path(__file__).resolve().parents[2] / "data" / "obj" / "lsm.o")
    prog = obj.programs["allow_file_open"]
    assert (prog.type, prog.expected_attach_type, prog.attach_to) == (ProgType.LSM, AttachType.LSM_MAC,
                                                                     "file_open")
    assert verify_program(prog, obj.maps, btf=BTF).processed_insns >= 3
    with pytest.raises(VerificationError, match="needs the kernel's BTF"):
        verify_program(prog, obj.maps)
    with pytest.raises(VerificationError, match="GPL compatible license"):
        verify_program(replace(prog, license="Proprietary"), obj.maps, btf=BTF)
