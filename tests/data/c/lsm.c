// SPDX-License-Identifier: MIT
/*
 * lsm.c - a BPF LSM program (BPF_PROG_TYPE_LSM) on the file_open hook: the context is
 * the hook's arguments as u64 (struct file *file) and a non-zero return denies. This
 * one allows everything and only counts calls. It exists to be parsed and compiled:
 * bpfkit's rules forbid loading LSM programs in tests, and this machine's kernel refuses
 * them anyway (EPERM).
 */
#include "bpfkit_helpers.h"

__u64 file_opens;

SEC("lsm/file_open")
int allow_file_open(__u64 *ctx)
{
	__sync_fetch_and_add(&file_opens, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
