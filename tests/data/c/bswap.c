// SPDX-License-Identifier: MIT
/*
 * bswap.c - byte-order conversions (BPF_ALU | BPF_END). On a little-endian target
 * __builtin_bswap16/32/64 compile to be16/be32/be64 (to-big-endian = swap); the le16/
 * le32/le64 forms (to-little-endian = no swap, but truncate and zero-extend to the
 * width) are never chosen by clang here, so they are written in inline asm.
 * Self-checking, including the zero-extension of the narrow forms.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

#define V 0x0123456789abcdefULL

SEC("socket")
int bswap(struct __sk_buff *skb)
{
	volatile __u64 v = V;
	volatile __u16 h = 0x1234;
	volatile __u32 w = 0x12345678;
	volatile __u64 r;
	__u64 t;

	r = __builtin_bswap64(v);  CHECK(r == 0xefcdab8967452301ULL);
	r = __builtin_bswap32(w);  CHECK(r == 0x78563412);
	r = __builtin_bswap16(h);  CHECK(r == 0x3412);
	/* swapping the low part of a wider value */
	r = __builtin_bswap32((__u32)v);  CHECK(r == 0xefcdab89);
	r = __builtin_bswap16((__u16)v);  CHECK(r == 0xefcd);

	t = v;
	asm volatile("%[t] = be16 %[t]" : [t] "+r"(t));
	CHECK(t == 0xefcd);
	t = v;
	asm volatile("%[t] = be32 %[t]" : [t] "+r"(t));
	CHECK(t == 0xefcdab89);
	t = v;
	asm volatile("%[t] = be64 %[t]" : [t] "+r"(t));
	CHECK(t == 0xefcdab8967452301ULL);
	t = v;
	asm volatile("%[t] = le16 %[t]" : [t] "+r"(t));
	CHECK(t == 0xcdef);
	t = v;
	asm volatile("%[t] = le32 %[t]" : [t] "+r"(t));
	CHECK(t == 0x89abcdef);
	t = v;
	asm volatile("%[t] = le64 %[t]" : [t] "+r"(t));
	CHECK(t == V);
	return 0;
}

char _license[] SEC("license") = "GPL";
