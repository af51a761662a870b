// SPDX-License-Identifier: MIT
/*
 * ringbuf.c - a BPF_MAP_TYPE_RINGBUF map (max_entries = data size, a power of two and a
 * multiple of the page size) and the three ways to write to it. One run appends exactly
 * three records, in this order:
 *   1. reserved + submitted: struct event { magic, seq, len, tag = "reserve" } (24 bytes)
 *   2. reserved + discarded: 8 bytes, flagged discarded in its header; readers skip it
 *   3. copied with bpf_ringbuf_output: struct event with tag = "output" (24 bytes)
 * magic = 0xb9f0ca11, seq = the run number starting at 1 (from a .bss counter),
 * len = skb->len (46 for the "udp4" packet: a socket filter test run starts at the IPv4
 * header). Each record is an 8-byte header then the data, padded to 8 bytes.
 * Before returning, bpf_ringbuf_query checks that data is pending.
 *
 * Run: BPF_PROG_TEST_RUN with the "udp4" packet; returns 0 or a line number, then
 * userspace reads records 1 and 3 from the ring.
 */
#include "bpfkit_helpers.h"

#define EVENT_MAGIC 0xb9f0ca11
#define BPF_RB_AVAIL_DATA 0

struct event {
	__u32 magic;
	__u32 seq;
	__u64 len;
	char tag[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u32 runs;

SEC("socket")
int ringbuf(struct __sk_buff *skb)
{
	struct event *e, out = {};
	__u64 *scratch;
	__u32 seq = __sync_fetch_and_add(&runs, 1) + 1;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return __LINE__;
	e->magic = EVENT_MAGIC;
	e->seq = seq;
	e->len = skb->len;
	__builtin_memcpy(e->tag, "reserve", 8);
	bpf_ringbuf_submit(e, 0);

	scratch = bpf_ringbuf_reserve(&events, sizeof(*scratch), 0);
	if (!scratch)
		return __LINE__;
	*scratch = 0xdeadbeef;
	bpf_ringbuf_discard(scratch, 0);

	out.magic = EVENT_MAGIC;
	out.seq = seq;
	out.len = skb->len;
	__builtin_memcpy(out.tag, "output", 7);
	CHECK(bpf_ringbuf_output(&events, &out, sizeof(out), 0) == 0);
	CHECK(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
