"""The eBPF ISA conformance vectors (bpf_conformance) in the JIT: one test per vector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.vm.conformance import run_vector
from bpfkit.vm.jit import jit_supported

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpora" / "bpf-conformance" / "tests"
VECTORS: list[Vector] = load_vectors(CORPUS) if CORPUS.is_dir() else []
VERDICTS = Path(__file__).resolve().parents[2] / "data" / "conformance_kernel_verdicts.json"
KERNEL_REJECTED = frozenset(name for name, v in json.loads(VERDICTS.read_text())["vectors"].items()
                            if v["verdict"] == "rejected")
"""Vectors the kernel's verifier refuses (shifts wider than the operand, callx): ISA tests of the VM,
run with the explicit opt-out `verify=False`; every other vector runs verified for its memory."""

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def test_the_corpus_is_there() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    assert len(VECTORS) == 313


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(vector: Vector) -> None:
    outcome = run_vector(vector, "jit", verify=vector.name not in KERNEL_REJECTED)
    assert outcome.error is None if vector.error is None else outcome.error is not None, outcome.error
    assert outcome.passed, f"r0 = {outcome.retval!r}, expected {vector.result:#x}"
