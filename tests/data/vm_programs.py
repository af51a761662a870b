"""Small verifier-accepted programs (llvm assembly dialect) whose memory accesses bpfkit's verifier proves
safe, shared by the engines' tests: the JIT (tests/unit/jit/test_proven_safe.py) and the translated
engine (tests/unit/vm/test_translate.py) both compile them with and without the proof and must drop
checks without changing results.

Test data, not a package: load it with `runpy.run_path`.
"""

from __future__ import annotations

STACK = """
    r2 = r10
    r2 += -16
    r3 = 0x1122334455667788 ll
    *(u64 *)(r2 + 0) = r3
    *(u32 *)(r2 + 8) = 7
    r4 = *(u8 *)(r2 + 1)
    r5 = *(u32 *)(r2 + 8)
    r0 = r4
    r0 += r5
    exit
"""
"""Stack stores and loads of several sizes through a copy of r10."""

PACKET = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 34
    r0 = 1
    if r4 > r3 goto out
    r5 = *(u16 *)(r2 + 12)
    if r5 != 8 goto out
    r6 = *(u8 *)(r2 + 23)
    r7 = *(u32 *)(r2 + 26)
    *(u8 *)(r2 + 0) = r6
    r0 = r7
    r0 += r6
out:
    exit
"""
"""XDP: packet loads and a store after one bounds check (data + 34 <= data_end). Slots 0 and 1 read the
context (never proven safe); the packet accesses are slots 6, 8, 9 and 10."""

IPV4 = bytes(12) + b"\x08\x00" + bytes(range(40, 60)) + bytes(10)
"""A packet PACKET runs through to the end: ethertype IPv4 (the 16-bit load reads 8), 46 bytes."""
