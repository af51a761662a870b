/* SPDX-License-Identifier: MIT */
/*
 * net_headers.h - the packet headers the network fixtures parse (layouts from the
 * Ethernet, IPv4 and UDP specifications; multi-byte fields in network byte order)
 * and the test packet every network fixture documents its results against.
 */
#ifndef BPFKIT_NET_HEADERS_H
#define BPFKIT_NET_HEADERS_H

#include "bpfkit_helpers.h"

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IPPROTO_UDP 17

/* network byte order of a 16-bit constant on a little-endian target */
#define bpfkit_htons(x) ((__u16)__builtin_bswap16(x))

struct ethhdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__be16 h_proto;
} __attribute__((packed));

struct iphdr {
	__u8 ihl : 4, version : 4;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__u16 check;
};

/* the "udp4" test packet goes to this UDP port */
#define FIXTURE_UDP_PORT 5678

#endif /* BPFKIT_NET_HEADERS_H */
