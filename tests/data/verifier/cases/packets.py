"""Cases on packet access (bounds checks on data/data_end) and context access."""

from __future__ import annotations

from .common import KPROBE, RAW_TP, SOCK, TC, TP, XDP_PKT, C, Case

CASES: tuple[Case, ...] = (
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
)
