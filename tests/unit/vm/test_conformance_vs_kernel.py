"""The VM against the kernel on the ISA conformance vectors: for every vector the kernel runs (recorded
in tests/data/conformance_kernel_verdicts.json by tools/conformance_kernel.py, re-checked against the
live kernel by tests/kernel/test_conformance_kernel.py), both engines give the kernel's 64-bit r0 and
leave the memory as the kernel left it. Pure: reads the recorded verdicts, needs no root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.vm import ENGINES, Vm, conformance_helpers

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpora" / "bpf-conformance" / "tests"
VERDICTS: dict[str, dict[str, Any]] = json.loads(
    (ROOT / "tests" / "data" / "conformance_kernel_verdicts.json").read_text())["vectors"]
VECTORS: list[Vector] = load_vectors(CORPUS) if CORPUS.is_dir() else []
RAN = [v for v in VECTORS if "r0" in VERDICTS.get(v.name, {})]


def test_the_kernel_ran_most_vectors() -> None:
    if not VECTORS:
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    assert len(RAN) >= 290, f"only {len(RAN)} vectors have a kernel result"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("vector", RAN, ids=[v.name for v in RAN])
def test_vm_matches_kernel(vector: Vector, engine: str) -> None:
    kernel = VERDICTS[vector.name]
    vm = Vm(helpers=conformance_helpers(), engine=engine)  # type: ignore[arg-type]
    result = vm.load(vector.instructions(), name=vector.name).test_run(data=vector.mem)
    assert result.retval == int(kernel["r0"], 16)
    assert result.data_out.hex() == kernel.get("mem_out", "")
