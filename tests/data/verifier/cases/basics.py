"""Cases on a program's structure, registers, the stack (at fixed and variable offsets), pointer
arithmetic and NULL checks."""

from __future__ import annotations

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType

from .common import ARRAY, HASH, KEY32, LOOKUP, RINGBUF, TC, XDP_PKT, C, Case

RDONLY = MapSpec(MapType.ARRAY, 4, 8, 1, flags=0x80, name="ro")
ZERO16 = "*(u64 *)(r10 - 8) = 0\n*(u64 *)(r10 - 16) = 0\n"
IDX8 = "call bpf_get_prandom_u32\nr1 = r0\nr1 &= 7\n"


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
)
