"""Flag groups of `linux/bpf.h` that are `#define`s, so the kernel's BTF cannot carry them.

Hand-written from `/usr/include/linux/bpf.h` (Linux 6.1 UAPI). Members added after 6.1 are marked
with the release that added them; their values are from the same header in newer kernels. The
anonymous-enum flag groups (map, update, redirect, ... flags) are generated, in `enums`.
"""

from __future__ import annotations

from ._cenum import CFlag, c_source

__all__ = ["AttachFlags", "LogLevel", "ProgLoadFlags", "QueryFlags", "TestRunFlags"]


@c_source(None, "BPF_F_")
class ProgLoadFlags(CFlag):
    """Flags of BPF_PROG_LOAD (`bpf_attr.prog_flags`).

    C: #define BPF_F_*.
    """

    STRICT_ALIGNMENT = 1 << 0  # BPF_F_STRICT_ALIGNMENT
    ANY_ALIGNMENT = 1 << 1  # BPF_F_ANY_ALIGNMENT
    TEST_RND_HI32 = 1 << 2  # BPF_F_TEST_RND_HI32
    TEST_STATE_FREQ = 1 << 3  # BPF_F_TEST_STATE_FREQ
    SLEEPABLE = 1 << 4  # BPF_F_SLEEPABLE
    XDP_HAS_FRAGS = 1 << 5  # BPF_F_XDP_HAS_FRAGS
    XDP_DEV_BOUND_ONLY = 1 << 6  # BPF_F_XDP_DEV_BOUND_ONLY, Linux 6.3
    TEST_REG_INVARIANTS = 1 << 7  # BPF_F_TEST_REG_INVARIANTS, Linux 6.8
    TOKEN_FD = 1 << 16  # BPF_F_TOKEN_FD, Linux 6.9 (same bit as MapFlags.TOKEN_FD)


@c_source(None, "BPF_F_")
class AttachFlags(CFlag):
    """Flags of BPF_PROG_ATTACH/DETACH (`attach_flags`) and of tcx/netkit link and query ordering.

    C: #define BPF_F_*. ALLOW_OVERRIDE and ALLOW_MULTI are for cgroup programs; BEFORE, AFTER, ID
    and LINK place a program relative to another in a multi-program attach point (Linux 6.6).
    """

    ALLOW_OVERRIDE = 1 << 0  # BPF_F_ALLOW_OVERRIDE
    ALLOW_MULTI = 1 << 1  # BPF_F_ALLOW_MULTI
    REPLACE = 1 << 2  # BPF_F_REPLACE
    BEFORE = 1 << 3  # BPF_F_BEFORE, Linux 6.6
    AFTER = 1 << 4  # BPF_F_AFTER, Linux 6.6
    ID = 1 << 5  # BPF_F_ID, Linux 6.6
    LINK = 1 << 13  # BPF_F_LINK, Linux 6.6 (same bit as MapFlags.LINK)


@c_source(None, "BPF_F_QUERY_")
class QueryFlags(CFlag):
    """Flags of BPF_PROG_QUERY (`query.query_flags`).

    C: #define BPF_F_QUERY_*.
    """

    EFFECTIVE = 1 << 0  # BPF_F_QUERY_EFFECTIVE


@c_source(None, "BPF_F_TEST_")
class TestRunFlags(CFlag):
    """Flags of BPF_PROG_TEST_RUN (`test.flags`).

    C: #define BPF_F_TEST_*.
    """

    __test__ = False  # not a pytest test class despite the name

    RUN_ON_CPU = 1 << 0  # BPF_F_TEST_RUN_ON_CPU
    XDP_LIVE_FRAMES = 1 << 1  # BPF_F_TEST_XDP_LIVE_FRAMES
    SKB_CHECKSUM_COMPLETE = 1 << 2  # BPF_F_TEST_SKB_CHECKSUM_COMPLETE


@c_source(None, "BPF_LOG_")
class LogLevel(CFlag):
    """Bits of BPF_PROG_LOAD/BPF_BTF_LOAD `log_level`: what the verifier writes to the log buffer.

    C: #define BPF_LOG_* in the kernel's include/linux/bpf_verifier.h (ABI, but not in a UAPI header).
    """

    LEVEL1 = 1  # BPF_LOG_LEVEL1: the verifier's decisions at branch points, and errors
    LEVEL2 = 2  # BPF_LOG_LEVEL2: every instruction and register state
    STATS = 4  # BPF_LOG_STATS: verification statistics
    FIXED = 8  # BPF_LOG_FIXED, Linux 6.4: old truncating log, not the rotating one
