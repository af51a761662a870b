// SPDX-License-Identifier: MIT
/*
 * rodata_config.c - "const volatile" configuration variables in .rodata that a loader
 * sets before load (the skeleton pattern): the verifier then sees the final constants
 * and prunes the branches they disable.
 *   cfg_enabled (u32, default 0), cfg_value (u32, default 0x5eed),
 *   cfg_scale (u64, default 0x100000001), cfg_name (char[8], default "default")
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes.
 *   defaults: returns 0 (checks the defaults; line number on failure).
 *   cfg_enabled=1: returns cfg_value * (cfg_scale & 0xff) truncated to u32; for
 *   example cfg_enabled=1, cfg_value=1234 and cfg_scale left at its default -> 1234.
 */
#include "bpfkit_helpers.h"

const volatile __u32 cfg_enabled = 0;
const volatile __u32 cfg_value = 0x5eed;
const volatile __u64 cfg_scale = 0x100000001ULL;
const volatile char cfg_name[8] = "default";

SEC("socket")
int rodata_config(struct __sk_buff *skb)
{
	if (cfg_enabled)
		return cfg_value * (__u32)(cfg_scale & 0xff);
	CHECK(cfg_value == 0x5eed);
	CHECK(cfg_scale == 0x100000001ULL);
	CHECK(cfg_name[0] == 'd' && cfg_name[6] == 't' && cfg_name[7] == 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
