// SPDX-License-Identifier: MIT
/*
 * license_version.c - the two metadata sections: "license" (a NUL-terminated string,
 * passed to BPF_PROG_LOAD; "GPL" unlocks GPL-only helpers) and "version" (a u32, once
 * required for kprobes, ignored by current kernels; 0x060000 = 6.0.0 here).
 * The program calls a GPL-only helper (bpf_trace_printk is gpl_only) to show the
 * license reaches the kernel; see license_proprietary.c for the refused twin.
 *
 * Run: BPF_PROG_TEST_RUN with ctx_in = 16 zero bytes (raw_tp test runs take no packet);
 * returns 0. The program writes one line to the trace buffer when it runs.
 */
#include "bpfkit_helpers.h"

SEC("raw_tp/sys_enter")
int license_version(struct bpf_raw_tracepoint_args *ctx)
{
	char msg[] = "bpfkit license_version\n";

	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x060000;
