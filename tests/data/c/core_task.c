// SPDX-License-Identifier: MIT
/*
 * core_task.c - CO-RE field relocations against a local struct that differs from the
 * kernel's: the local task_struct___local declares only four members, in a different
 * order than the kernel (comm first, pid after tgid), under a "___local" flavour that
 * the loader strips to find the kernel's struct task_struct. Each member access is
 * recorded (preserve_access_index) and the loader rewrites its offset to the kernel's.
 * Also covered: a pointer member followed to a second struct (real_parent), an array
 * member (comm), and the explicit __builtin_preserve_access_index form on a struct
 * without the attribute.
 * The values are read from the current task with bpf_probe_read_kernel and compared
 * with helpers that know the truth (bpf_get_current_pid_tgid, bpf_get_current_comm).
 *
 * Run: BPF_PROG_TEST_RUN with ctx_in = 16 zero bytes (raw_tp test runs execute in the
 * calling task); returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

struct task_struct___local {
	char comm[16];
	struct task_struct___local *real_parent;
	int tgid;
	int pid;
} __core;

/* no preserve_access_index attribute: relocations only where the builtin is used */
struct task_struct___plain {
	int pid;
};

SEC("raw_tp/sys_enter")
int core_task(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct___local *task = (void *)bpf_get_current_task();
	struct task_struct___local *parent = NULL;
	struct task_struct___plain *plain = (void *)task;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	char comm[16], want[16];
	int pid = -1, tgid = -1, ppid = -1, pid2 = -1;
	int i;

	CHECK(task != NULL);
	CHECK(CORE_READ(pid, task->pid) == 0);
	CHECK(CORE_READ(tgid, task->tgid) == 0);
	CHECK(pid == (__u32)pid_tgid);
	CHECK(tgid == pid_tgid >> 32);

	CHECK(bpf_probe_read_kernel(&pid2, sizeof(pid2),
				    __builtin_preserve_access_index(&plain->pid)) == 0);
	CHECK(pid2 == pid);

	CHECK(CORE_READ(comm, task->comm) == 0);
	CHECK(bpf_get_current_comm(want, sizeof(want)) == 0);
	for (i = 0; i < 16; i++) {
		CHECK(comm[i] == want[i]);
		if (!want[i])
			break;
	}

	CHECK(CORE_READ(parent, task->real_parent) == 0);
	CHECK(parent != NULL);
	CHECK(CORE_READ(ppid, parent->tgid) == 0);
	CHECK(ppid >= 0 && ppid != tgid);
	return 0;
}

char _license[] SEC("license") = "GPL";
