// SPDX-License-Identifier: MIT
/*
 * core_field_info.c - CO-RE field-information relocations (__builtin_preserve_field_info):
 * FIELD_EXISTS, FIELD_BYTE_SIZE, FIELD_SIGNED, FIELD_BYTE_OFFSET, FIELD_LSHIFT_U64,
 * FIELD_RSHIFT_U64, on members of the kernel's struct task_struct seen through a local
 * "___info" flavour: a signed int (pid), an unsigned int (flags), a char array (comm),
 * a 1-bit unsigned bitfield (sched_reset_on_fork), and a member the kernel does not
 * have (exists = 0). A local struct with no kernel counterpart at all also gives
 * exists = 0. The compiler writes the local answers into the instructions; the loader
 * must replace them with the kernel's. The checks hold for any x86-64 kernel.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

/* local layout deliberately unlike the kernel's: different sizes, order and offsets */
struct task_struct___info {
	char comm[8];
	unsigned char flags;
	unsigned int sched_reset_on_fork : 3;
	short pid;
	long bpfkit_no_such_member;
} __core;

struct bpfkit_no_such_struct {
	int x;
} __core;

#define INFO(expr, kind) __builtin_preserve_field_info(expr, kind)

SEC("socket")
int core_field_info(struct __sk_buff *skb)
{
	struct task_struct___info *t = NULL;
	struct bpfkit_no_such_struct *n = NULL;
	volatile __u32 off, shl, shr;

	CHECK(INFO(t->pid, BPF_FIELD_EXISTS) == 1);
	CHECK(INFO(t->pid, BPF_FIELD_BYTE_SIZE) == 4);   /* kernel: pid_t = int */
	CHECK(INFO(t->pid, BPF_FIELD_SIGNED) == 1);
	off = INFO(t->pid, BPF_FIELD_BYTE_OFFSET);
	CHECK(off >= 64 && off < 16384 && off % 4 == 0);

	CHECK(INFO(t->flags, BPF_FIELD_BYTE_SIZE) == 4); /* kernel: unsigned int */
	CHECK(INFO(t->flags, BPF_FIELD_SIGNED) == 0);
	CHECK(INFO(t->comm, BPF_FIELD_BYTE_SIZE) == 16); /* TASK_COMM_LEN */

	CHECK(INFO(t->sched_reset_on_fork, BPF_FIELD_EXISTS) == 1);
	CHECK(INFO(t->sched_reset_on_fork, BPF_FIELD_SIGNED) == 0);
	shl = INFO(t->sched_reset_on_fork, BPF_FIELD_LSHIFT_U64);
	shr = INFO(t->sched_reset_on_fork, BPF_FIELD_RSHIFT_U64);
	CHECK(shr == 63);                 /* 64 - bit size 1 */
	CHECK(shl >= 32 && shl <= 63);    /* within a 4-byte load on a little-endian CPU */
	off = INFO(t->sched_reset_on_fork, BPF_FIELD_BYTE_OFFSET);
	CHECK(off % INFO(t->sched_reset_on_fork, BPF_FIELD_BYTE_SIZE) == 0);

	CHECK(INFO(t->bpfkit_no_such_member, BPF_FIELD_EXISTS) == 0);
	CHECK(INFO(n->x, BPF_FIELD_EXISTS) == 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
