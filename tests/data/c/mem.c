// SPDX-License-Identifier: MIT
/*
 * mem.c - loads and stores of every size (u8, u16, u32, u64): register stores (STX) and
 * loads (LDX) at positive and negative offsets from a pointer that is not the frame
 * pointer, struct member offsets, and sign extension of narrow signed loads (which
 * before -mcpu=v4 compiles to a shift pair). Self-checking.
 * LLVM 14 never emits BPF_ST (store immediate) and cannot assemble or disassemble it:
 * a constant store is a mov to a register plus STX.
 * Byte-level expectations assume a little-endian target (-target bpf on x86-64 = bpfel).
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

static __noinline int check_buffer(volatile __u8 *mid)
{
	/* mid points at buf[16] of a 32-byte buffer: use offsets -16 .. +15 */
	mid[-16] = 0x11;                               /* u8, negative offset */
	*(volatile __u16 *)(mid - 14) = 0x2233;        /* u16 */
	*(volatile __u32 *)(mid - 12) = 0x44556677;    /* u32 */
	*(volatile __u64 *)(mid - 8) = 0x8899aabbccddeeffULL; /* u64 (lddw first) */
	mid[0] = 0xfe;                                 /* u8, offset 0 */
	*(volatile __u16 *)(mid + 2) = 0xfedc;          /* u16, positive offset */
	*(volatile __u32 *)(mid + 4) = 0xf0e0d0c0;      /* u32, high bit set */
	*(volatile __u64 *)(mid + 8) = 0x7fffffff;      /* u64 from a 32-bit mov */

	CHECK(mid[-16] == 0x11);
	CHECK(mid[-14] == 0x33 && mid[-13] == 0x22);   /* little-endian byte order */
	CHECK(*(volatile __u16 *)(mid - 14) == 0x2233);
	CHECK(*(volatile __u32 *)(mid - 12) == 0x44556677);
	CHECK(*(volatile __u16 *)(mid - 10) == 0x4455);
	CHECK(*(volatile __u64 *)(mid - 8) == 0x8899aabbccddeeffULL);
	CHECK(*(volatile __u32 *)(mid - 4) == 0x8899aabb);
	CHECK(*(volatile __u8 *)(mid - 1) == 0x88);
	CHECK(mid[0] == 0xfe);
	CHECK(*(volatile __u16 *)(mid + 2) == 0xfedc);
	CHECK(*(volatile __u32 *)(mid + 4) == 0xf0e0d0c0);
	CHECK(*(volatile __u64 *)(mid + 8) == 0x7fffffff);
	/* sign extension of narrow loads */
	CHECK(*(volatile __s8 *)(mid + 0) == -2);
	CHECK(*(volatile __s16 *)(mid + 2) == -292);
	CHECK(*(volatile __s32 *)(mid + 4) == (__s32)0xf0e0d0c0);
	/* a negative 64-bit constant from a sign-extended mov imm */
	*(volatile __u64 *)(mid + 8) = -3;
	CHECK(*(volatile __u64 *)(mid + 8) == 0xfffffffffffffffdULL);
	CHECK(*(volatile __u32 *)(mid + 12) == 0xffffffff);
	return 0;
}

struct rec {
	__u8 a;
	__u16 b;
	__u32 c;
	__u64 d;
	__s8 e;
	__s16 f;
	__s32 g;
};

/* struct member accesses: offsets come from the layout, not from pointer arithmetic */
static __noinline int check_struct(volatile struct rec *r)
{
	r->a = 1;
	r->b = 2;
	r->c = 3;
	r->d = 4;
	r->e = -5;
	r->f = -6;
	r->g = -7;
	CHECK(r->a + r->b + r->c + r->d == 10);
	CHECK(r->e + r->f + r->g == -18);
	return 0;
}

SEC("socket")
int mem(struct __sk_buff *skb)
{
	volatile __u8 buf[32];
	volatile struct rec r;
	int i, err;

	for (i = 0; i < 32; i++)
		buf[i] = 0;
	err = check_buffer(&buf[16]);
	if (err)
		return err;
	/* the callee's writes are visible through the caller's frame */
	CHECK(buf[0] == 0x11 && buf[16] == 0xfe && buf[31] == 0xff);
	return check_struct(&r);
}

char _license[] SEC("license") = "GPL";
