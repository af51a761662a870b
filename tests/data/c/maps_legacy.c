// SPDX-License-Identifier: MIT
/*
 * maps_legacy.c - a map defined the pre-BTF way: a struct bpf_map_def variable in the
 * "maps" section (five u32: type, key_size, value_size, max_entries, map_flags), the
 * map's name being the symbol's name. The object also has BTF, but the map has no
 * BTF key/value types.
 * libbpf >= 1.0 rejects this section outright ("legacy map definitions in SEC(maps)
 * are not supported"); bpfkit's loader may still accept it.
 *
 * Run (where loadable): BPF_PROG_TEST_RUN with any packet; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

struct bpf_map_def SEC("maps") legacy_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
	.map_flags = 0,
};

SEC("socket")
int maps_legacy(struct __sk_buff *skb)
{
	__u32 k = 2;
	__u64 *v;

	v = bpf_map_lookup_elem(&legacy_counts, &k);
	CHECK(v != NULL);
	__sync_fetch_and_add(v, 1);
	k = 4;
	CHECK(bpf_map_lookup_elem(&legacy_counts, &k) == NULL);
	return 0;
}

char _license[] SEC("license") = "GPL";
