"""Accept/refuse cases for bpfkit's verifier, each with the reason it must be decided that way.

Each `Case` is a small program in the llvm assembly dialect. `map[id:N]` loads map N of the case's
`maps` (the kernel test rewrites N into the real map's fd). `accept` is bpfkit's required verdict,
`error` a fragment of the refusal message. The kernel test loads every case in the running kernel:
the kernel must refuse every case bpfkit refuses, except those listed in `disagreements.py` (where
bpfkit is stricter than the kernel, with the reason).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

from bpfkit.isa import LD_IMM64, Instruction, assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType
from bpfkit.uapi.insn import PseudoSrc
from bpfkit.vm.verifier import VerifierResult, verify

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


HASH = MapSpec(MapType.HASH, 8, 16, 16, name="hash")
ARRAY = MapSpec(MapType.ARRAY, 4, 64, 4, name="array")
GLOBAL = MapSpec(MapType.ARRAY, 4, 32, 1, name="global")
RINGBUF = MapSpec(MapType.RINGBUF, 0, 0, 4096, name="rb")
PROG_ARRAY = MapSpec(MapType.PROG_ARRAY, 4, 4, 4, name="progs")
PERF = MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 2, name="events")
QUEUE = MapSpec(MapType.QUEUE, 0, 8, 16, name="queue")
RDONLY = MapSpec(MapType.ARRAY, 4, 8, 1, flags=0x80, name="ro")

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
    # --- pointer arithmetic ---------------------------------------------------------------------------
    C("modified_ctx_deref", "r1 += 4\nr0 = *(u32 *)(r1 + 0)\nexit", False,
      "a moved ctx pointer cannot be dereferenced", error="dereference of modified ctx ptr"),
    C("fp_subtract", "r1 = r10\nr1 -= 8\nr0 = 0\n*(u64 *)(r1 + 0) = r0\nexit", False,
      "the kernel forbids subtracting from the frame pointer", error="subtraction from stack pointer"),
    C("ptr_minus_ptr_same", "r2 = r10\nr3 = r10\nr3 += -8\nr2 -= r3\nr0 = r2\nexit", True,
      "two stack pointers subtract to a number"),
    C("ptr_minus_ptr_mixed", "r0 = r1\nr0 -= r10\nexit", False,
      "bpfkit only subtracts pointers of the same type", error="pointer -= pointer"),
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


def program(case: Case) -> list[Instruction]:
    """The case's instructions; map loads hold the map's index in `case.maps`."""
    return assemble(textwrap.dedent(case.text))


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
                  expected_attach_type=case.attach, license=case.license, mem_size=case.mem_size)
