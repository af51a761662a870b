// SPDX-License-Identifier: MIT
/*
 * alu32.c - every 32-bit ALU operation (BPF_ALU, w registers at -mcpu=v3), with register
 * and immediate operands, self-checking. At -mcpu=v1/v2 the same source compiles to
 * 64-bit operations plus masking, which is what the v1/v2 objects are for.
 *
 * Same scheme as alu64.c: volatile inputs and outputs, expected values folded by the
 * compiler from the literal constants. The inline asm block binds values to fixed
 * registers (clang 14 has no "w" asm constraint) and writes the 32-bit forms clang does
 * not choose itself; it also checks that a 32-bit result zero-extends into the 64-bit
 * register.
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0 or a line number.
 */
#include "bpfkit_helpers.h"

#define X 0x87654321U /* high bit set: exercises arithmetic shift */
#define Y 0x00000013U /* 19 */
#define Z 0xfffffff0U /* -16 */

SEC("socket")
int alu32(struct __sk_buff *skb)
{
	volatile __u32 x = X, y = Y, z = Z;
	volatile __u32 r;
	volatile __s32 s;

	/* register operand */
	r = x + y;  CHECK(r == X + Y);
	r = x - y;  CHECK(r == X - Y);
	r = x * y;  CHECK(r == X * Y);
	r = x / y;  CHECK(r == X / Y);
	r = x % y;  CHECK(r == X % Y);
	r = x | y;  CHECK(r == (X | Y));
	r = x & z;  CHECK(r == (X & Z));
	r = x ^ z;  CHECK(r == (X ^ Z));
	r = x << (y & 31);  CHECK(r == X << (Y & 31));
	r = x >> (y & 31);  CHECK(r == X >> (Y & 31));
	s = (__s32)x >> (y & 31);  CHECK(s == (__s32)X >> (Y & 31));
	s = (__s32)z >> (y & 31);  CHECK(s == -1);

	/* immediate operand */
	r = x + 1000;  CHECK(r == X + 1000);
	r = x + -7;  CHECK(r == X - 7);
	r = x * 7;  CHECK(r == X * 7);
	r = x * 1000003;  CHECK(r == X * 1000003);
	r = x / 1000;  CHECK(r == X / 1000);
	r = x | 0x0f0f;  CHECK(r == (X | 0x0f0f));
	r = x & 0x7fff0000;  CHECK(r == (X & 0x7fff0000));
	r = x ^ 0x5555;  CHECK(r == (X ^ 0x5555));
	r = x << 13;  CHECK(r == X << 13);
	r = x >> 13;  CHECK(r == X >> 13);
	s = (__s32)x >> 13;  CHECK(s == (__s32)X >> 13);
	s = (__s32)z >> 2;  CHECK(s == -4);
	r = -x;  CHECK(r == -X);

	/* forms written by hand; results checked in full 64-bit width */
	{
		register __u64 a asm("r1") = 0xaaaaaaaa00000000ULL | x;
		register __u64 b asm("r2") = y;
		asm volatile("w1 = -w1" : "+r"(a));
		CHECK(a == (__u32)-X);
		a = 0xaaaaaaaa00000000ULL | x;
		asm volatile("w1 -= 5" : "+r"(a));
		CHECK(a == X - 5);
		a = 0xaaaaaaaa00000000ULL | x;
		asm volatile("w1 -= w2" : "+r"(a) : "r"(b));
		CHECK(a == X - Y);
		a = 0xaaaaaaaa00000000ULL | x;
		asm volatile("w1 = w1" : "+r"(a));
		CHECK(a == X);
		asm volatile("w1 = -1" : "=r"(a));
		CHECK(a == 0xffffffffULL);
		a = 0xaaaaaaaa00000000ULL | x;
		asm volatile("w1 s>>= 4" : "+r"(a));
		CHECK(a == (__u32)((__s32)X >> 4));
		a = 0xaaaaaaaa00000000ULL | x;
		asm volatile("w1 s>>= w2" : "+r"(a) : "r"(b));
		CHECK(a == (__u32)((__s32)X >> Y));
	}
	/* compound expression: mixes the operations in one dependency chain */
	r = ((x * 3 + y) ^ (x >> 7)) - (z & 0xffff);
	CHECK(r == ((X * 3 + Y) ^ (X >> 7)) - (Z & 0xffff));
	return 0;
}

char _license[] SEC("license") = "GPL";
