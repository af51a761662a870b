// SPDX-License-Identifier: MIT
/*
 * perf_event.c - a perf event program (BPF_PROG_TYPE_PERF_EVENT), run on each sample of
 * a perf event it is attached to (e.g. a software cpu-clock event). The context is
 * struct bpf_perf_event_data: the sampled registers (x86-64 struct pt_regs, 21 u64),
 * then sample_period and addr. It counts samples per CPU and keeps the last period.
 *
 * Not test-runnable: attach to a sampling perf event, then read samples[0] (per CPU).
 */
#include "bpfkit_helpers.h"

struct bpf_perf_event_data {
	__u64 regs[21]; /* struct pt_regs on x86-64 */
	__u64 sample_period;
	__u64 addr;
};

struct sample_stats {
	__u64 count;
	__u64 last_period;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_stats);
} samples SEC(".maps");

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u32 zero = 0;
	struct sample_stats *s = bpf_map_lookup_elem(&samples, &zero);

	if (!s)
		return 0;
	s->count++;
	s->last_period = ctx->sample_period;
	return 0;
}

char _license[] SEC("license") = "GPL";
