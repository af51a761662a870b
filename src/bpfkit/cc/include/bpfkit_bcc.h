/* bpfkit: BCC's C dialect mapped onto BTF-defined maps without BCC's source rewriter.
 *
 * Each BPF_HASH/BPF_ARRAY/... declares the map (ELF symbol and BTF name = the map's name, through an
 * asm label) plus a constant table of typed inline accessors under the same C name, so BCC's
 * `counts.increment(key)` / `counts.lookup(&key)` / `events.perf_submit(ctx, &d, sizeof(d))` compile to
 * direct helper calls (the optimizer folds the table away; bpfkit always compiles with -O2).
 * Not supported: `map.increment(key, n)` (use `map.atomic_add(key, n)`), `map.call`, `map.get_stackid`,
 * `bpf_probe_read` on implicit dereferences (BCC's rewriter turns `p->a->b` into probe reads; write
 * BPF_CORE_READ(p, a, b) instead), kprobe__/kretprobe__ function-name attaching.
 */
#ifndef __BPFKIT_BCC_H
#define __BPFKIT_BCC_H

#define __BK_MAPDEF(_type, _name, _k, _v, _n) \
	struct { __uint(type, _type); __type(key, _k); __type(value, _v); __uint(max_entries, _n); } \
		__bk_map_##_name __asm__(#_name) SEC(".maps")

#define __BK_KV_OPS(_name, _k, _v) \
	static __always_inline _v *__bk_##_name##_lookup(_k *k) { return bpf_map_lookup_elem(&__bk_map_##_name, k); } \
	static __always_inline long __bk_##_name##_update(_k *k, _v *v) \
		{ return bpf_map_update_elem(&__bk_map_##_name, k, v, 0 /* BPF_ANY */); } \
	static __always_inline long __bk_##_name##_insert(_k *k, _v *v) \
		{ return bpf_map_update_elem(&__bk_map_##_name, k, v, 1 /* BPF_NOEXIST */); } \
	static __always_inline long __bk_##_name##_delete(_k *k) { return bpf_map_delete_elem(&__bk_map_##_name, k); } \
	static __always_inline _v *__bk_##_name##_lookup_or_try_init(_k *k, _v *init) { \
		_v *p = bpf_map_lookup_elem(&__bk_map_##_name, k); \
		if (p) return p; \
		bpf_map_update_elem(&__bk_map_##_name, k, init, 1 /* BPF_NOEXIST */); \
		return bpf_map_lookup_elem(&__bk_map_##_name, k); } \
	static __always_inline void __bk_##_name##_atomic_add(_k key, _v n) { \
		_v *p = bpf_map_lookup_elem(&__bk_map_##_name, &key); \
		if (p) { __sync_fetch_and_add(p, n); return; } \
		bpf_map_update_elem(&__bk_map_##_name, &key, &n, 1 /* BPF_NOEXIST */); \
		p = bpf_map_lookup_elem(&__bk_map_##_name, &key); \
		if (p) __sync_fetch_and_add(p, 0); } \
	static __always_inline void __bk_##_name##_increment(_k key) { __bk_##_name##_atomic_add(key, 1); } \
	static const struct { \
		_v *(*lookup)(_k *); long (*update)(_k *, _v *); long (*insert)(_k *, _v *); \
		long (*delete)(_k *); _v *(*lookup_or_try_init)(_k *, _v *); _v *(*lookup_or_init)(_k *, _v *); \
		void (*increment)(_k); void (*atomic_increment)(_k); void (*atomic_add)(_k, _v); \
	} _name __asm__("__bk_ops_" #_name) = { __bk_##_name##_lookup, __bk_##_name##_update, \
		__bk_##_name##_insert, __bk_##_name##_delete, __bk_##_name##_lookup_or_try_init, \
		__bk_##_name##_lookup_or_try_init, __bk_##_name##_increment, __bk_##_name##_increment, \
		__bk_##_name##_atomic_add }

#define __BK_TABLE(_type, _name, _k, _v, _n) __BK_MAPDEF(_type, _name, _k, _v, _n); __BK_KV_OPS(_name, _k, _v)

/* BPF_HASH(name [, key_type [, leaf_type [, size]]]): defaults u64, u64, 10240 as in BCC. */
#define __BK_HASH1(t, n) __BK_TABLE(t, n, u64, u64, 10240)
#define __BK_HASH2(t, n, k) __BK_TABLE(t, n, k, u64, 10240)
#define __BK_HASH3(t, n, k, v) __BK_TABLE(t, n, k, v, 10240)
#define __BK_HASH4(t, n, k, v, s) __BK_TABLE(t, n, k, v, s)
#define BPF_HASH(...) __BK_CAT(__BK_HASH, __BK_NARG(__VA_ARGS__))(BPF_MAP_TYPE_HASH, __VA_ARGS__)
#define BPF_PERCPU_HASH(...) __BK_CAT(__BK_HASH, __BK_NARG(__VA_ARGS__))(BPF_MAP_TYPE_PERCPU_HASH, __VA_ARGS__)
#define BPF_LRU_HASH(...) __BK_CAT(__BK_HASH, __BK_NARG(__VA_ARGS__))(BPF_MAP_TYPE_LRU_HASH, __VA_ARGS__)

/* BPF_ARRAY(name [, leaf_type [, size]]): int keys; defaults u64, 10240 as in BCC. */
#define __BK_ARRAY1(t, n) __BK_TABLE(t, n, int, u64, 10240)
#define __BK_ARRAY2(t, n, v) __BK_TABLE(t, n, int, v, 10240)
#define __BK_ARRAY3(t, n, v, s) __BK_TABLE(t, n, int, v, s)
#define BPF_ARRAY(...) __BK_CAT(__BK_ARRAY, __BK_NARG(__VA_ARGS__))(BPF_MAP_TYPE_ARRAY, __VA_ARGS__)
#define BPF_PERCPU_ARRAY(...) __BK_CAT(__BK_ARRAY, __BK_NARG(__VA_ARGS__))(BPF_MAP_TYPE_PERCPU_ARRAY, __VA_ARGS__)

/* BPF_HISTOGRAM(name [, key_type [, size]]): a hash of counts, keyed by bucket (e.g. bpf_log2l(x)). */
#define __BK_HIST1(n) __BK_TABLE(BPF_MAP_TYPE_HASH, n, int, u64, 64)
#define __BK_HIST2(n, k) __BK_TABLE(BPF_MAP_TYPE_HASH, n, k, u64, 64)
#define __BK_HIST3(n, k, s) __BK_TABLE(BPF_MAP_TYPE_HASH, n, k, u64, s)
#define BPF_HISTOGRAM(...) __BK_CAT(__BK_HIST, __BK_NARG(__VA_ARGS__))(__VA_ARGS__)

/* BPF_PERF_OUTPUT(name): name.perf_submit(ctx, data, size). */
#define BPF_PERF_OUTPUT(_name) \
	struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(int)); \
		__uint(value_size, sizeof(int)); } __bk_map_##_name __asm__(#_name) SEC(".maps"); \
	static __always_inline long __bk_##_name##_perf_submit(void *ctx, void *data, u32 size) \
		{ return bpf_perf_event_output(ctx, &__bk_map_##_name, 0xffffffffULL /* BPF_F_CURRENT_CPU */, data, size); } \
	static const struct { long (*perf_submit)(void *, void *, u32); } _name __asm__("__bk_ops_" #_name) = \
		{ __bk_##_name##_perf_submit }

/* BPF_RINGBUF_OUTPUT(name, page_count): name.ringbuf_output(data, size, flags), ringbuf_reserve(size),
 * ringbuf_submit(ptr, flags), ringbuf_discard(ptr, flags). */
#define BPF_RINGBUF_OUTPUT(_name, _pages) \
	struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, (_pages) * 4096); } \
		__bk_map_##_name __asm__(#_name) SEC(".maps"); \
	static __always_inline long __bk_##_name##_output(void *data, u64 size, u64 flags) \
		{ return bpf_ringbuf_output(&__bk_map_##_name, data, size, flags); } \
	static __always_inline void *__bk_##_name##_reserve(u64 size) \
		{ return bpf_ringbuf_reserve(&__bk_map_##_name, size, 0); } \
	static __always_inline void __bk_##_name##_submit(void *p, u64 flags) { bpf_ringbuf_submit(p, flags); } \
	static __always_inline void __bk_##_name##_discard(void *p, u64 flags) { bpf_ringbuf_discard(p, flags); } \
	static const struct { long (*ringbuf_output)(void *, u64, u64); void *(*ringbuf_reserve)(u64); \
		void (*ringbuf_submit)(void *, u64); void (*ringbuf_discard)(void *, u64); } \
		_name __asm__("__bk_ops_" #_name) = { __bk_##_name##_output, __bk_##_name##_reserve, \
		__bk_##_name##_submit, __bk_##_name##_discard }

/* TRACEPOINT_PROBE(category, event) { ... args->field ... }: bpfkit generates the args structure
 * `struct tracepoint__<category>__<event>` from the tracepoint's format file before this source. */
#define TRACEPOINT_PROBE(cat, ev) \
	SEC("tracepoint/" #cat "/" #ev) int tracepoint__##cat##__##ev(struct tracepoint__##cat##__##ev *args)
/* RAW_TRACEPOINT_PROBE(event) { ... ctx->args[i] ... } */
#define RAW_TRACEPOINT_PROBE(ev) \
	SEC("raw_tracepoint/" #ev) int raw_tracepoint__##ev(struct bpf_raw_tracepoint_args *ctx)

/* BCC's helper spellings. */
#define bpf_probe_read(dst, size, src) bpf_probe_read_kernel(dst, size, src)
#define bpf_log2l(x) (63 - __builtin_clzll((x) | 1))
#define bpf_log2(x) (31 - __builtin_clz((unsigned int)(x) | 1))
#define lock_xadd(ptr, val) ((void)__sync_fetch_and_add(ptr, val))
/* bpf_trace_printk("fmt", args...) without the size argument, as BCC's rewriter allows (inside the
 * expansion the name is not expanded again, so bpf_printk reaches the helper itself). */
#define bpf_trace_printk(fmt, ...) bpf_printk(fmt, ##__VA_ARGS__)

#endif /* __BPFKIT_BCC_H */
