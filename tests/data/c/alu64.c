// SPDX-License-Identifier: MIT
/*
 * alu64.c - every 64-bit ALU operation (BPF_ALU64), with register and immediate
 * operands, self-checking.
 *
 * Inputs are volatile stack slots so clang cannot fold the arithmetic; results go to a
 * volatile slot so the operation itself is emitted. The expected value of each check is
 * the same expression on the literal constants, folded by the compiler with C semantics,
 * which equal BPF semantics for unsigned operands, in-range shifts and non-zero divisors.
 * A few forms clang never emits (sub with an immediate) are written in inline asm.
 * LLVM 14 has no BPF_MOD and no BPF_JSET: `%` compiles to div/mul/sub and neither
 * opcode appears in any fixture (llvm-objdump 14 would print <unknown>).
 *
 * Run: BPF_PROG_TEST_RUN with any packet of at least 14 bytes; returns 0, or the line of
 * the first failing check.
 */
#include "bpfkit_helpers.h"

#define X 0x8765432112345678ULL /* high bit set: exercises arithmetic shift */
#define Y 0x0000000000000013ULL /* 19 */
#define Z 0xfffffffffffffff0ULL /* -16 */

SEC("socket")
int alu64(struct __sk_buff *skb)
{
	volatile __u64 x = X, y = Y, z = Z;
	volatile __u64 r;
	volatile __s64 s;

	/* register operand */
	r = x + y;  CHECK(r == X + Y);
	r = x - y;  CHECK(r == X - Y);
	r = x * y;  CHECK(r == X * Y);
	r = x / y;  CHECK(r == X / Y);
	r = x % y;  CHECK(r == X % Y);
	r = x | y;  CHECK(r == (X | Y));
	r = x & z;  CHECK(r == (X & Z));
	r = x ^ z;  CHECK(r == (X ^ Z));
	r = x << (y & 63);  CHECK(r == X << (Y & 63));
	r = x >> (y & 63);  CHECK(r == X >> (Y & 63));
	s = (__s64)x >> (y & 63);  CHECK(s == (__s64)X >> (Y & 63));
	s = (__s64)z >> (y & 63);  CHECK(s == -1);

	/* immediate operand */
	r = x + 1000;  CHECK(r == X + 1000);
	r = x + -7;  CHECK(r == X - 7);
	r = x * 7;  CHECK(r == X * 7);
	r = x * 1000003;  CHECK(r == X * 1000003);
	r = x / 1000;  CHECK(r == X / 1000);
	r = x % 1000;  CHECK(r == X % 1000);
	r = x | 0x0f0f;  CHECK(r == (X | 0x0f0f));
	r = x & 0x7fff0000;  CHECK(r == (X & 0x7fff0000));
	r = x ^ 0x5555;  CHECK(r == (X ^ 0x5555));
	r = x << 13;  CHECK(r == X << 13);
	r = x >> 13;  CHECK(r == X >> 13);
	s = (__s64)x >> 13;  CHECK(s == (__s64)X >> 13);
	s = (__s64)z >> 2;  CHECK(s == -4);

	/* negation and moves */
	r = -x;  CHECK(r == -X);
	{
		__u64 t = x;
		asm volatile("%[t] = -%[t]" : [t] "+r"(t));
		CHECK(t == -X);
		t = x;
		asm volatile("%[t] -= 5" : [t] "+r"(t));
		CHECK(t == X - 5);
		t = x;
		asm volatile("%[t] -= -5" : [t] "+r"(t));
		CHECK(t == X + 5);
		t = x;
		asm volatile("%[t] = %[y]" : [t] "+r"(t) : [y] "r"(Y));
		CHECK(t == Y);
		asm volatile("%[t] = -1" : [t] "=r"(t));
		CHECK(t == ~0ULL);
	}
	/* compound expression: mixes the operations in one dependency chain */
	r = ((x * 3 + y) ^ (x >> 7)) - (z & 0xffff);
	CHECK(r == ((X * 3 + Y) ^ (X >> 7)) - (Z & 0xffff));
	return 0;
}

char _license[] SEC("license") = "GPL";
