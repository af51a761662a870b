// SPDX-License-Identifier: MIT
/*
 * tracepoint.c - a tracepoint program (BPF_PROG_TYPE_TRACEPOINT) for the syscall entry
 * tracepoint of getpid(2). The context is the tracepoint's raw record as described by
 * tracefs .../events/syscalls/sys_enter_getpid/format: 8 bytes of common fields, then
 * int __syscall_nr at offset 8. The program counts calls per thread group in a hash map
 * keyed by tgid and remembers the syscall number (39 on x86-64).
 *
 * Not test-runnable (tracepoint programs have no BPF_PROG_TEST_RUN): attach it, call
 * getpid() N times, read getpid_calls[own tgid] == N and last_nr[0] == 39.
 */
#include "bpfkit_helpers.h"

struct sys_enter_getpid_record {
	__u16 common_type;
	__u8 common_flags;
	__u8 common_preempt_count;
	__s32 common_pid;
	__s32 syscall_nr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} getpid_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s32);
} last_nr SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(struct sys_enter_getpid_record *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *count;
	__u32 zero = 0;
	__s32 *nr;

	count = bpf_map_lookup_elem(&getpid_calls, &tgid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&getpid_calls, &tgid, &one, BPF_NOEXIST);
	nr = bpf_map_lookup_elem(&last_nr, &zero);
	if (nr)
		*nr = ctx->syscall_nr;
	return 0;
}

char _license[] SEC("license") = "GPL";
