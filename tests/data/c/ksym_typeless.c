// SPDX-License-Identifier: MIT
/*
 * ksym_typeless.c - typeless "__ksym" externs (declared `const void`): the loader looks
 * the names up in /proc/kallsyms and patches the address into a plain lddw. _stext is
 * the start of kernel text, always listed; bpf_fentry_test1 is a function symbol.
 * (bpf_prog_active is not in kallsyms without CONFIG_KALLSYMS_ALL, hence _stext.)
 * The address check is x86-64 specific: kernel text lies in the top 2 GiB.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

extern const void _stext __ksym;
extern const void bpf_fentry_test1 __ksym;

SEC("socket")
int ksym_typeless(struct __sk_buff *skb)
{
	__u64 text = (__u64)&_stext;
	__u64 fn = (__u64)&bpf_fentry_test1;

	CHECK(text >> 31 == 0x1ffffffffULL); /* 0xffffffff8....... */
	CHECK(fn > text);
	return 0;
}

char _license[] SEC("license") = "GPL";
