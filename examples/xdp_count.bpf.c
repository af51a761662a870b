// xdp_count: count packets and bytes arriving on an interface, then let them through. libbpf-style C.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct totals { u64 packets; u64 bytes; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, struct totals);
	__uint(max_entries, 1);
} stats SEC(".maps");

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	u32 key = 0;
	struct totals *t = bpf_map_lookup_elem(&stats, &key);
	if (t) {
		__sync_fetch_and_add(&t->packets, 1);
		__sync_fetch_and_add(&t->bytes, ctx->data_end - ctx->data);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
