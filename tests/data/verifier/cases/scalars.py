"""Cases on scalar ranges and what branches teach the verifier about them."""

from __future__ import annotations

from .common import ARRAY, KEY32, SOCK, C, Case

CASES: tuple[Case, ...] = (
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
)
