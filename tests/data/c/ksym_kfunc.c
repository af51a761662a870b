// SPDX-License-Identifier: MIT
/*
 * ksym_kfunc.c - typed "__ksym" externs that are kernel functions (kfuncs): the loader
 * finds each FUNC by name in the kernel's BTF and rewrites the call into
 * src_reg=BPF_PSEUDO_KFUNC_CALL with imm = the FUNC's BTF id (kernel >= 5.13; these
 * kfuncs >= 6.2). bpf_cast_to_kern_ctx returns the kernel's struct sk_buff behind the
 * UAPI context; its `len` is read through a CO-RE-relocated local definition and must
 * equal the UAPI skb->len.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* just the member we read; the kernel's offset comes from its BTF at load time */
struct sk_buff___local {
	unsigned int len;
} __core;

SEC("tc")
int ksym_kfunc(struct __sk_buff *skb)
{
	struct sk_buff___local *kskb;

	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	kskb = bpf_cast_to_kern_ctx(skb);
	CHECK(kskb->len == skb->len);
	return 0;
}

char _license[] SEC("license") = "GPL";
