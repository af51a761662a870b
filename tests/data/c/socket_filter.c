// SPDX-License-Identifier: MIT
/*
 * socket_filter.c - a socket filter (BPF_PROG_TYPE_SOCKET_FILTER): the return value is
 * how many bytes of the packet to keep (0 drops it). It reads UAPI __sk_buff fields and
 * copies headers with bpf_skb_load_bytes (socket filters have no direct packet access).
 * IPv4 UDP packets are kept whole; everything else is dropped. Classic LD_ABS/LD_IND
 * loads are in ld_abs.c. skb->data is the network header (as on an AF_INET socket, and
 * under BPF_PROG_TEST_RUN, which pulls the Ethernet header).
 *
 * Run: BPF_PROG_TEST_RUN
 *   "udp4" packet -> 46 (skb->len from the IPv4 header on)
 *   "arp" packet  -> 0
 */
#include "net_headers.h"

SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	struct iphdr ip;

	if (skb->protocol != bpfkit_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return 0;
	if (ip.version != 4 || ip.protocol != IPPROTO_UDP)
		return 0;
	return skb->len;
}

char _license[] SEC("license") = "GPL";
