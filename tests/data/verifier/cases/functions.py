"""Cases on functions (bpf-to-bpf calls), spills and pruning, return values, global data and raw
memory."""

from __future__ import annotations

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType

from .common import ARRAY, CG_SKB, HASH, KEY32, RESERVE, RINGBUF, C, Case

GLOBAL = MapSpec(MapType.ARRAY, 4, 32, 1, name="global")


CASES: tuple[Case, ...] = (
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
