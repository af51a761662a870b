"""Accept/refuse cases for bpfkit's verifier, each with the reason it must be decided that way.

Each `Case` is a small program in the llvm assembly dialect. `map[id:N]` loads map N of the case's
`maps` (the kernel test rewrites N into the real map's fd). `accept` is bpfkit's required verdict,
`error` a fragment of the refusal message. The kernel test loads every case in the running kernel:
the kernel must refuse every case bpfkit refuses, except those listed in `disagreements.py` (where
bpfkit is stricter than the kernel, with the reason).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from bpfkit._records import replace
from bpfkit.btf import Func, Spec, Typedef, load_btf
from bpfkit.isa import LD_IMM64, Instruction, assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType
from bpfkit.uapi.insn import InsnClass, JmpOp, PseudoCall, PseudoSrc
from bpfkit.vm.verifier import VerifierResult, verify

VMLINUX = "/sys/kernel/btf/vmlinux"
CALL = InsnClass.JMP | JmpOp.CALL
XDP = ProgType.XDP
TC = ProgType.SCHED_CLS
SOCK = ProgType.SOCKET_FILTER
KPROBE = ProgType.KPROBE
TP = ProgType.TRACEPOINT
RAW_TP = ProgType.RAW_TRACEPOINT
CG_SKB = ProgType.CGROUP_SKB


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    text: str
    accept: bool
    reason: str
    prog_type: ProgType | None = XDP
    maps: tuple[MapSpec, ...] = ()
    error: str = ""
    attach: AttachType | None = None
    license: str = "GPL"
    mem_size: int = 0
    kfuncs: tuple[str, ...] = ()
    """`call kfunc(N)` calls kernel function kfuncs[N] (its id in the running kernel's BTF)."""
    attach_to: str = ""
    """TRACING programs: the attach target (`task` for an iterator over tasks)."""


HASH = MapSpec(MapType.HASH, 8, 16, 16, name="hash")
ARRAY = MapSpec(MapType.ARRAY, 4, 64, 4, name="array")
GLOBAL = MapSpec(MapType.ARRAY, 4, 32, 1, name="global")
RINGBUF = MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")
PROG_ARRAY = MapSpec(MapType.PROG_ARRAY, 4, 4, 4, name="progs")
PERF = MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 2, name="events")
QUEUE = MapSpec(MapType.QUEUE, 0, 8, 16, name="queue")
STACK = MapSpec(MapType.STACK, 0, 8, 16, name="stack")
LPM = MapSpec(MapType.LPM_TRIE, 8, 8, 16, flags=1, name="lpm")
"""An LPM trie over IPv4: key = u32 prefix length + 4 address bytes (BPF_F_NO_PREALLOC)."""
BLOOM = MapSpec(MapType.BLOOM_FILTER, 0, 8, 16, name="bloom")
CG_STORAGE = MapSpec(MapType.CGROUP_STORAGE, 16, 8, 0, name="cs")
CG_STORAGE_PERCPU = MapSpec(MapType.PERCPU_CGROUP_STORAGE, 16, 8, 0, name="pcs")
STACKS = MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 16, name="stacks")
RDONLY = MapSpec(MapType.ARRAY, 4, 8, 1, flags=0x80, name="ro")
INNER = MapSpec(MapType.HASH, 4, 8, 4, name="inner")
OUTER = MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner_map=INNER)
OUTER_HASH = MapSpec(MapType.HASH_OF_MAPS, 4, 4, 2, name="outer_h", inner_map=INNER)
_STR = (bytes(4), b"bpfkit\0\0abcdefgh")
RODATA = MapSpec(MapType.ARRAY, 4, 16, 1, flags=0x80, name="rodata", contents=(_STR,), freeze=True)
"""A frozen read-only map (.rodata): "bpfkit" at 0, then "abcdefgh" without a NUL at 8."""
_FMT = (bytes(4), b"n=%d\0\0\0\0%p\0\0\0\0\0\0%d %d\0".ljust(32, b"\0"))
FMT = MapSpec(MapType.ARRAY, 4, 32, 1, flags=0x80, name="fmt", contents=(_FMT,), freeze=True)
"""Formats in a frozen read-only map: "n=%d" at 0, "%p" at 8, "%d %d" at 16."""
_FMT2 = b"%s|%pI4|%pi4|[%s]\0".ljust(24, b"\0") + b"%sx\0".ljust(8, b"\0") + b"%px\0".ljust(8, b"\0") \
    + b"%.2d\0".ljust(8, b"\0") + b"%pI6 %c\0" + b"n=%d\0".ljust(8, b"\0")
FMT2 = MapSpec(MapType.ARRAY, 4, 64, 1, flags=0x80, name="fmt2", contents=((bytes(4), _FMT2),), freeze=True)
"""More formats: "%s|%pI4|%pi4|[%s]" at 0, "%sx" at 24, "%px" at 32, "%.2d" at 40, "%pI6 %c" at 48,
"n=%d" at 56."""
RO_UNFROZEN = MapSpec(MapType.ARRAY, 4, 16, 1, flags=0x80, name="ro_unfrozen", contents=(_STR,))

RCU = ("bpf_rcu_read_lock", "bpf_rcu_read_unlock")


def ITER(name: str, text: str, accept: bool, reason: str, error: str = "") -> Case:
    """A case run as an iterator over tasks (SEC("iter/task")): its context is struct bpf_iter__task."""
    return Case(name, text, accept, reason, ProgType.TRACING, error=error, attach=AttachType.TRACE_ITER,
                attach_to="task")


def TRACING(name: str, text: str, accept: bool, reason: str, attach: AttachType, attach_to: str,
            error: str = "") -> Case:
    """A BTF-typed tracing case (fentry/fexit on a kernel function, tp_btf on a tracepoint)."""
    return Case(name, text, accept, reason, ProgType.TRACING, error=error, attach=attach, attach_to=attach_to)


FENTRY, FEXIT, TP_BTF = AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.TRACE_RAW_TP


def attach_btf_id(case: Case, btf: Spec) -> int:
    """The kernel BTF id a TRACING case is loaded against (its attach target)."""
    if case.attach == AttachType.TRACE_RAW_TP:
        ids = btf.find_ids("btf_trace_" + case.attach_to, Typedef)
    else:
        name = "bpf_iter_" + case.attach_to if case.attach == AttachType.TRACE_ITER else case.attach_to
        ids = btf.find_ids(name, Func)
    return ids[0] if ids else 0  # 0: no target, which the kernel refuses

# Common openings.
KEY0 = """
    r1 = 0
    *(u64 *)(r10 - 8) = r1
    r2 = r10
    r2 += -8
    r1 = map[id:0]
"""
LOOKUP = KEY0 + "    call bpf_map_lookup_elem\n"
KEY32 = """
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:0]
    call bpf_map_lookup_elem
"""
XDP_PKT = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
"""
ZERO16 = "*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\n"
IDX8 = "call bpf_get_prandom_u32\nr1 = r0\nr1 &= 7\n"
SNPRINTF_ARGS = """
    r1 = 42
    *(u64 *)(r10 - 8) = r1
    {buf}
    r2 = {size}
    r3 = map[id:0][0]+{fmt}
    r4 = r10
    r4 += -8
    r5 = {data}
    call bpf_snprintf
    r0 = 0
    exit"""
SNPRINTF4 = """
    r1 = r10
    *(u64 *)(r10 - 8) = r1
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 24) = r1
    *(u64 *)(r10 - 32) = r1
    r1 = r10
    r1 += -64
    r2 = 32
    r3 = map[id:0][0]+{fmt}
    r4 = r10
    r4 += -32
    r5 = {data}
    call bpf_snprintf
    r0 = 0
    exit"""
"""bpf_snprintf with four u64 arguments (stack addresses) at r10-32, `data` bytes of them used."""
RESERVE = """
    r1 = map[id:0]
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
"""

C = Case


def _chain(frames: int) -> str:
    """A main program and `frames - 1` functions, each calling the next."""
    lines = ["call f1", "exit"]
    for i in range(1, frames - 1):
        lines += [f"f{i}:", f"call f{i + 1}", "exit"]
    return "\n".join([*lines, f"f{frames - 1}:", "r0 = 0", "exit"])


CASES: tuple[Case, ...] = (
    # --- structure --------------------------------------------------------------------------------
    C("minimal", "r0 = 0\nexit", True, "the smallest valid program"),
    C("fall_off_end", "r0 = 0", False, "no exit: execution would run past the last instruction",
      error="last insn is not an exit or jmp"),
    C("jump_out_of_range", "r0 = 0\ngoto +5\nexit", False, "the jump lands outside the program",
      error="jump out of range"),
    C("jump_into_ldimm64", "r0 = 0\ngoto +1\nr1 = 0 ll\nexit", False,
      "the jump lands on the second half of a 64-bit load", error="middle of ldimm64"),
    C("unreachable", "r0 = 0\nexit\nr0 = 1\nexit", False, "no path reaches the last two instructions",
      error="unreachable insn 2"),
    C("cond_jump_last", "r0 = 0\nif r0 == 0 goto -2", False,
      "the fall-through of a conditional jump at the end runs off the program",
      error="last insn is not an exit or jmp"),
    C("infinite_loop", "r0 = 0\nl: goto l", False, "a jump to itself never ends",
      error="infinite loop detected"),
    C("bounded_loop", "r0 = 0\nr1 = 0\nl: r1 += 1\nif r1 < 10 goto l\nexit", True,
      "the counter reaches 10, so the verifier sees every iteration end"),
    C("unbounded_loop", """
        call bpf_get_prandom_u32
        l: r0 += 1
        if r0 != 0 goto l
        exit""", False,
      "an unknown counter gives the same abstract state each time round: no proof the loop ends",
      error="infinite loop detected"),
    C("subprog_call", "r1 = 1\ncall fn\nexit\nfn:\nr0 = r1\nexit", True,
      "a bpf-to-bpf call passes r1 and returns r0"),
    C("recursion", "call fn\nexit\nfn:\ncall fn\nr0 = 0\nexit", False, "a function calls itself",
      error="recursive call"),
    C("call_depth_9", _chain(9), False, "nine frames exceed MAX_CALL_FRAMES (8)", error="too deep"),
    C("call_depth_8", _chain(8), True, "eight frames is exactly the limit"),
    C("jump_across_subprog", "call fn\ngoto +2\nfn:\nr0 = 0\nexit", False,
      "a jump from the main program into a function's body", error="jump out of range"),
    C("stack_too_deep", "r1 = 0\n*(u64 *)(r10 - 520) = r1\nr0 = 0\nexit", False,
      "the stack is 512 bytes", error="invalid stack access"),
    C("combined_stack_too_large", """
        r1 = 0
        *(u64 *)(r10 - 304) = r1
        call fn
        exit
        fn:
        r1 = 0
        *(u64 *)(r10 - 256) = r1
        r0 = 0
        exit""", False, "304 + 256 bytes in one call chain exceed the shared 512",
      error="combined stack size"),
    C("combined_stack_ok", """
        r1 = 0
        *(u64 *)(r10 - 256) = r1
        call fn
        exit
        fn:
        r1 = 0
        *(u64 *)(r10 - 256) = r1
        r0 = 0
        exit""", True, "256 + 256 bytes fit the shared 512"),
    # --- registers --------------------------------------------------------------------------------
    C("uninit_register", "r0 = r2\nexit", False, "r2 was never written", error="R2 !read_ok"),
    C("uninit_r0_exit", "exit", False, "the return value was never set", error="R0 !read_ok"),
    C("write_fp", "r10 = 0\nr0 = 0\nexit", False, "r10 is read-only",
      error="frame pointer is read only"),
    C("clobbered_by_call", "r1 = 1\ncall bpf_ktime_get_ns\nr0 = r1\nexit", False,
      "calls clobber r1-r5", error="R1 !read_ok"),
    C("callee_saved_kept", "r6 = 1\ncall bpf_ktime_get_ns\nr0 = r6\nexit", True,
      "r6-r9 survive calls"),
    # --- stack ------------------------------------------------------------------------------------
    C("uninit_stack_read", "r0 = *(u64 *)(r10 - 8)\nexit", False,
      "the stack slot was never written", error="invalid read from stack"),
    C("stack_write_read", "r1 = 7\n*(u64 *)(r10 - 8) = r1\nr0 = *(u64 *)(r10 - 8)\nexit", True,
      "the slot is written before it is read"),
    C("spill_fill_ctx", """
        *(u64 *)(r10 - 8) = r1
        r1 = 0
        r2 = *(u64 *)(r10 - 8)
        r0 = *(u32 *)(r2 + 12)
        exit""", True, "an 8-byte spill of the ctx pointer is filled back as a ctx pointer"),
    C("spill_pointer_4_bytes", "*(u32 *)(r10 - 8) = r1\nr0 = 0\nexit", False,
      "a pointer spilled with a 4-byte store would lose half of it", error="invalid size of register spill"),
    C("misaligned_stack", "r1 = 0\n*(u64 *)(r10 - 12) = r1\nr0 = 0\nexit", False,
      "stack accesses must be aligned to their size", error="misaligned stack access"),
    C("spill_clobbered", """
        *(u64 *)(r10 - 8) = r1
        r2 = 0
        *(u32 *)(r10 - 8) = r2
        r2 = *(u64 *)(r10 - 8)
        r0 = *(u32 *)(r2 + 0)
        exit""", False, "a partial overwrite turns the spilled pointer into a number",
      error="invalid mem access 'scalar'"),
    C("stack_zero_fill", "*(u64 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\nexit", True,
      "a zeroed slot reads back as 0"),
    C("stack_partial_init", "*(u32 *)(r10 - 8) = 0\nr0 = *(u64 *)(r10 - 8)\nexit", False,
      "only four of the eight bytes read were written", error="invalid read from stack"),
    C("fill_pointer_narrow", "*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit", False,
      "half of a spilled pointer", error="invalid size of register fill"),
    # --- stack at a variable offset ----------------------------------------------------------------
    C("stack_var_read", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r0 = *(u8 *)(r2 + 0)
        exit""", True, "an index in [0, 7] reads one of 16 written bytes"),
    C("stack_var_read_zero", "*(u32 *)(r10 - 4) = 0\ncall bpf_get_prandom_u32\nr1 = r0\nr1 &= 3\n" + """
        r2 = r10
        r2 += -4
        r2 += r1
        r0 = *(u8 *)(r2 + 0)
        if r0 == 0 goto +1
        r0 = *(u64 *)(r10 - 32)
        exit""", True, "every byte the index may select is a written zero, so the load gives 0 and the "
                       "read of never-written r10-32 is never reached"),
    C("stack_var_write_over_spill", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -12
        r2 += r1
        r3 = 1
        *(u8 *)(r2 + 0) = r3
        r0 = *(u64 *)(r10 - 16)
        exit""", False, "the store may hit r10-12..r10-5: the spilled zero at r10-16 is gone, and its "
                        "bytes the store cannot reach are not a spill any more",
      error="invalid read from stack"),
    C("stack_var_read_uninit", "*(u64 *)(r10 - 8) = 0\n" + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r0 = *(u8 *)(r2 + 0)
        exit""", False, "bytes r10-16..r10-9 may be read and were never written",
      error="invalid variable-offset read from stack"),
    C("stack_var_read_unbounded", ZERO16 + """
        call bpf_get_prandom_u32
        r2 = r10
        r2 += -16
        r2 += r0
        r0 = *(u8 *)(r2 + 0)
        exit""", False, "the index may take the access anywhere", error="unbounded min value"),
    C("stack_var_read_past_top", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -4
        r2 += r1
        r0 = *(u8 *)(r2 + 0)
        exit""", False, "r10-4 plus up to 7 reaches above the frame",
      error="invalid variable-offset read from stack"),
    C("stack_var_misaligned", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r0 = *(u64 *)(r2 + 0)
        exit""", False, "an 8-byte stack access at an index that is not a multiple of 8",
      error="misaligned stack access"),
    C("stack_var_aligned_u64", ZERO16 + IDX8 + """
        r1 &= 1
        r1 <<= 3
        r2 = r10
        r2 += -16
        r2 += r1
        r0 = *(u64 *)(r2 + 0)
        exit""", True, "index * 8 keeps 8-byte reads aligned inside the 16 written bytes"),
    C("stack_var_write", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r3 = 1
        *(u8 *)(r2 + 0) = r3
        r0 = *(u64 *)(r10 - 16)
        exit""", True, "a store at an index in [0, 7] of initialised bytes; they stay readable"),
    C("stack_var_write_past", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -2
        r2 += r1
        r3 = 1
        *(u8 *)(r2 + 0) = r3
        r0 = 0
        exit""", False, "the store may land above r10", error="invalid variable-offset write to stack"),
    C("stack_var_helper_mem", ZERO16 + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r1 = map[id:0]
        r3 = 8
        r4 = 0
        call bpf_ringbuf_output
        r0 = 0
        exit""", True, "8 initialised bytes from a variable stack offset passed to a helper",
      maps=(RINGBUF,)),
    C("stack_var_helper_mem_uninit", "*(u64 *)(r10 - 8) = 0\n" + IDX8 + """
        r2 = r10
        r2 += -16
        r2 += r1
        r1 = map[id:0]
        r3 = 8
        r4 = 0
        call bpf_ringbuf_output
        r0 = 0
        exit""", False, "the helper may read r10-16..r10-9, never written", maps=(RINGBUF,),
      error="invalid variable-offset"),
    # --- pointer arithmetic ---------------------------------------------------------------------------
    C("modified_ctx_deref", "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit", False,
      "a moved ctx pointer cannot be dereferenced", error="dereference of modified ctx ptr"),
    C("fp_subtract", "r1 = r10\nr1 -= 8\nr0 = 0\n*(u64 *)(r1 + 0) = r0\nexit", False,
      "the kernel forbids subtracting from the frame pointer", error="subtraction from stack pointer"),
    C("ptr_minus_ptr_same", "r2 = r10\nr3 = r10\nr3 += -8\nr2 -= r3\nr0 = r2\nexit", True,
      "two stack pointers subtract to a number"),
    C("ptr_minus_ptr_mixed", "r0 = r1\nr0 -= r10\nexit", True,
      "a privileged load may subtract any two pointers (allow_ptr_leaks): the result is a number"),
    C("pkt_end_minus_pkt", XDP_PKT + "r0 = r3\nr0 -= r2\nexit", True,
      "pkt_end - pkt is the packet length, an unknown number"),
    C("pkt_minus_meta", "r2 = *(u32 *)(r1 + 8)\nr3 = *(u32 *)(r1 + 0)\nr0 = r3\nr0 -= r2\nexit", True,
      "data - data_meta is the metadata length"),
    C("tc_pkt_end_minus_pkt", "r2 = *(u32 *)(r1 + 76)\nr3 = *(u32 *)(r1 + 80)\nr0 = r3\nr0 -= r2\n"
      "r0 = 0\nexit", True, "pkt_end - pkt in a tc program", TC),
    C("ptr_plus_ptr", "r0 = r1\nr0 += r10\nexit", False, "only subtraction combines two pointers",
      error="pointer += pointer prohibited"),
    C("ptr_diff_unbounded_offset", XDP_PKT + "r0 = r3\nr0 -= r2\nr2 += r0\nr0 = *(u8 *)(r2 + 0)\nexit",
      False, "the difference of two pointers is an unknown number: adding it to a pointer is unbounded",
      error="unbounded min value"),
    C("ptr_bitwise", "r1 &= 255\nr0 = 0\nexit", False, "masking a pointer",
      error="bitwise operator &= on pointer"),
    C("ptr_alu32", "w1 += 4\nr0 = 0\nexit", False, "32-bit arithmetic on a pointer",
      error="32-bit pointer arithmetic"),
    C("ptr_plus_unbounded", "call bpf_get_prandom_u32\nr1 = r10\nr1 += r0\nr0 = 0\nexit", False,
      "an unknown 64-bit value added to a pointer", error="unbounded min value"),
    C("map_value_index_ok", KEY32 + """
        if r0 == 0 goto out
        r1 = *(u32 *)(r0 + 0)
        r1 &= 7
        r1 <<= 3
        r0 += r1
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "index*8 <= 56, so the 8-byte read ends by byte 64 of the 64-byte value",
      maps=(ARRAY,)),
    C("map_value_index_oob", KEY32 + """
        if r0 == 0 goto out
        r1 = *(u32 *)(r0 + 0)
        r1 &= 15
        r1 <<= 3
        r0 += r1
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", False, "index*8 may be 120: past the 64-byte value", maps=(ARRAY,),
      error="max value is outside of the allowed memory range"),
    C("map_value_negative", KEY32 + """
        if r0 == 0 goto out
        r1 = *(u32 *)(r0 + 0)
        r1 -= 4
        r0 += r1
        r0 = *(u8 *)(r0 + 0)
        out:
        r0 = 0
        exit""", False, "the index may be -4", maps=(ARRAY,), error="min value is negative"),
    C("map_value_const_oob", KEY32 + """
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 60)
        out:
        r0 = 0
        exit""", False, "bytes 60..67 of a 64-byte value", maps=(ARRAY,),
      error="invalid access to map value"),
    # --- NULL checks ------------------------------------------------------------------------------
    C("lookup_no_null_check", LOOKUP + "r0 = *(u64 *)(r0 + 0)\nexit", False,
      "the lookup may return NULL", maps=(HASH,), error="map_value_or_null"),
    C("lookup_null_check", LOOKUP + "if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 8)\nr0 = 0\nexit", True,
      "dereferenced only where r0 != 0", maps=(HASH,)),
    C("lookup_jne_check", LOOKUP + "if r0 != 0 goto +2\nr0 = 0\nexit\nr0 = *(u64 *)(r0 + 0)\nexit",
      True, "the taken side of `!= 0` is non-NULL", maps=(HASH,)),
    C("null_check_on_copy", LOOKUP + """
        r6 = r0
        if r6 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "checking a copy checks every register holding the same lookup result",
      maps=(HASH,)),
    C("arith_before_null_check", LOOKUP + "r0 += 8\nif r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\n"
      "r0 = 0\nexit", False, "moving a maybe-NULL pointer", maps=(HASH,), error="null-check it first"),
    C("null_branch_is_zero", LOOKUP + "if r0 != 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 0\nexit",
      False, "on the NULL side r0 is the number 0", maps=(HASH,), error="invalid mem access 'scalar'"),
    C("value_write", LOOKUP + "if r0 == 0 goto +2\nr1 = 5\n*(u64 *)(r0 + 8) = r1\nr0 = 0\nexit", True,
      "writing inside the 16-byte value", maps=(HASH,)),
    C("readonly_map_write", KEY32 + "if r0 == 0 goto +2\nr1 = 5\n*(u64 *)(r0 + 0) = r1\nr0 = 0\nexit",
      False, "BPF_F_RDONLY_PROG map values cannot be written", maps=(RDONLY,),
      error="write into map forbidden"),
    # --- packets ----------------------------------------------------------------------------------
    C("pkt_unchecked", XDP_PKT + "r0 = *(u8 *)(r2 + 0)\nexit", False,
      "no comparison with data_end", error="invalid access to packet"),
    C("pkt_checked", XDP_PKT + """
        r4 = r2
        r4 += 14
        r0 = 1
        if r4 > r3 goto +1
        r0 = *(u8 *)(r2 + 13)
        exit""", True, "data + 14 <= data_end makes bytes 0..13 safe"),
    C("pkt_past_check", XDP_PKT + """
        r4 = r2
        r4 += 14
        r0 = 1
        if r4 > r3 goto +1
        r0 = *(u8 *)(r2 + 14)
        exit""", False, "byte 14 is past the checked 14 bytes", error="invalid access to packet"),
    C("pkt_reversed_check", XDP_PKT + """
        r4 = r2
        r4 += 8
        r0 = 1
        if r3 >= r4 goto +1
        exit
        r0 = *(u64 *)(r2 + 0)
        exit""", True, "data_end >= data + 8 on the taken side"),
    C("pkt_strict_check", XDP_PKT + """
        r4 = r2
        r4 += 8
        r0 = 1
        if r4 < r3 goto +1
        exit
        r0 = *(u8 *)(r2 + 8)
        exit""", True, "data + 8 < data_end makes byte 8 safe too"),
    C("pkt_wrong_side", XDP_PKT + """
        r4 = r2
        r4 += 8
        r0 = 1
        if r4 > r3 goto +1
        exit
        r0 = *(u8 *)(r2 + 0)
        exit""", False, "the read is on the side where data + 8 > data_end",
      error="invalid access to packet"),
    C("pkt_end_arith", XDP_PKT + "r3 += 1\nr0 = 0\nexit", False, "data_end cannot be moved",
      error="pointer arithmetic on pkt_end"),
    C("pkt_var_offset", XDP_PKT + """
        r4 = r2
        r4 += 1
        if r4 > r3 goto out
        r5 = *(u8 *)(r2 + 0)
        r5 &= 15
        r2 += r5
        r4 = r2
        r4 += 8
        if r4 > r3 goto out
        r0 = *(u64 *)(r2 + 0)
        exit
        out:
        r0 = 0
        exit""", True, "a bounded variable offset, then a new check of 8 bytes from it"),
    C("pkt_var_offset_unchecked", XDP_PKT + """
        r4 = r2
        r4 += 16
        if r4 > r3 goto out
        r5 = *(u8 *)(r2 + 0)
        r5 &= 15
        r2 += r5
        r0 = *(u8 *)(r2 + 0)
        exit
        out:
        r0 = 0
        exit""", False, "adding a variable offset forgets the checked range",
      error="invalid access to packet"),
    C("pkt_meta_check", """
        r2 = *(u32 *)(r1 + 8)
        r3 = *(u32 *)(r1 + 0)
        r4 = r2
        r4 += 4
        r0 = 0
        if r4 > r3 goto +1
        r0 = *(u32 *)(r2 + 0)
        exit""", True, "data_meta + 4 <= data makes 4 metadata bytes safe"),
    C("xdp_pkt_write", XDP_PKT + """
        r4 = r2
        r4 += 2
        r0 = 2
        if r4 > r3 goto +1
        *(u16 *)(r2 + 0) = 0
        exit""", True, "XDP may write its packet"),
    C("tc_pkt_write", """
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = r2
        r4 += 14
        r0 = 0
        if r4 > r3 goto +1
        *(u8 *)(r2 + 13) = 1
        exit""", True, "tc programs may write the packet", prog_type=TC),
    C("sockfilter_data", "r0 = *(u32 *)(r1 + 76)\nexit", False,
      "socket filters have no direct packet access", prog_type=SOCK,
      error="invalid bpf_context access"),
    C("adjust_head_invalidates", XDP_PKT + """
        r6 = r1
        r4 = r2
        r4 += 14
        if r4 > r3 goto out
        r7 = r2
        r1 = r6
        r2 = 4
        call bpf_xdp_adjust_head
        r0 = *(u8 *)(r7 + 0)
        exit
        out:
        r0 = 0
        exit""", False, "bpf_xdp_adjust_head moves the packet: old packet pointers are invalid",
      error="invalid mem access 'scalar'"),
    # --- context ----------------------------------------------------------------------------------
    C("xdp_ctx_ok", "r0 = *(u32 *)(r1 + 12)\nexit", True, "xdp_md.ingress_ifindex"),
    C("xdp_ctx_8_bytes", "r0 = *(u64 *)(r1 + 0)\nexit", False, "xdp_md fields are read as u32",
      error="invalid bpf_context access"),
    C("xdp_ctx_write", "r0 = 0\n*(u32 *)(r1 + 12) = r0\nexit", False, "xdp_md is read-only",
      error="invalid bpf_context access"),
    C("xdp_ctx_past_end", "r0 = *(u32 *)(r1 + 24)\nexit", False, "xdp_md is 24 bytes",
      error="invalid bpf_context access"),
    C("xdp_egress_no_devmap", "r0 = *(u32 *)(r1 + 20)\nexit", False,
      "egress_ifindex is for devmap programs only", error="invalid bpf_context access"),
    C("tc_write_mark", "r0 = 3\n*(u32 *)(r1 + 8) = r0\nr0 = 0\nexit", True, "tc may set skb->mark",
      prog_type=TC),
    C("sockfilter_write_mark", "r0 = 3\n*(u32 *)(r1 + 8) = r0\nr0 = 0\nexit", False,
      "socket filters may only write cb[]", prog_type=SOCK, error="invalid bpf_context access"),
    C("sockfilter_cb", "r0 = 3\n*(u32 *)(r1 + 48) = r0\nr0 = *(u32 *)(r1 + 52)\nexit", True,
      "cb[] is scratch space", prog_type=SOCK),
    C("skb_narrow_read", "r0 = *(u8 *)(r1 + 16)\nexit", True, "a 1-byte read of skb->protocol",
      prog_type=SOCK),
    C("kprobe_ctx", "r0 = *(u64 *)(r1 + 160)\nexit", True, "the last pt_regs field", prog_type=KPROBE),
    C("kprobe_ctx_past_end", "r0 = *(u64 *)(r1 + 168)\nexit", False, "pt_regs is 168 bytes",
      prog_type=KPROBE, error="invalid bpf_context access"),
    C("kprobe_ctx_write", "r0 = 0\n*(u64 *)(r1 + 0) = r0\nexit", False, "pt_regs is read-only",
      prog_type=KPROBE, error="invalid bpf_context access"),
    C("tracepoint_ctx", "r0 = *(u32 *)(r1 + 8)\nexit", True, "a tracepoint record field",
      prog_type=TP),
    C("raw_tp_ctx", "r0 = *(u64 *)(r1 + 8)\nexit", True, "the second raw tracepoint argument",
      prog_type=RAW_TP),
    C("raw_tp_ctx_past_end", "r0 = *(u64 *)(r1 + 96)\nexit", False, "12 arguments of 8 bytes",
      prog_type=RAW_TP, error="invalid bpf_context access"),
    # --- helpers ----------------------------------------------------------------------------------
    C("unknown_helper", "call 100000\nr0 = 0\nexit", False, "there is no helper 100000",
      error="unknown func"),
    C("probe_read_in_xdp", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall bpf_probe_read\nr0 = 0\nexit",
      False, "bpf_probe_read is for tracing programs", error="cannot use helper"),
    C("probe_read_kernel", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall bpf_probe_read_kernel\n"
      "r0 = *(u64 *)(r10 - 8)\nexit", True, "the helper initialises the 8 stack bytes", prog_type=KPROBE),
    C("probe_read_var_size", """
        call bpf_get_prandom_u32
        r2 = r0
        r2 &= 15
        r1 = r10
        r1 += -16
        r3 = 0
        call bpf_probe_read_kernel
        r0 = 0
        exit""", True, "a size in [0, 15] fits the 16 bytes", prog_type=KPROBE),
    C("probe_read_size_unbounded", """
        call bpf_get_prandom_u32
        r2 = r0
        r1 = r10
        r1 += -16
        r3 = 0
        call bpf_probe_read_kernel
        r0 = 0
        exit""", False, "an unbounded size", prog_type=KPROBE, error="R2"),
    C("probe_read_too_big", "r1 = r10\nr1 += -8\nr2 = 16\nr3 = 0\ncall bpf_probe_read_kernel\n"
      "r0 = 0\nexit", False, "16 bytes into 8 bytes of stack", prog_type=KPROBE,
      error="invalid indirect access to stack"),
    C("map_update_ok", KEY0 + """
        r3 = r10
        r3 += -24
        r4 = 0
        *(u64 *)(r10 - 24) = r4
        *(u64 *)(r10 - 16) = r4
        call bpf_map_update_elem
        r0 = 0
        exit""", True, "key and the 16-byte value are initialised on the stack", maps=(HASH,)),
    C("map_update_uninit_value", KEY0 + """
        r3 = r10
        r3 += -24
        r4 = 0
        call bpf_map_update_elem
        r0 = 0
        exit""", False, "the value bytes were never written", maps=(HASH,),
      error="invalid indirect read from stack"),
    C("map_key_too_short", """
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        r2 = r10
        r2 += -4
        r1 = map[id:0]
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the hash key is 8 bytes, only 4 are on the stack", maps=(HASH,),
      error="invalid indirect access to stack"),
    C("map_key_not_pointer", "r1 = map[id:0]\nr2 = 0\ncall bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "the key must be a pointer", maps=(HASH,), error="R2 type=scalar"),
    C("map_arg_not_map", KEY0 + "r1 = r10\ncall bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "r1 must be a map", maps=(HASH,), error="expected=map_ptr"),
    C("map_delete", KEY0 + "call bpf_map_delete_elem\nr0 = 0\nexit", True,
      "delete takes the map and a key", maps=(HASH,)),
    C("get_current_comm", "r1 = r10\nr1 += -16\nr2 = 16\ncall bpf_get_current_comm\n"
      "r0 = *(u64 *)(r10 - 16)\nexit", True, "the helper writes 16 stack bytes", prog_type=KPROBE),
    C("trace_printk", """
        r1 = 680997
        *(u32 *)(r10 - 4) = r1
        r1 = r10
        r1 += -4
        r2 = 4
        r3 = 7
        call bpf_trace_printk
        r0 = 0
        exit""", True, "a 4-byte format string on the stack", prog_type=KPROBE),
    C("trace_printk_non_gpl", """
        r1 = 680997
        *(u32 *)(r10 - 4) = r1
        r1 = r10
        r1 += -4
        r2 = 4
        call bpf_trace_printk
        r0 = 0
        exit""", False, "bpf_trace_printk is GPL-only", prog_type=KPROBE, license="Proprietary",
      error="GPL-restricted"),
    C("trace_printk_zero_size", "r1 = r10\nr1 += -8\nr2 = 0\ncall bpf_trace_printk\nr0 = 0\nexit",
      False, "ARG_CONST_SIZE must be at least 1", prog_type=KPROBE, error="zero-sized"),
    C("tail_call", "r2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit", True,
      "a tail call through a program array", maps=(PROG_ARRAY,)),
    C("tail_call_hash", "r2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit", False,
      "tail calls need a program array", maps=(HASH,), error="cannot pass map_type 1"),
    C("tail_call_modified_ctx", "r1 += 8\nr2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit",
      False, "the ctx must be passed unmodified", maps=(PROG_ARRAY,), error="modified ctx"),
    C("perf_event_output", """
        r2 = 0
        *(u64 *)(r10 - 8) = r2
        r4 = r10
        r4 += -8
        r2 = map[id:0]
        r3 = 4294967295 ll
        r5 = 8
        call bpf_perf_event_output
        r0 = 0
        exit""", True, "8 initialised bytes to the current CPU's perf buffer", maps=(PERF,),
      prog_type=KPROBE),
    C("lookup_on_prog_array", KEY32.replace("r1 = 0\n", "r1 = 0\n", 1) + "r0 = 0\nexit", False,
      "program arrays are only for tail calls", maps=(PROG_ARRAY,), error="cannot pass map_type 3"),
    C("skb_load_bytes", """
        r2 = 0
        r3 = r10
        r3 += -8
        r4 = 8
        call bpf_skb_load_bytes
        r0 = *(u64 *)(r10 - 8)
        r0 = 0
        exit""", True, "copies 8 packet bytes to the stack", prog_type=TC),
    C("queue_push_pop", """
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 0
        call bpf_map_push_elem
        r2 = r10
        r2 += -16
        r1 = map[id:0]
        call bpf_map_pop_elem
        r0 = 0
        exit""", True, "push reads 8 bytes, pop writes 8 bytes", maps=(QUEUE,)),
    C("lookup_on_queue", KEY0 + "call bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "queues have no lookup", maps=(QUEUE,), error="cannot pass map_type 22"),
    C("stack_push_peek", """
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 0
        call bpf_map_push_elem
        r2 = r10
        r2 += -16
        r1 = map[id:0]
        call bpf_map_peek_elem
        r0 = *(u64 *)(r10 - 16)
        r0 = 0
        exit""", True, "peek writes the 8-byte top of the stack into the buffer", maps=(STACK,)),
    C("queue_pop_short", "r2 = r10\nr2 += -4\nr1 = map[id:0]\ncall bpf_map_pop_elem\nr0 = 0\nexit", False,
      "pop writes 8 bytes into the top 4 of the stack", maps=(QUEUE,), error="invalid"),
    C("queue_push_on_hash", KEY0 + "r3 = 0\ncall bpf_map_push_elem\nr0 = 0\nexit", False,
      "push is for queues, stacks and bloom filters", maps=(HASH,), error="cannot pass map_type 1"),
    C("lpm_lookup_update", """
        r1 = 32
        *(u32 *)(r10 - 8) = r1
        r1 = 0x0403a8c0
        *(u32 *)(r10 - 4) = r1
        r1 = 7
        *(u64 *)(r10 - 16) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        r3 = r10
        r3 += -16
        r4 = 0
        call bpf_map_update_elem
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "an LPM trie keyed by prefix length and IPv4 address", maps=(LPM,)),
    C("lpm_short_key", """
        r1 = 32
        *(u32 *)(r10 - 4) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the key is 8 bytes; 4 are on the stack", maps=(LPM,), error="invalid"),
    C("lpm_value_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 4)
        out:
        r0 = 0
        exit""", False, "bytes 4..11 of an 8-byte value", maps=(LPM,), error="invalid access to map value"),
    C("lpm_unchecked", "*(u64 *)(r10 - 8) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -8\n"
      "call bpf_map_lookup_elem\nr0 = *(u64 *)(r0 + 0)\nexit", False, "a lookup may miss",
      maps=(LPM,), error="invalid mem access 'map_value_or_null'"),
    C("lpm_push", "*(u64 *)(r10 - 8) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -8\nr3 = 0\n"
      "call bpf_map_push_elem\nr0 = 0\nexit", False, "an LPM trie is no queue", maps=(LPM,),
      error="cannot pass map_type 11"),
    C("bloom_push_peek", """
        r1 = 5
        *(u64 *)(r10 - 8) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        r3 = 0
        call bpf_map_push_elem
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_peek_elem
        exit""", True, "add a value to a bloom filter, then test it", maps=(BLOOM,)),
    C("bloom_peek_uninit", "r1 = map[id:0]\nr2 = r10\nr2 += -8\ncall bpf_map_peek_elem\nexit", False,
      "peek on a bloom filter tests the value it is given: those bytes must be written", maps=(BLOOM,),
      error="invalid indirect read from stack"),
    C("bloom_lookup", "r1 = map[id:0]\nr2 = r10\nr2 += -8\n*(u64 *)(r10 - 8) = 0\n"
      "call bpf_map_lookup_elem\nr0 = 0\nexit", False, "bloom filters have no lookup",
      maps=(BLOOM,), error="cannot pass map_type 30"),
    C("bloom_pop", "r1 = map[id:0]\nr2 = r10\nr2 += -8\ncall bpf_map_pop_elem\nr0 = 0\nexit", False,
      "bloom filters have no pop", maps=(BLOOM,), error="cannot pass map_type 30"),
    C("bloom_push_short", "*(u32 *)(r10 - 4) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -4\nr3 = 0\n"
      "call bpf_map_push_elem\nr0 = 0\nexit", False, "the value is 8 bytes; 4 are on the stack",
      maps=(BLOOM,), error="invalid"),
    C("local_storage", """
        r1 = map[id:0]
        r2 = 0
        call bpf_get_local_storage
        r1 = *(u64 *)(r0 + 0)
        r1 += 1
        *(u64 *)(r0 + 0) = r1
        r0 = 1
        exit""", True, "the cgroup storage value, never NULL", CG_SKB, maps=(CG_STORAGE,)),
    C("local_storage_percpu", """
        r1 = map[id:0]
        r2 = 0
        call bpf_get_local_storage
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r0 = 1
        exit""", True, "this CPU's cgroup storage value", CG_SKB, maps=(CG_STORAGE_PERCPU,)),
    C("local_storage_oob", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\n"
      "r1 = *(u64 *)(r0 + 8)\nr0 = 1\nexit", False, "bytes 8..15 of an 8-byte value", CG_SKB,
      maps=(CG_STORAGE,), error="invalid access to map value"),
    C("local_storage_flags", "r1 = map[id:0]\nr2 = 1\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "the helper cannot fail, so it takes no flags", CG_SKB, maps=(CG_STORAGE,),
      error="doesn't support non-zero flags"),
    C("local_storage_hash", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "bpf_get_local_storage takes a cgroup storage map", CG_SKB, maps=(HASH,),
      error="cannot pass map_type 1"),
    C("local_storage_xdp", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "cgroup storage is for cgroup programs", maps=(CG_STORAGE,), error="cannot use helper"),
    C("lookup_on_cgroup_storage", KEY0 + "call bpf_map_lookup_elem\nr0 = 1\nexit", False,
      "programs reach cgroup storage only through bpf_get_local_storage", CG_SKB, maps=(CG_STORAGE,),
      error="cannot pass map_type 19"),
    C("local_storage_two", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr1 = map[id:1]\nr2 = 0\n"
      "call bpf_get_local_storage\nr0 = 1\nexit", False, "one cgroup storage of each type per program",
      CG_SKB, maps=(CG_STORAGE, replace(CG_STORAGE, name="cs2")), error="only one cgroup storage"),
    C("local_storage_both_types", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr1 = map[id:1]\n"
      "r2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", True, "one shared and one per-CPU storage",
      CG_SKB, maps=(CG_STORAGE, CG_STORAGE_PERCPU)),
    # --- constant strings ---------------------------------------------------------------------------
    C("strncmp_const_str", """
        r1 = 0x74696b667062 ll
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+0
        call bpf_strncmp
        r0 = 0
        exit""", True, "the string is in a frozen read-only map and ends with a NUL", maps=(RODATA,)),
    C("strncmp_unterminated", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+8
        call bpf_strncmp
        r0 = 0
        exit""", False, "no NUL between offset 8 and the end of the value", maps=(RODATA,),
      error="string is not zero-terminated"),
    C("strncmp_not_frozen", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+0
        call bpf_strncmp
        r0 = 0
        exit""", False, "a map user space can still change holds no constant", maps=(RO_UNFROZEN,),
      error="does not point to a readonly map"),
    C("strncmp_stack_str", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = r1
        call bpf_strncmp
        r0 = 0
        exit""", False, "the constant string must be in a map, not on the stack", error="expected=map_value"),
    C("strncmp_var_offset", """
        call bpf_get_prandom_u32
        r0 &= 1
        r3 = map[id:0][0]+0
        r3 += r0
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        call bpf_strncmp
        r0 = 0
        exit""", False, "the string's address must be a constant", maps=(RODATA,),
      error="is not a constant address"),
    C("snprintf", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=8), True,
      "\"n=%d\" with one u64 of data, into 16 bytes of stack", maps=(FMT,)),
    C("snprintf_null_buf", SNPRINTF_ARGS.format(fmt=0, buf="r1 = 0", size=0, data=8), True,
      "a NULL buffer of size 0 asks for the length only", maps=(FMT,)),
    C("snprintf_arg_count", SNPRINTF_ARGS.format(fmt=16, buf="r1 = r10\nr1 += -32", size=16, data=8),
      False, "\"%d %d\" takes two u64s, the data holds one", maps=(FMT,), error="Invalid format string"),
    C("snprintf_data_len_4", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=4),
      False, "the data is an array of u64: its size is a multiple of 8", maps=(FMT,),
      error="multiple of 8"),
    C("snprintf_null_buf_size", SNPRINTF_ARGS.format(fmt=0, buf="r1 = 0", size=8, data=8), False,
      "a NULL buffer with a size of 8", maps=(FMT,), error="type=scalar"),
    C("snprintf_non_gpl", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=8), False,
      "bpf_snprintf is GPL-only", maps=(FMT,), license="MIT", error="GPL"),
    C("snprintf_fewer_conversions", SNPRINTF4.format(fmt=56, data=32), True,
      "\"n=%d\" uses one of four u64s: the kernel only wants no more conversions than arguments",
      maps=(FMT2,)),
    C("snprintf_addresses", SNPRINTF4.format(fmt=0, data=32), True,
      "%s, %pI4 and %pi4 read memory the arguments point to (checked at run time)", maps=(FMT2,)),
    C("snprintf_addresses_short", SNPRINTF4.format(fmt=0, data=24), False,
      "four conversions, three arguments", maps=(FMT2,), error="Invalid format string"),
    C("snprintf_plain_p", SNPRINTF_ARGS.format(fmt=8, buf="r1 = r10\nr1 += -32", size=16, data=8), True,
      "%p followed by the NUL prints the pointer value", maps=(FMT,)),
    C("snprintf_ip6_c", SNPRINTF4.format(fmt=48, data=16), True, "%pI6 then a space and %c",
      maps=(FMT2,)),
    C("snprintf_s_then_letter", SNPRINTF4.format(fmt=24, data=8), False,
      "%s must be followed by the end, a space or punctuation (\"%sx\")", maps=(FMT2,),
      error="Invalid format string"),
    C("snprintf_precision", SNPRINTF4.format(fmt=40, data=8), False,
      "no precision: \"%.2d\" is refused", maps=(FMT2,), error="Invalid format string"),
    C("snprintf_px", SNPRINTF4.format(fmt=32, data=8), False,
      "%px (a raw kernel pointer): bpfkit's VM does not format it", maps=(FMT2,),
      error="Invalid format string"),
    # --- maps of maps ---------------------------------------------------------------------------------
    C("map_in_map_lookup", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "a checked lookup in an array of maps gives an inner map to look up in",
      maps=(OUTER,)),
    C("hash_of_maps_lookup", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 0) = r1
        out:
        r0 = 0
        exit""", True, "the same through a hash of maps, writing the inner value", maps=(OUTER_HASH,)),
    C("map_in_map_unchecked", KEY32 + """
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the outer lookup may find no map: it must be checked before use",
      maps=(OUTER,), error="type=map_value_or_null expected=map_ptr"),
    C("map_in_map_inner_unchecked", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", False, "the inner lookup's result is a value or NULL like any lookup", maps=(OUTER,),
      error="map_value_or_null"),
    C("map_in_map_inner_oob", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 8)
        out:
        r0 = 0
        exit""", False, "the inner map's values are 8 bytes: bytes 8..15 are outside",
      maps=(OUTER,), error="invalid access to map value"),
    C("map_in_map_update", """
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        *(u32 *)(r10 - 8) = r1
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -8
        r1 = map[id:0]
        r4 = 0
        call bpf_map_update_elem
        r0 = 0
        exit""", False, "programs may only look up in maps of maps; user space fills them",
      maps=(OUTER,), error="cannot pass map_type 12"),
    C("map_in_map_outer_value_read", KEY32 + """
        r0 = *(u32 *)(r0 + 0)
        r0 = 0
        exit""", False, "the outer lookup's result may be NULL", maps=(OUTER,), error="map_value_or_null"),
    # --- kernel functions (kfuncs) ----------------------------------------------------------------
    C("kfunc_rcu_lock_unlock", "call kfunc(0)\ncall kfunc(1)\nr0 = 0\nexit", True,
      "an RCU read section opened and closed", kfuncs=RCU),
    C("kfunc_rcu_unmatched_unlock", "call kfunc(1)\nr0 = 0\nexit", False,
      "unlocking an RCU read section that was never opened", kfuncs=RCU, error="unmatched rcu read unlock"),
    C("kfunc_rcu_missing_unlock", "call kfunc(0)\nr0 = 0\nexit", False,
      "the program ends inside an RCU read section", kfuncs=RCU, error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_rcu_unlock_one_path", """
        call kfunc(0)
        call bpf_get_prandom_u32
        if r0 > 5 goto +1
        call kfunc(1)
        r0 = 0
        exit""", False, "one path leaves the RCU read section open", kfuncs=RCU,
      error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_rcu_nested", "call kfunc(0)\ncall kfunc(0)\ncall kfunc(1)\ncall kfunc(1)\nr0 = 0\nexit", False,
      "RCU read sections do not nest", kfuncs=RCU,
      error="nested rcu read lock"),
    C("kfunc_rcu_tail_call", """
        r6 = r1
        call kfunc(0)
        r1 = r6
        r2 = map[id:0]
        r3 = 0
        call bpf_tail_call
        call kfunc(1)
        r0 = 0
        exit""", False, "a tail call would leave the RCU read section open", kfuncs=RCU,
      maps=(PROG_ARRAY,), error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_non_gpl", "call kfunc(0)\ncall kfunc(1)\nr0 = 0\nexit", False,
      "kernel functions are for GPL-compatible programs", kfuncs=RCU, license="MIT",
      error="non-GPL compatible program"),
    C("kfunc_kern_ctx_half_pointer", """
        call kfunc(0)
        r1 = *(u64 *)(r0 + 0)
        r0 = *(u32 *)(r0 + 0)
        r0 = 0
        exit""", False, "bytes 0..3 of struct sk_buff are half of the pointer `next`", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="cannot access ptr member next"),
    C("kfunc_kern_ctx_pointer_chain", """
        call kfunc(0)
        r1 = *(u64 *)(r0 + 0)
        r1 = *(u64 *)(r1 + 8)
        r0 = 0
        exit""", True, "sk_buff->next->prev: a pointer member read whole is a typed kernel pointer",
      prog_type=TC, kfuncs=("bpf_cast_to_kern_ctx",)),
    C("kfunc_kern_ctx_write", """
        call kfunc(0)
        r1 = 0
        *(u64 *)(r0 + 0) = r1
        r0 = 0
        exit""", False, "the kernel's sk_buff is read-only here", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="only read is supported"),
    C("kfunc_kern_ctx_beyond", """
        call kfunc(0)
        r0 = *(u64 *)(r0 + 30000)
        r0 = 0
        exit""", False, "the offset is past the end of struct sk_buff", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="access beyond struct"),
    C("kfunc_cast_not_ctx", "r1 = r10\ncall kfunc(0)\nr0 = 0\nexit", False,
      "bpf_cast_to_kern_ctx takes the context, not a stack pointer", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="expected pointer to ctx"),
    C("kfunc_not_for_xdp", "r1 = 0\ncall kfunc(0)\nr0 = 0\nexit", False,
      "bpfkit does not know the rules of bpf_task_acquire (it acquires a reference), so refuses it; the "
      "kernel refuses this call too (NULL passed to its trusted argument)",
      kfuncs=("bpf_task_acquire",), error="does not know the rules of kfunc"),
    # --- iterators (BTF-typed context) -----------------------------------------------------------------
    ITER("iter_task_checked", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r0 = *(u32 *)(r2 + 0)
        out:
        r0 = 0
        exit""", True, "ctx->task is NULL at the end of the iteration: checked first"),
    ITER("iter_task_unchecked", "r2 = *(u64 *)(r1 + 8)\nr0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit", False,
      "ctx->task may be NULL", error="invalid mem access"),
    ITER("iter_seq_printf", """
        r1 = *(u64 *)(r1 + 0)
        r1 = *(u64 *)(r1 + 0)
        r2 = 0x0a6968
        *(u64 *)(r10 - 8) = r2
        r2 = r10
        r2 += -8
        r3 = 4
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        r0 = 0
        exit""", True, "ctx->meta->seq is the seq_file bpf_seq_printf writes to; no arguments (NULL, 0)"),
    ITER("iter_seq_printf_task", """
        r6 = r1
        r1 = *(u64 *)(r6 + 8)
        if r1 == 0 goto out
        r2 = 0x0a6968
        *(u64 *)(r10 - 8) = r2
        r2 = r10
        r2 += -8
        r3 = 4
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        out:
        r0 = 0
        exit""", False, "a task_struct is not a seq_file", error="seq_file is expected"),
    ITER("iter_ptr_member_partial", "r1 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r1 + 0)\nr0 = 0\nexit", False,
      "half of the pointer meta->seq", error="cannot access ptr member seq"),
    ITER("iter_ctx_misaligned", "r0 = *(u32 *)(r1 + 4)\nr0 = 0\nexit", False,
      "the context is an array of u64 arguments", error="not multiple of 8"),
    ITER("iter_ctx_write", "r2 = 0\n*(u64 *)(r1 + 8) = r2\nr0 = 0\nexit", False,
      "an iterator's context is read-only", error="invalid bpf_context access"),
    ITER("iter_task_write", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r3 = 0
        *(u32 *)(r2 + 0) = r3
        out:
        r0 = 0
        exit""", False, "kernel objects are read-only to an iterator", error="only read is supported"),
    ITER("iter_ret_2", "r0 = 2\nexit", False, "an iterator returns 0 or 1",
      error="should have been in [0, 1]"),
    # --- fentry / fexit / tp_btf (this kernel refuses to load them: checked by bpfkit only) ------------
    TRACING("fentry_arg", "r0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit", True,
            "bpf_fentry_test1(int a): ctx[0] is a", FENTRY, "bpf_fentry_test1"),
    TRACING("fentry_no_such_arg", "r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit", False,
            "bpf_fentry_test1 has one argument", FENTRY, "bpf_fentry_test1", error="2-th argument"),
    TRACING("fentry_ret_1", "r0 = 1\nexit", False, "fentry programs return 0", FENTRY, "bpf_fentry_test1",
            error="should have been in [0, 0]"),
    TRACING("fexit_ret_value", "r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit", True,
            "fexit sees the return value after the arguments", FEXIT, "bpf_fentry_test1"),
    TRACING("fentry_no_target", "r0 = 0\nexit", False, "there is no such kernel function", FENTRY,
            "bpfkit_no_such_function", error="is not a function in the kernel's BTF"),
    TRACING("tp_btf_task_checked", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r0 = *(u32 *)(r2 + 0)
        out:
        r0 = 0
        exit""", True, "sched_switch(preempt, prev, next, prev_state): prev read after a NULL check",
            TP_BTF, "sched_switch"),
    TRACING("tp_btf_task_unchecked", "r2 = *(u64 *)(r1 + 8)\nr0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit", False,
            "bpfkit treats every pointer argument of a tracepoint as possibly NULL", TP_BTF, "sched_switch",
            error="invalid mem access"),
    C("seq_printf_in_xdp", """
        r1 = 0
        r2 = r10
        r3 = 0
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        r0 = 0
        exit""", False, "bpf_seq_printf is for iterators", error="cannot use helper"),
    # --- ring buffer references -------------------------------------------------------------------
    C("ringbuf_submit", RESERVE + """
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 8) = r1
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", True, "the reservation is checked, written inside its 16 bytes and submitted",
      maps=(RINGBUF,)),
    C("ringbuf_discard", RESERVE + """
        if r0 == 0 goto out
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", True, "discarding releases the reservation", maps=(RINGBUF,)),
    C("ringbuf_leak", RESERVE + "r0 = 0\nexit", False, "the reservation is never released",
      maps=(RINGBUF,), error="Unreleased reference"),
    C("ringbuf_leak_one_path", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        if r0 > 100 goto out
        r1 = r6
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "when the random number exceeds 100 the record is never submitted",
      maps=(RINGBUF,), error="Unreleased reference"),
    C("ringbuf_submit_unchecked", RESERVE + "r1 = r0\nr2 = 0\ncall bpf_ringbuf_submit\nr0 = 0\nexit",
      False, "the reservation may be NULL", maps=(RINGBUF,), error="ringbuf_mem_or_null"),
    C("ringbuf_double_submit", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        r1 = r6
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "the second submit releases what is already released", maps=(RINGBUF,),
      error="expected=ringbuf_mem"),
    C("ringbuf_use_after_submit", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "the record belongs to the reader after submit", maps=(RINGBUF,),
      error="invalid mem access 'scalar'"),
    C("ringbuf_write_past_end", RESERVE + """
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 16) = r1
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "bytes 16..23 of a 16-byte record", maps=(RINGBUF,), error="invalid access"),
    C("ringbuf_var_size", """
        call bpf_get_prandom_u32
        r2 = r0
        r2 &= 63
        r1 = map[id:0]
        r3 = 0
        call bpf_ringbuf_reserve
        if r0 == 0 goto out
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "the reservation size must be a constant", maps=(RINGBUF,),
      error="is not a known constant"),
    C("ringbuf_submit_moved", RESERVE + """
        if r0 == 0 goto out
        r1 = r0
        r1 += 8
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "submit needs the pointer reserve returned", maps=(RINGBUF,),
      error="zero offset"),
    C("ringbuf_output", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 8
        r4 = 0
        call bpf_ringbuf_output
        r0 = 0
        exit""", True, "copy 8 initialised bytes", maps=(RINGBUF,)),
    C("ringbuf_tail_call_leak", RESERVE.replace("r1 = map[id:0]", "r6 = r1\n    r1 = map[id:0]") + """
        if r0 == 0 goto out
        r7 = r0
        r1 = r6
        r2 = map[id:1]
        r3 = 0
        call bpf_tail_call
        r1 = r7
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "a tail call never returns to release the record", maps=(RINGBUF, PROG_ARRAY),
      error="tail_call would lead to reference leak"),
    # --- callbacks --------------------------------------------------------------------------------
    C("bpf_loop", """
        r1 = 10
        r2 = subprog[cb]
        r3 = 0
        r4 = 0
        call bpf_loop
        r0 = 0
        exit
        cb:
        r0 = 0
        exit""", True, "a callback returning 0"),
    C("bpf_loop_bad_return", """
        r1 = 10
        r2 = subprog[cb]
        r3 = 0
        r4 = 0
        call bpf_loop
        r0 = 0
        exit
        cb:
        r0 = 5
        exit""", False, "bpf_loop callbacks return 0 or 1", error="should have been in [0, 1]"),
    C("bpf_loop_stack_ctx", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = 10
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_loop
        r0 = *(u64 *)(r10 - 8)
        exit
        cb:
        r1 = *(u64 *)(r2 + 0)
        r1 += 1
        *(u64 *)(r2 + 0) = r1
        r0 = 0
        exit""", True, "the callback updates a counter on the caller's stack"),
    C("bpf_loop_not_func", "r1 = 10\nr2 = 0\nr3 = 0\nr4 = 0\ncall bpf_loop\nr0 = 0\nexit", False,
      "the callback must be a function", error="expected=func"),
    # --- packet writes, checksums, stacks, vprintk --------------------------------------------------
    C("skb_store_bytes", "*(u32 *)(r10 - 4) = 0\nr2 = 30\nr3 = r10\nr3 += -4\nr4 = 4\nr5 = 0\n"
      "call bpf_skb_store_bytes\nexit", True, "writes 4 stack bytes into the packet", prog_type=TC),
    C("skb_store_bytes_oob_src", "*(u32 *)(r10 - 4) = 0\nr2 = 30\nr3 = r10\nr3 += -4\nr4 = 8\nr5 = 0\n"
      "call bpf_skb_store_bytes\nexit", False, "8 bytes from a 4-byte stack slot, half never written",
      prog_type=TC, error="invalid"),
    C("skb_store_bytes_xdp", "r2 = 0\nr3 = r10\nr3 += -4\nr4 = 4\nr5 = 0\ncall bpf_skb_store_bytes\n"
      "exit", False, "bpf_skb_store_bytes is for tc programs", error="cannot use helper"),
    C("skb_store_bytes_kills_pkt", """
        r6 = r1
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = r2
        r4 += 8
        if r4 > r3 goto out
        r7 = r2
        *(u32 *)(r10 - 4) = 0
        r1 = r6
        r2 = 0
        r3 = r10
        r3 += -4
        r4 = 4
        r5 = 0
        call bpf_skb_store_bytes
        r0 = *(u8 *)(r7 + 0)
        out:
        r0 = 0
        exit""", False, "a packet pointer checked before bpf_skb_store_bytes is invalid after it",
      prog_type=TC, error="invalid mem access"),
    C("l3_csum_replace", "r2 = 24\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l3_csum_replace\nexit", True,
      "fixes the IPv4 header checksum", prog_type=TC),
    C("l4_csum_replace", "r2 = 40\nr3 = 0\nr4 = 0\nr5 = 0x22\ncall bpf_l4_csum_replace\nexit", True,
      "fixes the UDP checksum", prog_type=TC),
    C("l3_csum_replace_xdp", "r2 = 24\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l3_csum_replace\nexit", False,
      "the checksum helpers need an skb", error="cannot use helper"),
    C("l4_csum_replace_no_ctx", "r1 = 0\nr2 = 40\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l4_csum_replace\n"
      "exit", False, "the first argument is the context", prog_type=TC, error="expected=ctx"),
    C("csum_diff", "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -4\nr2 = 4\nr3 = r10\nr3 += -8\nr4 = 4\n"
      "r5 = 0\ncall bpf_csum_diff\nr0 = 0\nexit", True, "two 4-byte buffers on the stack", prog_type=TC),
    C("csum_diff_null", "r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 77\ncall bpf_csum_diff\nr0 = 2\nexit", True,
      "both buffers NULL with sizes 0: the seed comes back"),
    C("csum_diff_null_size", "r1 = 0\nr2 = 4\nr3 = 0\nr4 = 0\nr5 = 0\ncall bpf_csum_diff\nr0 = 2\nexit",
      False, "a NULL buffer needs a size of 0", error="R1"),
    C("csum_diff_oob", "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\nr2 = 16\nr3 = 0\nr4 = 0\nr5 = 0\n"
      "call bpf_csum_diff\nr0 = 2\nexit", False, "16 bytes from the top 8 of the stack", error="invalid"),
    C("trace_vprintk", """
        r1 = 0x6425
        *(u64 *)(r10 - 8) = r1
        *(u64 *)(r10 - 16) = r1
        r1 = r10
        r1 += -8
        r2 = 3
        r3 = r10
        r3 += -16
        r4 = 8
        call bpf_trace_vprintk
        r0 = 0
        exit""", True, "format and arguments on the stack (checked at run time)", prog_type=KPROBE),
    C("trace_vprintk_null_args", "r1 = 0x25\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 2\nr3 = 0\n"
      "r4 = 0\ncall bpf_trace_vprintk\nr0 = 0\nexit", True, "no arguments: NULL with a size of 0", TC),
    C("trace_vprintk_uninit_fmt", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\nr4 = 0\ncall bpf_trace_vprintk\n"
      "r0 = 0\nexit", False, "the format bytes were never written", prog_type=KPROBE, error="invalid"),
    C("trace_vprintk_mit", "r1 = 0x25\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 2\nr3 = 0\n"
      "r4 = 0\ncall bpf_trace_vprintk\nr0 = 0\nexit", False, "bpf_trace_vprintk is GPL-only",
      prog_type=KPROBE, license="MIT", error="GPL"),
    C("get_stackid", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", True,
      "a stack id from a stack trace map", prog_type=KPROBE, maps=(STACKS,)),
    C("get_stackid_raw_tp", "r2 = map[id:0]\nr3 = 0x100\ncall bpf_get_stackid\nr0 = 0\nexit", True,
      "raw tracepoints may take stack ids too", prog_type=RAW_TP, maps=(STACKS,)),
    C("get_stackid_hash", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", False,
      "bpf_get_stackid takes a stack trace map", prog_type=KPROBE, maps=(HASH,),
      error="cannot pass map_type 1"),
    C("lookup_on_stack_trace", KEY32 + "r0 = 0\nexit", False,
      "a stack trace map is only for bpf_get_stackid", prog_type=KPROBE, maps=(STACKS,),
      error="cannot pass map_type 7"),
    C("get_stackid_xdp", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", False,
      "stack ids are for tracing programs", maps=(STACKS,), error="cannot use helper"),
    C("get_stack", "r2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall bpf_get_stack\n"
      "r0 = *(u64 *)(r10 - 64)\nr0 = 0\nexit", True, "the helper fills 64 stack bytes", prog_type=KPROBE),
    C("get_stack_oob", "r2 = r10\nr2 += -8\nr3 = 64\nr4 = 0\ncall bpf_get_stack\nr0 = 0\nexit", False,
      "64 bytes into the top 8 of the stack", prog_type=KPROBE, error="invalid"),
    C("get_stack_mit", "r2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall bpf_get_stack\nr0 = 0\nexit", False,
      "bpf_get_stack is GPL-only", prog_type=TP, license="MIT", error="GPL"),
    C("for_each_map_elem", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r2 = *(u64 *)(r2 + 0)
        r3 = *(u64 *)(r3 + 8)
        r2 *= r3
        r5 = *(u64 *)(r4 + 0)
        r5 += r2
        *(u64 *)(r4 + 0) = r5
        r0 = 0
        exit""", True, "the callback reads the key and value and sums into the caller's stack",
      maps=(HASH,)),
    C("for_each_map_elem_write_value", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r1 = 1
        *(u64 *)(r3 + 8) = r1
        r0 = 1
        exit""", True, "the callback may write the element's value", maps=(HASH,)),
    C("for_each_map_elem_array", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u32 *)(r2 + 0)
        r0 = *(u64 *)(r3 + 56)
        r0 = 0
        exit""", True, "an array's key is the u32 index", maps=(ARRAY,)),
    C("for_each_map_elem_key_write", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r1 = 1
        *(u64 *)(r2 + 0) = r1
        r0 = 0
        exit""", False, "the key is read-only", maps=(HASH,), error="cannot write into"),
    C("for_each_map_elem_key_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u64 *)(r2 + 4)
        r0 = 0
        exit""", False, "bytes 4..11 of an 8-byte key", maps=(HASH,), error="invalid access"),
    C("for_each_map_elem_value_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u64 *)(r3 + 16)
        r0 = 0
        exit""", False, "bytes 16..23 of a 16-byte value", maps=(HASH,), error="invalid access to map value"),
    C("for_each_map_elem_bad_return", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = 2
        exit""", False, "the callback returns 0 (continue) or 1 (stop)", maps=(HASH,),
      error="should have been in [0, 1]"),
    C("for_each_map_elem_ringbuf", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = 0
        exit""", False, "a ring buffer has no elements to walk", maps=(RINGBUF,),
      error="cannot pass map_type 27"),
    C("for_each_map_elem_not_func", "r1 = map[id:0]\nr2 = 0\nr3 = 0\nr4 = 0\ncall bpf_for_each_map_elem\n"
      "r0 = 0\nexit", False, "the callback must be a function", maps=(HASH,), error="expected=func"),
    C("spin_lock_no_btf", KEY32 + "if r0 == 0 goto out\nr1 = r0\ncall bpf_spin_lock\nout:\nr0 = 0\nexit",
      False, "the lock's place in the value comes from the map's BTF; this map has none",
      TC, maps=(ARRAY,), error="has to have BTF"),
    C("spin_lock_stack", "*(u32 *)(r10 - 4) = 0\nr1 = r10\nr1 += -4\ncall bpf_spin_lock\nr0 = 0\nexit", False,
      "a lock lives in a map value, not on the stack", TC, error="expected=map_value"),
    C("spin_unlock_unchecked", KEY32 + "r1 = r0\ncall bpf_spin_unlock\nr0 = 0\nexit", False,
      "the lookup may have missed", TC, maps=(ARRAY,), error="map_value_or_null"),
    # --- scalars and branches ---------------------------------------------------------------------
    C("bound_by_branch", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        if r0 > 7 goto out
        r0 <<= 3
        r6 += r0
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", True, "r0 <= 7 on the fall-through, so r0*8+8 <= 64", maps=(ARRAY,)),
    C("jmp32_bounds_low_half", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        if w0 > 7 goto out
        r0 <<= 3
        r6 += r0
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "a 32-bit compare bounds only the low half of a 64-bit value", maps=(ARRAY,),
      error="unbounded min value"),
    C("jmp32_after_zext", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        w1 = w0
        if w1 > 7 goto out
        r1 <<= 3
        r6 += r1
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", True, "w1 = w0 zero-extends, so w1 <= 7 bounds all of r1", maps=(ARRAY,)),
    C("signed_bound_only_above", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        if r0 s> 7 goto out
        r6 += r0
        r0 = *(u8 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "s<= 7 leaves negative values", maps=(ARRAY,), error="unbounded min value"),
    C("linked_scalars", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        r1 = r0
        if r1 > 56 goto out
        r6 += r0
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", True, "r1 is a copy of r0, so bounding r1 bounds r0", maps=(ARRAY,)),
    C("div_by_zero_imm", "r0 = 1\nr0 /= 0\nexit", False, "division by the constant 0",
      error="div by zero"),
    C("div_by_zero_reg", "r0 = 1\nr1 = 0\nr0 /= r1\nexit", True,
      "division by a zero register is defined (gives 0)"),
    C("shift_too_far", "r0 = 1\nr0 <<= 64\nexit", False, "shifts are 0..63 bits",
      error="invalid shift"),
    C("dead_branch", "r1 = 5\nr0 = 0\nif r1 > 10 goto bad\nexit\nbad:\nr0 = *(u64 *)(r9 + 0)\nexit", True,
      "r1 is 5, so the branch to the bad read is never taken"),
    C("jset_dead", "r1 = 4\nr0 = 0\nif r1 & 3 goto bad\nexit\nbad:\nr0 = r9\nexit", True,
      "4 & 3 is 0: the jump is never taken"),
    C("movsx_bounds", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        r1 = *(u8 *)(r6 + 0)
        r1 &= 63
        r2 = (s8)r1
        r6 += r2
        r0 = *(u8 *)(r6 + 0)
        out:
        r0 = 0
        exit""", True, "a value in [0, 63] sign-extends to itself", maps=(ARRAY,)),
    C("may_goto_loop", """
        r1 = 0
        l: may_goto out
        r1 += 1
        goto l
        out:
        r0 = 0
        exit""", True, "may_goto bounds the loop at run time"),
    C("ld_abs_sockfilter", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", True,
      "legacy packet loads in a socket filter", prog_type=SOCK),
    C("ld_abs_xdp", "r6 = r1\nr0 = *(u8 *)skb[12]\nexit", False, "LD_ABS is for skb programs",
      error="not allowed for this program type"),
    C("ld_abs_no_ctx", "r0 = *(u8 *)skb[12]\nexit", False, "LD_ABS reads through r6 = ctx",
      prog_type=SOCK, error="R6"),
    C("atomic_stack", "r1 = 0\n*(u64 *)(r10 - 8) = r1\nr1 = 1\nlock *(u64 *)(r10 - 8) += r1\n"
      "r0 = *(u64 *)(r10 - 8)\nexit", True, "an atomic add on an initialised stack slot"),
    C("atomic_ctx", "r2 = 1\nlock *(u32 *)(r1 + 12) += r2\nr0 = 0\nexit", False,
      "atomics on the context", error="BPF_ATOMIC stores into R1"),
    C("atomic_fetch_map", KEY32 + """
        if r0 == 0 goto out
        r1 = 1
        r1 = atomic_fetch_add((u64 *)(r0 + 8), r1)
        out:
        r0 = 0
        exit""", True, "fetch-add on a map value", maps=(ARRAY,)),
    # --- functions, spills and pruning ----------------------------------------------------------------
    C("subprog_writes_caller_stack", """
        r1 = r10
        r1 += -8
        call fn
        r0 = *(u64 *)(r10 - 8)
        exit
        fn:
        r2 = 5
        *(u64 *)(r1 + 0) = r2
        r0 = 0
        exit""", True, "a function may write the caller's stack through a pointer argument"),
    C("subprog_returns_map_value", """
        call fn
        if r0 == 0 goto +1
        r0 = *(u64 *)(r0 + 0)
        r0 = 0
        exit
        fn:
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        call bpf_map_lookup_elem
        exit""", True, "the caller checks the map value the function returns", maps=(HASH,)),
    C("subprog_returns_unchecked", """
        call fn
        r0 = *(u64 *)(r0 + 0)
        r0 = 0
        exit
        fn:
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        call bpf_map_lookup_elem
        exit""", False, "the caller dereferences a lookup result nobody checked", maps=(HASH,),
      error="map_value_or_null"),
    C("void_subprog", "call fn\nr0 = 0\nexit\nfn:\nr1 = 1\nexit", True,
      "a function that returns nothing is fine while the caller does not use r0"),
    C("void_subprog_result_used", "call fn\nexit\nfn:\nr1 = 1\nexit", False,
      "the caller returns the r0 a void function never set", error="R0 !read_ok"),
    C("narrow_spill_fill", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        r1 = 7
        *(u32 *)(r10 - 16) = r1
        r2 = *(u32 *)(r10 - 16)
        r2 <<= 3
        r6 += r2
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", True, "a 4-byte spill of the constant 7 at a slot start is filled back as 7",
      maps=(ARRAY,)),
    C("narrow_spill_wide_fill", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        r1 = 7
        *(u32 *)(r10 - 16) = r1
        r2 = *(u64 *)(r10 - 16)
        r6 += r2
        r0 = *(u8 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "an 8-byte fill of a 4-byte spill: the other half is not the constant",
      maps=(ARRAY,), error="invalid read from stack"),
    C("loop_indexes_value", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        r7 = 0
        r8 = 0
        loop:
        r1 = r6
        r1 += r7
        r2 = *(u64 *)(r1 + 0)
        r8 += r2
        r7 += 8
        if r7 < 64 goto loop
        out:
        r0 = 0
        exit""", True, "the loop counter is precise: each iteration reads inside the value", maps=(ARRAY,)),
    C("loop_index_past_value", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        r7 = 0
        loop:
        r1 = r6
        r1 += r7
        r2 = *(u64 *)(r1 + 0)
        r7 += 8
        if r7 < 72 goto loop
        out:
        r0 = 0
        exit""", False, "the last iteration reads bytes 64..71", maps=(ARRAY,),
      error="invalid access to map value"),
    C("many_diamonds", "call bpf_get_prandom_u32\nr6 = r0\n" + "".join(
        f"if r6 > {k} goto +1\nr3 = {k}\n" for k in range(40)) + "r0 = 0\nexit", True,
      "2^40 paths that differ only in a register no check uses: pruning ignores it"),
    C("diamond_decides_index", KEY32 + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        r3 = 8
        if r0 > 1000 goto +1
        r3 = 64
        r6 += r3
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "on one side of the branch the offset is 64: past the value", maps=(ARRAY,),
      error="invalid access to map value"),
    C("ringbuf_zero_size", RESERVE.replace("r2 = 16", "r2 = 0") + """
        if r0 == 0 goto out
        r1 = 1
        *(u8 *)(r0 + 0) = r1
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "a zero-sized reservation has no byte to write", maps=(RINGBUF,),
      error="invalid access"),
    C("cgroup_skb_pkt_write", """
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = r2
        r4 += 1
        r0 = 1
        if r4 > r3 goto +1
        *(u8 *)(r2 + 0) = 0
        exit""", False, "cgroup_skb programs may read but not write the packet", prog_type=CG_SKB,
      error="cannot write into packet"),
    C("xdp_devmap_egress", "r0 = *(u32 *)(r1 + 20)\nr0 = 2\nexit", True,
      "devmap programs may read egress_ifindex", attach=AttachType.XDP_DEVMAP),
    C("stack_pointer_null_check", "r0 = 0\nif r10 == 0 goto +1\nexit\nr0 = r9\nexit", False,
      "bpfkit explores both sides of comparing the frame pointer with 0", error="R9 !read_ok"),
    # --- return values ----------------------------------------------------------------------------
    C("cgroup_skb_ret_2", "r0 = 2\nexit", False, "cgroup_skb programs return 0 or 1",
      prog_type=CG_SKB, error="should have been in [0, 1]"),
    C("cgroup_skb_ret_1", "r0 = 1\nexit", True, "1 allows the packet", prog_type=CG_SKB),
    C("cgroup_skb_egress_3", "r0 = 3\nexit", True, "egress programs may return 0..3",
      prog_type=CG_SKB, attach=AttachType.CGROUP_INET_EGRESS),
    C("cgroup_skb_unknown_ret", "r0 = *(u32 *)(r1 + 0)\nexit", False,
      "skb->len is not a valid verdict", prog_type=CG_SKB, error="should have been in [0, 1]"),
    C("cgroup_skb_masked_ret", "r0 = *(u32 *)(r1 + 0)\nr0 &= 1\nexit", True,
      "masking with 1 gives 0 or 1", prog_type=CG_SKB),
    C("xdp_ret_pointer", "r0 = r1\nexit", True,
      "privileged programs may return pointers; XDP's return value is not range-checked"),
    C("subprog_ret_stack", "call fn\nr0 = 0\nexit\nfn:\nr0 = r10\nexit", False,
      "a function's stack is gone after it returns", error="cannot return stack pointer"),
    # --- global data and raw memory ------------------------------------------------------------------
    C("global_data", "r1 = map[id:0][0]+8\nr0 = *(u64 *)(r1 + 0)\nexit", True,
      "a direct pointer into a one-element array (bytes 8..15 of 32)", maps=(GLOBAL,)),
    C("global_data_oob", "r1 = map[id:0][0]+8\nr0 = *(u64 *)(r1 + 24)\nexit", False,
      "bytes 32..39 of a 32-byte value", maps=(GLOBAL,), error="invalid access to map value"),
    C("raw_mem_read", "r0 = *(u64 *)(r1 + 8)\nexit", True, "bytes 8..15 of 16 bytes of memory",
      prog_type=None, mem_size=16),
    C("raw_mem_oob", "r0 = *(u64 *)(r1 + 12)\nexit", False, "bytes 12..19 of 16", prog_type=None,
      mem_size=16, error="invalid access to memory"),
    C("raw_no_mem", "r0 = *(u64 *)(r1 + 0)\nexit", False, "without memory r1 is 0", prog_type=None,
      error="invalid mem access 'scalar'"),
)


_btf: list[Spec | None] = []


def target_btf() -> Spec | None:
    """The running kernel's BTF (kfunc ids and prototypes, BTF-typed contexts), None if unreadable."""
    if not _btf:
        _btf.append(load_btf(VMLINUX) if os.access(VMLINUX, os.R_OK) else None)
    return _btf[0]


def needs_btf(case: Case) -> bool:
    return bool(case.kfuncs or case.attach_to)


def program(case: Case) -> list[Instruction]:
    """The case's instructions; map loads hold the map's index in `case.maps`, kfunc calls the id of
    the named kernel function in the running kernel's BTF."""
    insns = assemble(textwrap.dedent(case.text))
    if not case.kfuncs:
        return insns
    btf = target_btf()
    assert btf is not None, "kfunc cases need the running kernel's BTF"
    ids = [btf.find_ids(name, Func)[0] for name in case.kfuncs]
    return [replace(i, imm=ids[i.imm]) if i.opcode == CALL and i.src == PseudoCall.KFUNC else i
            for i in insns]


def with_fds(insns: list[Instruction], fds: list[int]) -> list[Instruction]:
    """The instructions with each map index replaced by the real map's fd (for the kernel)."""
    out = []
    for insn in insns:
        if insn.opcode == LD_IMM64 and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            index = insn.imm & 0xFFFFFFFF
            insn = replace(insn, imm=(insn.imm & ~0xFFFFFFFF) | fds[index])
        out.append(insn)
    return out


def verify_case(case: Case) -> VerifierResult:
    """Run bpfkit's verifier on a case (raises VerificationError on refusal)."""
    return verify(program(case), prog_type=case.prog_type, maps=dict(enumerate(case.maps)),
                  expected_attach_type=case.attach, license=case.license, mem_size=case.mem_size,
                  btf=target_btf() if needs_btf(case) else None, attach_to=case.attach_to)
