"""The result of BPF_PROG_TEST_RUN (re-exported by `bpfkit.kernel.programs`; use it from there).

A module of its own because `bpfkit trace` test-runs only the programs of BEGIN and END probes, and each
record class created is a measurable share of its start-up.
"""

from __future__ import annotations

from bpfkit._records import record


@record
class TestRunResult:
    """The result of BPF_PROG_TEST_RUN: return value, output packet/context, mean run time."""

    __test__ = False  # not a pytest class

    retval: int
    data_out: bytes
    ctx_out: bytes
    duration_ns: int
