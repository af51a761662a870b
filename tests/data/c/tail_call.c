// SPDX-License-Identifier: MIT
/*
 * tail_call.c - a BPF_MAP_TYPE_PROG_ARRAY whose slots are filled at load time from the
 * map's BTF "values" initialiser (slot 0 = tail_target, slot 1 empty), and
 * bpf_tail_call into it. A successful tail call never returns to the caller; a call
 * through an empty slot falls through.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes:
 *   tail_caller: returns 0 (the value of tail_target), or a line number if the empty
 *                slot did not fall through or slot 0 did not jump.
 *   tail_target: returns 0 when run directly.
 */
#include "bpfkit_helpers.h"

SEC("socket")
int tail_target(struct __sk_buff *skb)
{
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} jump_table SEC(".maps") = {
	.values = { [0] = (void *)&tail_target },
};

SEC("socket")
int tail_caller(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jump_table, 1); /* empty slot: continues here */
	bpf_tail_call(skb, &jump_table, 0); /* does not return */
	return __LINE__;
}

char _license[] SEC("license") = "GPL";
