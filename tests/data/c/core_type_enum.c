// SPDX-License-Identifier: MIT
/*
 * core_type_enum.c - CO-RE type and enum relocations:
 *   TYPE_EXISTS, TYPE_SIZE   (__builtin_preserve_type_info)
 *   TYPE_ID_LOCAL, TYPE_ID_TARGET  (__builtin_btf_type_id)
 *   ENUMVAL_EXISTS, ENUMVAL_VALUE  (__builtin_preserve_enum_value)
 * against kernel types through "___local" flavours: struct list_head (two pointers: 16
 * bytes everywhere), typedef pid_t (4 bytes), struct task_struct, a struct that exists
 * nowhere, and the UAPI enum bpf_map_type whose values are fixed (ARRAY = 2,
 * RINGBUF = 27). Local enumerator values are deliberately wrong: the loader must patch
 * in the kernel's.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

struct list_head___local {
	struct list_head___local *next;
	struct list_head___local *prev;
};

struct task_struct___local {
	int pid;
};

struct bpfkit_no_such_type___local {
	int x;
};

typedef int pid_t___local;

enum bpf_map_type___local {
	BPF_MAP_TYPE_ARRAY___local = 1000,
	BPF_MAP_TYPE_RINGBUF___local = 1001,
	BPF_MAP_TYPE_BPFKIT_NONE___local = 1002,
};

#define TYPE_INFO(type, kind) __builtin_preserve_type_info(*(typeof(type) *)0, kind)
#define TYPE_ID(type, kind) __builtin_btf_type_id(*(typeof(type) *)0, kind)
#define ENUM_INFO(type, value, kind) __builtin_preserve_enum_value(*(typeof(type) *)value, kind)

SEC("socket")
int core_type_enum(struct __sk_buff *skb)
{
	volatile __u32 id;

	CHECK(TYPE_INFO(struct list_head___local, BPF_TYPE_EXISTS) == 1);
	CHECK(TYPE_INFO(struct list_head___local, BPF_TYPE_SIZE) == 16);
	CHECK(TYPE_INFO(pid_t___local, BPF_TYPE_EXISTS) == 1);
	CHECK(TYPE_INFO(pid_t___local, BPF_TYPE_SIZE) == 4);
	CHECK(TYPE_INFO(struct task_struct___local, BPF_TYPE_SIZE) > 1000);
	CHECK(TYPE_INFO(struct bpfkit_no_such_type___local, BPF_TYPE_EXISTS) == 0);

	id = TYPE_ID(struct task_struct___local, BPF_TYPE_ID_LOCAL);
	CHECK(id > 0);
	id = TYPE_ID(struct task_struct___local, BPF_TYPE_ID_TARGET);
	CHECK(id > 0);

	CHECK(ENUM_INFO(enum bpf_map_type___local, BPF_MAP_TYPE_ARRAY___local, BPF_ENUMVAL_EXISTS) == 1);
	CHECK(ENUM_INFO(enum bpf_map_type___local, BPF_MAP_TYPE_ARRAY___local, BPF_ENUMVAL_VALUE) == 2);
	CHECK(ENUM_INFO(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local, BPF_ENUMVAL_VALUE) == 27);
	CHECK(ENUM_INFO(enum bpf_map_type___local, BPF_MAP_TYPE_BPFKIT_NONE___local,
			BPF_ENUMVAL_EXISTS) == 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
