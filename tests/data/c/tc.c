// SPDX-License-Identifier: MIT
/*
 * tc.c - a traffic-control classifier (BPF_PROG_TYPE_SCHED_CLS, SEC("tc")): reads UAPI
 * __sk_buff fields (protocol in network order, len), direct packet access through
 * data/data_end, and writes skb->mark. UDP datagrams to port 5678 are shot; every other
 * packet passes with mark 0x42.
 *
 * Run: BPF_PROG_TEST_RUN
 *   "udp4" packet -> TC_ACT_SHOT (2)
 *   "arp" packet  -> TC_ACT_OK (0)
 */
#include "net_headers.h"

SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;

	skb->mark = 0x42;
	if (skb->protocol != bpfkit_htons(ETH_P_IP))
		return TC_ACT_OK;
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return TC_ACT_OK;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return TC_ACT_OK;
	if (udp->dest == bpfkit_htons(FIXTURE_UDP_PORT) && skb->len >= 42)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
