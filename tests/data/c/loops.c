// SPDX-License-Identifier: MIT
/*
 * loops.c - backward jumps: bounded loops the verifier must walk (kernel >= 5.3),
 * a nested loop, a loop with an early exit, and bpf_loop() with a callback, whose
 * address is loaded with lddw src_reg=BPF_PSEUDO_FUNC (kernel >= 5.17).
 * `#pragma clang loop unroll(disable)` and a volatile factor read in every iteration keep
 * the loops as loops. Self-checking.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

/* nothing in here counts calls exactly: the verifier checks the callback until the
 * states it sees repeat, and an exact counter would never repeat */
struct loop_ctx {
	__u64 sum;
	__u64 seen; /* bit i set: the callback ran with index i */
};

static long add_index(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	c->seen |= 1ULL << (index & 63);
	return index == 9 ? 1 : 0; /* 1 stops the loop after index 9 */
}

SEC("socket")
int loops(struct __sk_buff *skb)
{
	volatile __u32 n = 100;
	volatile __u32 one = 1; /* read in every iteration: no closed form for clang */
	struct loop_ctx c = {};
	__u64 sum = 0, prod = 0;
	__u32 i, j, limit = n;

	/* sum 1..n */
#pragma clang loop unroll(disable)
	for (i = 1; i <= limit && i <= 128; i++)
		sum += i * one;
	CHECK(sum == 5050);

	/* nested: sum of i*j for i, j in 0..9 */
#pragma clang loop unroll(disable)
	for (i = 0; i < 10; i++) {
#pragma clang loop unroll(disable)
		for (j = 0; j < 10; j++)
			prod += i * j * one;
	}
	CHECK(prod == 2025);

	/* early exit: first i with i*i > n */
	i = 0;
#pragma clang loop unroll(disable)
	while (i < 32) {
		if (i * i > limit)
			break;
		i++;
	}
	CHECK(i == 11);

	/* bpf_loop: callback invoked for index 0..9, then asks to stop */
	CHECK(bpf_loop(limit, add_index, &c, 0) == 10);
	CHECK(c.seen == 0x3ff && c.sum == 45);
	return 0;
}

char _license[] SEC("license") = "GPL";
