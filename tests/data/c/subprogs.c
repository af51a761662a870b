// SPDX-License-Identifier: MIT
/*
 * subprogs.c - bpf-to-bpf calls and helper calls.
 *   - static subprograms (BPF_PSEUDO_CALL, verified with the caller's state): a call
 *     chain three deep, five arguments, a pointer to the caller's stack;
 *   - global subprograms (non-static: the kernel verifies each one alone from its
 *     BTF prototype): one taking scalars, one taking the context;
 *   - helper calls (plain call imm = helper id).
 * Self-checking.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

static __noinline __u64 add5(__u64 a, __u64 b, __u64 c, __u64 d, __u64 e)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e;
}

static __noinline __u64 level3(__u64 x)
{
	return x * 3 + 1;
}

static __noinline __u64 level2(__u64 x)
{
	return level3(x + 1) * 2;
}

static __noinline __u64 level1(__u64 x)
{
	return level2(x) + level3(x);
}

static __noinline void fill(__u32 *out, __u32 n)
{
	__u32 i;

	for (i = 0; i < 4; i++)
		out[i] = n + i;
}

/* global: verified on its own, arguments are unknown scalars to the verifier */
__noinline int global_mix(__u32 a, __u32 b)
{
	if (a > 1000 || b > 1000)
		return -1;
	return a * 1000 + b;
}

/* global taking the program context */
__noinline int global_len(struct __sk_buff *skb)
{
	if (!skb)
		return -1;
	return skb->len;
}

SEC("socket")
int subprogs(struct __sk_buff *skb)
{
	volatile __u64 one = 1; /* opaque: keeps clang from folding the calls away */
	__u32 buf[4];
	__u64 t0, t1;

	CHECK(add5(one, one + 1, one + 2, one + 3, one + 4) == 1 + 4 + 9 + 16 + 25);
	/* level1(5) = level2(5) + level3(5) = (3*6+1)*2 + 16 = 54 */
	CHECK(level1(one + 4) == 54);
	fill(buf, one + 39);
	CHECK(buf[0] == 40 && buf[3] == 43);
	CHECK(global_mix(12, 34) == 12034);
	CHECK(global_mix(5000, 1) == -1);
	CHECK(global_len(skb) == skb->len && skb->len >= 14);

	/* helpers */
	t0 = bpf_ktime_get_ns();
	t1 = bpf_ktime_get_ns();
	CHECK(t1 >= t0);
	CHECK(bpf_get_smp_processor_id() < 8192);
	bpf_get_prandom_u32();
	return 0;
}

char _license[] SEC("license") = "GPL";
