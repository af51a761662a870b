// SPDX-License-Identifier: MIT
/*
 * raw_tp.c - a raw tracepoint program (BPF_PROG_TYPE_RAW_TRACEPOINT) for sys_enter,
 * whose arguments are (struct pt_regs *regs, long id): the context is an array of u64.
 * It counts syscalls by id (ids >= 512 are folded into slot 511) in an array map.
 *
 * Run: BPF_PROG_TEST_RUN with ctx_in = two u64 {0, 39} (little-endian); returns 0 and
 * syscall_counts[39] goes up by one (kernel >= 5.10 for raw_tp test runs). Attached, it
 * counts real system calls.
 */
#include "bpfkit_helpers.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
} syscall_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = ctx->args[1];
	__u32 slot = id < 511 ? id : 511;
	__u64 *count = bpf_map_lookup_elem(&syscall_counts, &slot);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
