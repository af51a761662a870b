"""Accept/refuse cases for bpfkit's verifier, each with the reason it must be decided that way.

Each `Case` is a small program in the llvm assembly dialect. `map[id:N]` loads map N of the case's
`maps` (the kernel test rewrites N into the real map's fd). `accept` is bpfkit's required verdict,
`error` a fragment of the refusal message. The kernel test loads every case in the running kernel:
the kernel must refuse every case bpfkit refuses, except those listed in `disagreements.py` (where
bpfkit is stricter than the kernel, with the reason).

The cases are kept by topic in the modules of this package; `CASES` is all of them, in this order.
Test data, not an installed package: the verifier tests import it by path.
"""

from __future__ import annotations

from . import basics, btf_typed, functions, helpers, helpers_extra, packets, ringbuf, scalars
from .common import VMLINUX, Case
from .harness import attach_btf_id, needs_btf, program, target_btf, verify_case, with_fds

CASES: tuple[Case, ...] = (
    *basics.CASES,
    *packets.CASES,
    *helpers.CASES,
    *btf_typed.CASES,
    *ringbuf.CASES,
    *helpers_extra.CASES,
    *scalars.CASES,
    *functions.CASES,
)

__all__ = ["CASES", "VMLINUX", "Case", "attach_btf_id", "needs_btf", "program", "target_btf", "verify_case",
           "with_fds"]
