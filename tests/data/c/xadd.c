// SPDX-License-Identifier: MIT
/*
 * xadd.c - the only atomic instruction before -mcpu=v3: add without fetch
 * (BPF_STX | BPF_XADD, the encoding BPF_ATOMIC | BPF_ADD reuses), 64 and 32-bit,
 * on the stack. Built at v1, v2 and v3; the encoding is identical in all three.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

static __noinline int add_both(__u64 *p64, __u32 *p32, __u64 v)
{
	__sync_fetch_and_add(p64, v);
	__sync_fetch_and_add(p64, 1000);
	__sync_fetch_and_add(p32, (__u32)v);
	__sync_fetch_and_add(p32, 1000);
	return 0;
}

SEC("socket")
int xadd(struct __sk_buff *skb)
{
	__u64 v64 = 0x100000000ULL;
	__u32 v32 = 0xffffff00U;

	add_both(&v64, &v32, 0x1ff);
	CHECK(v64 == 0x100000000ULL + 0x1ff + 1000);
	CHECK(v32 == (__u32)(0xffffff00U + 0x1ff + 1000)); /* wraps in 32 bits */
	return 0;
}

char _license[] SEC("license") = "GPL";
