// SPDX-License-Identifier: MIT
/*
 * maps_btf.c - BTF-defined maps in the ".maps" section:
 *   hash_map     HASH, u32 -> u64, map_flags = BPF_F_NO_PREALLOC
 *   array_map    ARRAY, u32 -> struct pair, 4 entries
 *   percpu_map   PERCPU_ARRAY, u32 -> u64, 1 entry
 *   lru_map      LRU_HASH, u64 -> u32
 *   queue_map    QUEUE, no key, u32 values
 *   bpfkit_fixture_pinned  HASH with pinning = PIN_BY_NAME (libbpf pins it at
 *                <pin root>/bpfkit_fixture_pinned, default root /sys/fs/bpf)
 *   inner_a, inner_b  ARRAY u32 -> u32 with 1 entry, the inner maps of
 *   outer_map    ARRAY_OF_MAPS (key_size via __uint), initial values {inner_a, inner_b}
 * Map references compile to lddw with an R_BPF_64_64 relocation against the map symbol.
 * The program uses every map and checks the results; each run leaves the maps in the
 * same state, so it can be run repeatedly.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

struct pair {
	__u64 a;
	__u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct pair);
} array_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u32);
} lru_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} queue_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, BPFKIT_PIN_BY_NAME);
} bpfkit_fixture_pinned SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__uint(key_size, sizeof(__u32));
	__array(values, struct inner_map);
} outer_map SEC(".maps") = {
	.values = { [0] = &inner_a, [1] = &inner_b },
};

SEC("socket")
int maps_btf(struct __sk_buff *skb)
{
	__u32 k = 1, v32;
	__u64 k64 = 0xabcdef0123ULL, v64 = 100;
	__u64 *p64;
	__u32 *p32;
	struct pair *pp;
	void *inner;

	/* hash: insert, read back, delete, gone */
	CHECK(bpf_map_update_elem(&hash_map, &k, &v64, BPF_ANY) == 0);
	p64 = bpf_map_lookup_elem(&hash_map, &k);
	CHECK(p64 && *p64 == 100);
	CHECK(bpf_map_update_elem(&hash_map, &k, &v64, BPF_NOEXIST) != 0);
	CHECK(bpf_map_delete_elem(&hash_map, &k) == 0);
	CHECK(bpf_map_lookup_elem(&hash_map, &k) == NULL);

	/* array: every index exists, past the end does not */
	k = 3;
	pp = bpf_map_lookup_elem(&array_map, &k);
	CHECK(pp != NULL);
	pp->a = 7;
	pp->b = pp->a * 6;
	pp = bpf_map_lookup_elem(&array_map, &k);
	CHECK(pp && pp->b == 42);
	k = 4;
	CHECK(bpf_map_lookup_elem(&array_map, &k) == NULL);

	/* per-cpu array: this CPU's slot */
	k = 0;
	p64 = bpf_map_lookup_elem(&percpu_map, &k);
	CHECK(p64 != NULL);
	*p64 += 1;

	/* LRU hash with a 64-bit key */
	v32 = 5;
	CHECK(bpf_map_update_elem(&lru_map, &k64, &v32, BPF_ANY) == 0);
	p32 = bpf_map_lookup_elem(&lru_map, &k64);
	CHECK(p32 && *p32 == 5);

	/* queue: FIFO, no key */
	v32 = 7;
	CHECK(bpf_map_push_elem(&queue_map, &v32, BPF_ANY) == 0);
	v32 = 8;
	CHECK(bpf_map_push_elem(&queue_map, &v32, BPF_ANY) == 0);
	CHECK(bpf_map_pop_elem(&queue_map, &v32) == 0 && v32 == 7);
	CHECK(bpf_map_peek_elem(&queue_map, &v32) == 0 && v32 == 8);
	CHECK(bpf_map_pop_elem(&queue_map, &v32) == 0 && v32 == 8);
	CHECK(bpf_map_pop_elem(&queue_map, &v32) != 0);

	/* pinned map: an ordinary hash map to the program */
	k = 9;
	v32 = 99;
	CHECK(bpf_map_update_elem(&bpfkit_fixture_pinned, &k, &v32, BPF_ANY) == 0);
	p32 = bpf_map_lookup_elem(&bpfkit_fixture_pinned, &k);
	CHECK(p32 && *p32 == 99);

	/* map in map: slots 0 and 1 were filled at load time, slot 2 is empty */
	k = 0;
	inner = bpf_map_lookup_elem(&outer_map, &k);
	CHECK(inner != NULL);
	p32 = bpf_map_lookup_elem(inner, &k);
	CHECK(p32 != NULL);
	*p32 = 42;
	k = 1;
	inner = bpf_map_lookup_elem(&outer_map, &k);
	CHECK(inner != NULL);
	k = 0;
	p32 = bpf_map_lookup_elem(inner, &k);
	CHECK(p32 && *p32 == 0); /* inner_b, not inner_a */
	k = 2;
	CHECK(bpf_map_lookup_elem(&outer_map, &k) == NULL);
	/* inner_a seen directly holds what was written through the outer map */
	k = 0;
	p32 = bpf_map_lookup_elem(&inner_a, &k);
	CHECK(p32 && *p32 == 42);
	return 0;
}

char _license[] SEC("license") = "GPL";
