"""The ISA conformance vectors in the live kernel (BPF_PROG_TEST_RUN through an XDP harness): the kernel
must still give the verdicts recorded in tests/data/conformance_kernel_verdicts.json (pass with the
recorded 64-bit r0 and memory, rejected for the recorded reason, or n/a)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit.isa.conformance import Vector


def _runner() -> ModuleType:
    name = "conformance_runner"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cr = _runner()
VECTORS: list[Vector] = cr.all_vectors()
RECORDED = cr.read_verdicts()

pytestmark = pytest.mark.kernel


def test_every_vector_has_a_recorded_verdict() -> None:
    if not VECTORS:
        pytest.skip(f"conformance corpus not found at {cr.CORPUS}")
    assert sorted(RECORDED) == sorted(v.name for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_kernel_gives_the_recorded_verdict(vector: Vector) -> None:
    got = cr.run_in_kernel(vector).to_json()
    assert got == RECORDED[vector.name], f"recorded on Linux {cr.recorded_kernel()}"


def test_passing_vectors_match_the_suite() -> None:
    """Every vector the kernel runs gives the suite's expected result (no recorded mismatch)."""
    if not VECTORS:
        pytest.skip(f"conformance corpus not found at {cr.CORPUS}")
    expected = {v.name: v.result for v in VECTORS}
    for name, rec in RECORDED.items():
        if "r0" in rec:
            assert rec["verdict"] == cr.PASS and int(rec["r0"], 16) == expected[name], name


def test_harness_returns_the_full_64_bit_r0() -> None:
    """The harness reads r0 from the packet: the high half survives (test_run's retval is 32-bit)."""
    from bpfkit.isa.conformance import parse_vector

    v = parse_vector("-- asm\nlddw %r0, 0x123456789abcdef0\nexit\n-- result\n0x123456789abcdef0\n", "wide")
    got = cr.run_in_kernel(v)
    assert (got.verdict, got.r0) == (cr.PASS, 0x123456789ABCDEF0)


def test_helper_calls_are_not_applicable() -> None:
    from bpfkit.isa.conformance import parse_vector

    v = parse_vector("-- asm\nmov %r1, 1\ncall 5\nexit\n-- result\n0x0\n", "helper")
    got = cr.run_in_kernel(v)
    assert got.verdict == cr.NOT_APPLICABLE and "helper 5" in got.reason


def test_verifier_reason_is_one_line() -> None:
    from bpfkit.isa.conformance import parse_vector

    v = parse_vector("-- asm\nldxdw %r0, [%r1+8]\nexit\n-- mem\n00 01 02 03\n-- result\n0x0\n", "oob")
    got = cr.run_in_kernel(v)
    assert got.verdict == cr.REJECTED
    assert "\n" not in got.reason and "outside of the packet" in got.reason
