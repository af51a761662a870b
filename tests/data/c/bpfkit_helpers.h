/* SPDX-License-Identifier: MIT */
/*
 * bpfkit_helpers.h - the only header bpfkit's BPF C test fixtures include.
 *
 * Self-contained on purpose: it includes no system header, so the fixtures build with
 * `clang -target bpf` on any machine without kernel or libbpf headers installed, and the
 * committed objects do not depend on what happens to be in /usr/include.
 *
 * Every number here is a kernel ABI fact: helper ids follow the order of
 * __BPF_FUNC_MAPPER in include/uapi/linux/bpf.h, map types follow enum bpf_map_type,
 * flags follow the BPF_F_* enums, context layouts follow the UAPI structs.
 * The map-definition macros follow the BTF map convention that libbpf reads: an
 * integer attribute is encoded as the element count of a pointed-to array, a type
 * attribute as the pointee of a pointer member.
 */
#ifndef BPFKIT_HELPERS_H
#define BPFKIT_HELPERS_H

/* ---- fixed-width integers (linux/types.h names) ---- */
typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef signed short __s16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* ---- attributes ---- */
#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __noinline __attribute__((noinline))
#define __weak __attribute__((weak))
#define __hidden __attribute__((visibility("hidden")))
/* externs resolved by the loader: kernel config values and kernel symbols */
#define __kconfig __attribute__((section(".kconfig")))
#define __ksym __attribute__((section(".ksyms")))
/* CO-RE: record field accesses of a struct as relocatable */
#define __core __attribute__((preserve_access_index))

/* ---- BTF-defined map attributes ---- */
#define __uint(attr, n) int (*attr)[n]
#define __type(attr, t) typeof(t) *attr
#define __array(attr, t) typeof(t) *attr[]

/* pinning attribute values understood by the loader */
#define BPFKIT_PIN_NONE 0
#define BPFKIT_PIN_BY_NAME 1

/* legacy SEC("maps") definition: five u32 fields, in this order */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

/* ---- enum bpf_map_type ---- */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PROG_ARRAY 3
#define BPF_MAP_TYPE_PERF_EVENT_ARRAY 4
#define BPF_MAP_TYPE_PERCPU_HASH 5
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_LRU_PERCPU_HASH 10
#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_MAP_TYPE_HASH_OF_MAPS 13
#define BPF_MAP_TYPE_QUEUE 22
#define BPF_MAP_TYPE_STACK 23
#define BPF_MAP_TYPE_RINGBUF 27

/* ---- map_flags (BPF_MAP_CREATE) ---- */
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_F_NO_COMMON_LRU (1U << 1)
#define BPF_F_NUMA_NODE (1U << 2)
#define BPF_F_RDONLY (1U << 3)
#define BPF_F_WRONLY (1U << 4)
#define BPF_F_ZERO_SEED (1U << 6)
#define BPF_F_RDONLY_PROG (1U << 7)
#define BPF_F_WRONLY_PROG (1U << 8)
#define BPF_F_MMAPABLE (1U << 10)
#define BPF_F_INNER_MAP (1U << 12)

/* ---- update flags (bpf_map_update_elem) ---- */
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

/* ---- program return codes ---- */
#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* ---- CO-RE relocation kinds (enum bpf_core_relo_kind) ---- */
#define BPF_FIELD_BYTE_OFFSET 0
#define BPF_FIELD_BYTE_SIZE 1
#define BPF_FIELD_EXISTS 2
#define BPF_FIELD_SIGNED 3
#define BPF_FIELD_LSHIFT_U64 4
#define BPF_FIELD_RSHIFT_U64 5
/* second argument of __builtin_btf_type_id */
#define BPF_TYPE_ID_LOCAL 0
#define BPF_TYPE_ID_TARGET 1
/* second argument of __builtin_preserve_type_info */
#define BPF_TYPE_EXISTS 0
#define BPF_TYPE_SIZE 1
/* second argument of __builtin_preserve_enum_value */
#define BPF_ENUMVAL_EXISTS 0
#define BPF_ENUMVAL_VALUE 1

/*
 * CORE_READ(dst, expr): copy the kernel memory named by the relocatable
 * expression `expr` into `dst` with bpf_probe_read_kernel. The address
 * computation is wrapped in __builtin_preserve_access_index so every member
 * offset on the way becomes a CO-RE relocation.
 */
#define CORE_READ(dst, expr) \
	bpf_probe_read_kernel(&(dst), sizeof(dst), __builtin_preserve_access_index(&(expr)))

/* ---- context layouts (UAPI) ---- */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* context of raw_tracepoint programs: the tracepoint's arguments as u64 */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* ---- helper functions: the call immediate is the helper id ---- */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, __u32 size_of_buf) = (void *)16;
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)25;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static __u64 (*bpf_get_current_task)(void) = (void *)35;
static long (*bpf_map_push_elem)(void *map, const void *value, __u64 flags) = (void *)87;
static long (*bpf_map_pop_elem)(void *map, void *value) = (void *)88;
static long (*bpf_map_peek_elem)(void *map, void *value) = (void *)89;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)115;
static long (*bpf_seq_printf)(void *m, const char *fmt, __u32 fmt_size, const void *data, __u32 data_len) = (void *)126;
static long (*bpf_seq_write)(void *m, const void *data, __u32 len) = (void *)127;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static void (*bpf_ringbuf_discard)(void *data, __u64 flags) = (void *)133;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)134;
static void *(*bpf_per_cpu_ptr)(const void *percpu_ptr, __u32 cpu) = (void *)153;
static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)154;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;
static long (*bpf_strncmp)(const char *s1, __u32 s1_sz, const char *s2) = (void *)182;

/*
 * Classic packet loads (BPF_LD | BPF_ABS / BPF_IND): clang exposes them as LLVM
 * intrinsics that a declaration can bind to by assembler name. The offset is
 * relative to the start of the packet and the result is in host byte order.
 */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/* self-checking programs return 0 on success and the failing source line otherwise */
#define CHECK(cond) \
	do { \
		if (!(cond)) \
			return __LINE__; \
	} while (0)

#endif /* BPFKIT_HELPERS_H */
