// SPDX-License-Identifier: MIT
/*
 * atomics.c - the BPF_ATOMIC instructions of -mcpu=v3, in 64 and 32-bit width:
 * add/or/and/xor without fetch (result unused), their fetch variants (result used),
 * xchg and cmpxchg (both the successful and the failing compare). Self-checking;
 * the operands live on the caller's stack, which the verifier allows atomics on.
 * See xadd.c for the one atomic (add without fetch) that -mcpu=v1/v2 have.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

static __noinline int atomics64(__u64 *p, __u64 v)
{
	__u64 old;

	*p = 0xf0;
	__sync_fetch_and_add(p, v);            /* lock add, v = 0x0f */
	CHECK(*p == 0xff);
	__sync_fetch_and_and(p, 0x3c);         /* lock and */
	CHECK(*p == 0x3c);
	__sync_fetch_and_or(p, 0x100);         /* lock or */
	CHECK(*p == 0x13c);
	__sync_fetch_and_xor(p, 0x101);        /* lock xor */
	CHECK(*p == 0x3d);

	old = __sync_fetch_and_add(p, v);      /* fetch_add */
	CHECK(old == 0x3d && *p == 0x4c);
	old = __sync_fetch_and_and(p, 0x0c);   /* fetch_and */
	CHECK(old == 0x4c && *p == 0x0c);
	old = __sync_fetch_and_or(p, 0x30);    /* fetch_or */
	CHECK(old == 0x0c && *p == 0x3c);
	old = __sync_fetch_and_xor(p, 0xff);   /* fetch_xor */
	CHECK(old == 0x3c && *p == 0xc3);
	old = __sync_fetch_and_sub(p, 3);      /* fetch_add of a negated operand */
	CHECK(old == 0xc3 && *p == 0xc0);

	old = __sync_lock_test_and_set(p, 0x123456789aULL); /* xchg */
	CHECK(old == 0xc0 && *p == 0x123456789aULL);
	old = __sync_val_compare_and_swap(p, 0x123456789aULL, 7); /* cmpxchg, equal */
	CHECK(old == 0x123456789aULL && *p == 7);
	old = __sync_val_compare_and_swap(p, 8, 9);        /* cmpxchg, not equal */
	CHECK(old == 7 && *p == 7);
	return 0;
}

static __noinline int atomics32(__u32 *p, __u32 v)
{
	__u32 old;

	*p = 0xf0;
	__sync_fetch_and_add(p, v);
	CHECK(*p == 0xff);
	__sync_fetch_and_and(p, 0x3c);
	CHECK(*p == 0x3c);
	__sync_fetch_and_or(p, 0x100);
	CHECK(*p == 0x13c);
	__sync_fetch_and_xor(p, 0x101);
	CHECK(*p == 0x3d);

	old = __sync_fetch_and_add(p, v);
	CHECK(old == 0x3d && *p == 0x4c);
	old = __sync_fetch_and_and(p, 0x0c);
	CHECK(old == 0x4c && *p == 0x0c);
	old = __sync_fetch_and_or(p, 0x30);
	CHECK(old == 0x0c && *p == 0x3c);
	old = __sync_fetch_and_xor(p, 0xff);
	CHECK(old == 0x3c && *p == 0xc3);
	old = __sync_fetch_and_sub(p, 3);
	CHECK(old == 0xc3 && *p == 0xc0);

	old = __sync_lock_test_and_set(p, 0x89abcdefU);
	CHECK(old == 0xc0 && *p == 0x89abcdefU);
	old = __sync_val_compare_and_swap(p, 0x89abcdefU, 7);
	CHECK(old == 0x89abcdefU && *p == 7);
	old = __sync_val_compare_and_swap(p, 8, 9);
	CHECK(old == 7 && *p == 7);
	return 0;
}

SEC("socket")
int atomics(struct __sk_buff *skb)
{
	__u64 v64 = 0;
	__u32 v32 = 0;
	int err;

	err = atomics64(&v64, 0x0f);
	if (err)
		return err;
	err = atomics32(&v32, 0x0f);
	if (err)
		return err;
	/* the caller sees the callee's final values */
	CHECK(v64 == 7 && v32 == 7);
	return 0;
}

char _license[] SEC("license") = "GPL";
