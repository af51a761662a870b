"""The CPUs the kernel knows about: per-CPU map values have one slot per *possible* CPU."""

from __future__ import annotations

import functools

from bpfkit.errors import KernelError


def parse_cpu_list(text: str) -> list[int]:
    """CPU numbers of a kernel cpu list such as ``0-3,8,10-11``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"not a cpu list: {text.strip()!r}") from None
        cpus.extend(range(first, last + 1))
    return cpus


def _read(path: str) -> list[int]:
    try:
        with open(path) as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError) as e:
        raise KernelError(f"read({path})", getattr(e, "errno", None) or 5, str(e)) from None


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs (/sys/devices/system/cpu/possible), the kernel's num_possible_cpus()."""
    return len(_read("/sys/devices/system/cpu/possible"))


@functools.cache
def online_cpus() -> tuple[int, ...]:
    """The online CPU numbers (/sys/devices/system/cpu/online)."""
    return tuple(_read("/sys/devices/system/cpu/online"))
