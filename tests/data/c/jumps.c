// SPDX-License-Identifier: MIT
/*
 * jumps.c - every conditional jump: ==, !=, unsigned and signed <, <=, >, >=, against a
 * register and an immediate, in 64-bit (BPF_JMP) and 32-bit (BPF_JMP32, -mcpu=v3) width,
 * each taken and not taken; plus unconditional jumps from if/else chains.
 * -mcpu=v1 has no jlt/jle/jslt/jsle: clang swaps operands or adjusts the immediate,
 * which is what the v1 object shows. Self-checking.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

static __noinline int cmp64(__u64 a, __u64 b)
{
	volatile __u64 x = a, y = b;
	volatile __s64 sx = (__s64)a, sy = (__s64)b;

	/* a = 5, b = 0xfffffffffffffffb (-5 signed) */
	CHECK(x != y);
	CHECK(!(x == y));
	CHECK(x < y);
	CHECK(x <= y);
	CHECK(!(x > y));
	CHECK(!(x >= y));
	CHECK(y > x);
	CHECK(y >= x);
	CHECK(sx > sy);
	CHECK(sx >= sy);
	CHECK(!(sx < sy));
	CHECK(!(sx <= sy));
	CHECK(sy < sx);
	CHECK(sy <= sx);
	/* immediates */
	CHECK(x == 5);
	CHECK(x != 6);
	CHECK(x > 4);
	CHECK(x >= 5);
	CHECK(x < 6);
	CHECK(x <= 5);
	CHECK(!(x > 5));
	CHECK(!(x < 5));
	CHECK(sy < -4);
	CHECK(sy <= -5);
	CHECK(sy > -6);
	CHECK(sy >= -5);
	CHECK(!(sy > -5));
	CHECK(!(sy < -5));
	CHECK(sx > 0);
	CHECK(sx >= 0);
	CHECK(sy < 0);
	CHECK(sy <= 0);
	return 0;
}

static __noinline int cmp32(__u32 a, __u32 b)
{
	volatile __u32 x = a, y = b;
	volatile __s32 sx = (__s32)a, sy = (__s32)b;

	/* a = 5, b = 0xfffffffb (-5 signed) */
	CHECK(x != y);
	CHECK(!(x == y));
	CHECK(x < y);
	CHECK(x <= y);
	CHECK(!(x > y));
	CHECK(!(x >= y));
	CHECK(y > x);
	CHECK(y >= x);
	CHECK(sx > sy);
	CHECK(sx >= sy);
	CHECK(!(sx < sy));
	CHECK(!(sx <= sy));
	CHECK(sy < sx);
	CHECK(sy <= sx);
	CHECK(x == 5);
	CHECK(x != 6);
	CHECK(x > 4);
	CHECK(x >= 5);
	CHECK(x < 6);
	CHECK(x <= 5);
	CHECK(!(x > 5));
	CHECK(!(x < 5));
	CHECK(sy < -4);
	CHECK(sy <= -5);
	CHECK(sy > -6);
	CHECK(sy >= -5);
	CHECK(!(sy > -5));
	CHECK(!(sy < -5));
	CHECK(sx > 0);
	CHECK(sy < 0);
	return 0;
}

/*
 * Forms clang never chooses: it canonicalises `x >= 5` to `x > 4`, and so on, and never
 * compares two registers with != on this input. TAKEN() runs one hand-written jump on
 * fixed registers (w1/w2 are the low halves of r1/r2) and yields 1 if it was taken.
 */
#define TAKEN(jump)                                                                    \
	({                                                                             \
		register __u64 t_ asm("r3");                                          \
		asm volatile("r3 = 1\n\t" jump " goto +1\n\tr3 = 0"                    \
			     : "=r"(t_)                                               \
			     : "r"(a), "r"(b));                                       \
		t_;                                                                    \
	})

static __noinline int handwritten(__u64 x, __u64 y)
{
	register __u64 a asm("r1") = x; /* 5 */
	register __u64 b asm("r2") = y; /* 0xfffffffb00000007: low half 7, high half -5 */

	CHECK(TAKEN("if r1 != r2"));
	CHECK(!TAKEN("if r1 != r1"));
	CHECK(TAKEN("if r1 >= 5"));
	CHECK(!TAKEN("if r1 >= 6"));
	CHECK(TAKEN("if r1 <= 5"));
	CHECK(!TAKEN("if r1 <= 4"));
	CHECK(TAKEN("if r1 s>= 5"));
	CHECK(!TAKEN("if r2 s>= -5"));  /* as s64, r2 is far below -5 */
	CHECK(TAKEN("if r2 s<= -1"));
	CHECK(!TAKEN("if r1 s<= 4"));
	CHECK(TAKEN("if w1 != w2"));
	CHECK(TAKEN("if w2 >= 7"));
	CHECK(!TAKEN("if w2 >= 8"));
	CHECK(TAKEN("if w2 <= 7"));
	CHECK(TAKEN("if w2 s>= 7"));
	CHECK(!TAKEN("if w2 s<= 6"));
	CHECK(TAKEN("if w1 s<= w2"));
	CHECK(TAKEN("if w2 s> w1"));
	return 0;
}

/* a dense if/else chain: unconditional jumps (ja) join the arms */
static __noinline int classify(__s64 v)
{
	int r;

	if (v < -100)
		r = 1;
	else if (v < 0)
		r = 2;
	else if (v == 0)
		r = 3;
	else if (v <= 100)
		r = 4;
	else
		r = 5;
	return r * 10 + (v & 1);
}

SEC("socket")
int jumps(struct __sk_buff *skb)
{
	int r;

	r = cmp64(5, (__u64)-5);
	if (r)
		return r;
	r = cmp32(5, (__u32)-5);
	if (r)
		return r;
	r = handwritten(5, 0xfffffffb00000007ULL);
	if (r)
		return r;
	CHECK(classify(-1000) == 10);
	CHECK(classify(-3) == 21);
	CHECK(classify(0) == 30);
	CHECK(classify(7) == 41);
	CHECK(classify(1000) == 50);
	return 0;
}

char _license[] SEC("license") = "GPL";
