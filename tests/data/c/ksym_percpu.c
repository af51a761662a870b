// SPDX-License-Identifier: MIT
/*
 * ksym_percpu.c - a typed "__ksym" extern: a kernel per-CPU variable found by name in the
 * kernel's BTF (VAR bpf_prog_active, an int). The loader patches the lddw into
 * src_reg=BPF_PSEUDO_BTF_ID with the VAR's BTF id; the program reaches this CPU's copy
 * with bpf_this_cpu_ptr and a given CPU's with bpf_per_cpu_ptr (kernel >= 5.10).
 * The kernel then needs the variable's address from kallsyms, which lists per-CPU
 * variables only with CONFIG_KALLSYMS_ALL=y: without it the load fails with ENOENT,
 * "ldimm64 failed to find the address for kernel symbol 'bpf_prog_active'".
 * (For a typed ksym that loads everywhere, see ksym_kfunc.c.)
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

extern const int bpf_prog_active __ksym;

SEC("socket")
int ksym_percpu(struct __sk_buff *skb)
{
	const int *mine = bpf_this_cpu_ptr(&bpf_prog_active);
	const int *cpu0 = bpf_per_cpu_ptr(&bpf_prog_active, 0);
	const int *none = bpf_per_cpu_ptr(&bpf_prog_active, 100000);

	CHECK(*mine >= 0 && *mine < 1000); /* a nesting counter */
	CHECK(cpu0 != NULL);               /* CPU 0 always exists */
	CHECK(none == NULL);               /* no such CPU */
	return 0;
}

char _license[] SEC("license") = "GPL";
