// SPDX-License-Identifier: MIT
/*
 * license_proprietary.c - a non-GPL license string with a call to a GPL-only helper
 * (bpf_probe_read_kernel). The kernel refuses the load with EINVAL and the verifier log
 * line "cannot call GPL-restricted function from non-GPL compatible program".
 */
#include "bpfkit_helpers.h"

SEC("raw_tp/sys_enter")
int license_proprietary(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx->args[0]);
	return v == 0;
}

char _license[] SEC("license") = "Proprietary";
