// SPDX-License-Identifier: MIT
/*
 * ld_abs.c - classic packet loads in a socket filter: BPF_LD | BPF_ABS (constant
 * offset) and BPF_LD | BPF_IND (register + offset), byte/half/word. The results are in
 * host byte order (the kernel converts from network order). An out-of-bounds load ends
 * the program with return value 0, which the second program relies on.
 * Offsets are relative to skb->data, which for a socket filter under BPF_PROG_TEST_RUN
 * (as on an AF_INET socket) is the IPv4 header: the test runner pulls the Ethernet header.
 *
 * Run: BPF_PROG_TEST_RUN with the "udp4" test packet (Ethernet + IPv4 10.0.0.1 ->
 * 10.0.0.2 + UDP 1234 -> 5678, payload "bpfkit fixture pkt"; 60 bytes, 46 from IPv4 on).
 *   ld_abs:     returns 0, or the line of the first failing check.
 *   ld_abs_oob: returns 0 (the out-of-bounds load aborts it before `return 1`).
 */
#include "bpfkit_helpers.h"

SEC("socket")
int ld_abs(struct __sk_buff *skb)
{
	__u64 ihl;

	CHECK(load_byte(skb, 0) >> 4 == 4);           /* version 4 */
	CHECK(load_half(skb, 2) == 46);               /* total length */
	CHECK(load_byte(skb, 9) == 17);               /* protocol UDP */
	CHECK(load_word(skb, 12) == 0x0a000001);      /* source 10.0.0.1 */
	CHECK(load_word(skb, 16) == 0x0a000002);      /* destination 10.0.0.2 */

	ihl = (load_byte(skb, 0) & 0x0f) * 4;
	/* indirect: the offset is in a register */
	CHECK(load_half(skb, ihl) == 1234);           /* source port */
	CHECK(load_half(skb, ihl + 2) == 5678);       /* destination port */
	CHECK(load_half(skb, ihl + 4) == 26);         /* UDP length */
	CHECK(load_word(skb, ihl + 8) == 0x6270666b); /* "bpfk" */
	CHECK(load_byte(skb, ihl + 8 + 17) == 't');   /* last byte of the payload */
	/* checked last, so that clang cannot fold ihl into the loads above */
	CHECK(ihl == 20);
	return 0;
}

SEC("socket")
int ld_abs_oob(struct __sk_buff *skb)
{
	/* 46-byte packet: offset 1000 is out of bounds, the program ends here with 0 */
	if (load_byte(skb, 1000) == 0x5a)
		return 2;
	return 1;
}

char _license[] SEC("license") = "GPL";
