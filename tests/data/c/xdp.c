// SPDX-License-Identifier: MIT
/*
 * xdp.c - an XDP program with direct packet access: bounds checks against data_end,
 * Ethernet -> IPv4 (variable header length) -> UDP. It drops UDP datagrams to port 5678
 * and passes everything else; per-verdict counters live in a per-CPU array
 * (index = XDP action).
 *
 * Run: BPF_PROG_TEST_RUN
 *   "udp4" packet (UDP to 5678)  -> XDP_DROP (1)
 *   "arp" packet                 -> XDP_PASS (2)
 */
#include "net_headers.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} xdp_verdicts SEC(".maps");

static __always_inline int verdict(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpfkit_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	return udp->dest == bpfkit_htons(FIXTURE_UDP_PORT) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 action = verdict(data, data_end);
	__u64 *count = bpf_map_lookup_elem(&xdp_verdicts, &action);

	if (count)
		*count += 1;
	return action;
}

char _license[] SEC("license") = "GPL";
