// SPDX-License-Identifier: MIT
/*
 * iter.c - a BPF iterator over tasks (SEC("iter/task"): BPF_PROG_TYPE_TRACING with
 * expected attach type BPF_TRACE_ITER, attach target = the kernel's bpf_iter_task).
 * The context is struct bpf_iter__task { meta, task }, typed by the kernel's BTF; the
 * local definitions below are CO-RE relocated against it. For each task the program
 * writes "tgid pid\n" with bpf_seq_printf; task == NULL marks the end.
 *
 * Not test-runnable: create a link (BPF_LINK_CREATE) and an iterator fd
 * (BPF_ITER_CREATE), then read() text lines, one per task.
 */
#include "bpfkit_helpers.h"

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __core;

struct task_struct {
	int pid;
	int tgid;
} __core;

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __core;

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	static const char fmt[] = "%d %d\n";
	__u64 args[2];

	if (!task)
		return 0;
	args[0] = task->tgid;
	args[1] = task->pid;
	bpf_seq_printf(seq, fmt, sizeof(fmt), args, sizeof(args));
	return 0;
}

char _license[] SEC("license") = "GPL";
