// SPDX-License-Identifier: MIT
/*
 * fentry.c - BTF-typed tracing programs (BPF_PROG_TYPE_TRACING): fentry and fexit on
 * bpf_fentry_test1(int a), the kernel's own test target (net/bpf/test_run.c), attach
 * target resolved by name in the kernel's BTF at load time. The context is the
 * function's arguments as u64 (fexit: then the return value). Results go to .bss.
 *
 * This machine's kernel refuses tracing programs (EPERM at BPF_PROG_LOAD). Elsewhere:
 * BPF_PROG_TEST_RUN of either program calls bpf_fentry_test1(1) (returns 2), after
 * which entry_arg == 1 and exit_ret == 2.
 */
#include "bpfkit_helpers.h"

__u64 entry_arg;
__u64 exit_ret;

SEC("fentry/bpf_fentry_test1")
int on_entry(__u64 *ctx)
{
	entry_arg = (int)ctx[0];
	return 0;
}

SEC("fexit/bpf_fentry_test1")
int on_exit(__u64 *ctx)
{
	exit_ret = (int)ctx[1];
	return 0;
}

char _license[] SEC("license") = "GPL";
