"""Sizes the kernel enforces that the UAPI headers do not spell out (one place for every layer)."""

PCPU_MIN_UNIT_SIZE = 32 << 10
"""The largest value of a per-CPU map, rounded up to 8 bytes (mm/percpu.c PCPU_MIN_UNIT_SIZE;
kernel/bpf/arraymap.c, hashtab.c: E2BIG past it)."""
