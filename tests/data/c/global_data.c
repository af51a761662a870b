// SPDX-License-Identifier: MIT
/*
 * global_data.c - global variables in every section the loader turns into an internal
 * array map (one entry, value = the section's bytes), accessed through lddw with
 * src_reg=BPF_PSEUDO_MAP_VALUE:
 *   .data            initialised, writable         data_init, data_index
 *   .bss             zero-initialised, writable    bss_zero, bss_runs
 *   .rodata          constant (map frozen)         rodata_table, rodata_magic
 *   .rodata.str1.1   string literals               "bpfkit" (passed to bpf_strncmp)
 *   .data.foo        custom writable section       foo_counter
 *   .rodata.foo      custom read-only section      foo_table
 * bss_runs and foo_counter count the runs (userspace can read them back: after N runs
 * on one load both equal N); everything else is checked by the program.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

__u64 data_init = 0x1122334455667788ULL;
__u32 data_index = 3;
__u64 bss_zero;
__u64 bss_runs;
const __u32 rodata_table[8] = { 10, 11, 12, 13, 14, 15, 16, 17 };
const __u32 rodata_magic = 0xfeedbeef;
__u64 foo_counter SEC(".data.foo") = 0;
const __u16 foo_table[4] SEC(".rodata.foo") = { 0x100, 0x200, 0x300, 0x400 };

SEC("socket")
int global_data(struct __sk_buff *skb)
{
	char buf[8] = { 'b', 'p', 'f', 'k', 'i', 't', 0, 0 };
	__u32 i = data_index; /* a run-time index: clang cannot fold the table reads */

	CHECK(data_init == 0x1122334455667788ULL);
	CHECK(bss_zero == 0);
	CHECK(*(volatile const __u32 *)&rodata_magic == 0xfeedbeef);
	if (i >= 4)
		return __LINE__;
	CHECK(rodata_table[i] == 13);
	CHECK(rodata_table[i + 4] == 17);
	CHECK(foo_table[i] == 0x400);
	/* the literal lives in .rodata.str1.1; bpf_strncmp wants read-only map memory */
	CHECK(bpf_strncmp(buf, sizeof(buf), "bpfkit") == 0);
	CHECK(bpf_strncmp(buf, sizeof(buf), "bpfkiu") < 0);

	/* writable sections keep their values between runs */
	__sync_fetch_and_add(&bss_runs, 1);
	foo_counter++;
	data_index = 3;
	return 0;
}

char _license[] SEC("license") = "GPL";
