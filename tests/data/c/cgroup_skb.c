// SPDX-License-Identifier: MIT
/*
 * cgroup_skb.c - cgroup socket buffer programs (BPF_PROG_TYPE_CGROUP_SKB), ingress and
 * egress attach points; return 1 to allow, 0 to drop. The packet they see starts at the
 * network header (no Ethernet header). Ingress allows everything and counts bytes in a
 * .bss variable; egress drops UDP datagrams to port 5678.
 *
 * Run: BPF_PROG_TEST_RUN
 *   count_ingress: "udp4" -> 1 (ingress_bytes grows by skb->len)
 *   drop_egress:   "udp4" -> 0,  "arp" -> 1
 */
#include "net_headers.h"

__u64 ingress_bytes;

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&ingress_bytes, skb->len);
	return 1;
}

SEC("cgroup_skb/egress")
int drop_egress(struct __sk_buff *skb)
{
	struct iphdr ip;
	struct udphdr udp;

	if (skb->protocol != bpfkit_htons(ETH_P_IP))
		return 1;
	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return 1;
	if (ip.protocol != IPPROTO_UDP)
		return 1;
	if (bpf_skb_load_bytes(skb, ip.ihl * 4, &udp, sizeof(udp)) < 0)
		return 1;
	return udp.dest == bpfkit_htons(FIXTURE_UDP_PORT) ? 0 : 1;
}

char _license[] SEC("license") = "GPL";
