// SPDX-License-Identifier: MIT
/*
 * lddw.c - 64-bit immediate loads (BPF_LD | BPF_IMM | BPF_DW, two instruction slots):
 * constants that do not fit a sign-extended 32-bit mov (high half set, 0xffffffff,
 * INT64_MIN/MAX), plus lddw of small values written by hand (clang uses a mov for
 * those). The relocated forms (map, map value, subprogram address) are in
 * maps_btf.c, global_data.c and loops.c. Self-checking.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

SEC("socket")
int lddw(struct __sk_buff *skb)
{
	volatile __u64 v;
	__u64 t;

	v = 0xdeadbeefcafebabeULL;
	CHECK((v >> 32) == 0xdeadbeef);
	CHECK((__u32)v == 0xcafebabe);
	v = 0xffffffffULL;                 /* not a sign-extended imm32 */
	CHECK((v >> 32) == 0 && (__u32)v == 0xffffffffU);
	v = 0x100000000ULL;
	CHECK((v >> 32) == 1 && (__u32)v == 0);
	v = 0x7fffffffffffffffULL;
	CHECK((v >> 63) == 0 && (v & 0xffff) == 0xffff);
	v = 0x8000000000000000ULL;
	CHECK((v >> 63) == 1 && (__u32)v == 0);
	v = 0x80000000ULL;                 /* bit 31 set, upper half clear */
	CHECK((v >> 31) == 1);
	v = 0xffffffff80000000ULL;         /* fits a sign-extended mov: no lddw */
	CHECK((__s64)v == -2147483648LL);

	/* lddw of values that would fit a mov */
	asm volatile("%[t] = 0 ll" : [t] "=r"(t));
	CHECK(t == 0);
	asm volatile("%[t] = 1 ll" : [t] "=r"(t));
	CHECK(t == 1);
	asm volatile("%[t] = -1 ll" : [t] "=r"(t));
	CHECK(t == ~0ULL);
	asm volatile("%[t] = 0x12345678 ll" : [t] "=r"(t));
	CHECK(t == 0x12345678);
	return 0;
}

char _license[] SEC("license") = "GPL";
