"""The ISA conformance vectors in raw-memory mode against the kernel's recorded verdicts
(tests/data/conformance_kernel_verdicts.json, from loading each vector in Linux through an XDP
harness): bpfkit must refuse every vector the kernel refused, and accept the ones it ran."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit.errors import BpfkitError, VerificationError
from bpfkit.vm.verifier import verify

RUNNER = Path(__file__).resolve().parents[2] / "kernel" / "conformance_runner.py"


def _runner() -> ModuleType:
    name = "conformance_runner"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, RUNNER)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cr = _runner()
VECTORS = [v for v in cr.all_vectors() if cr.read_verdicts().get(v.name, {}).get("verdict", "n/a") != "n/a"]


@pytest.mark.skipif(not VECTORS, reason="the conformance corpus (../shared/corpora) is not here")
@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_verdict(vector: object) -> None:
    kernel = cr.read_verdicts()[vector.name]  # type: ignore[attr-defined]
    try:
        insns = vector.instructions()  # type: ignore[attr-defined]
    except BpfkitError:
        assert kernel["verdict"] == "rejected"  # not even an instruction stream
        return
    try:
        verify(insns, prog_type=None, mem_size=len(vector.mem))  # type: ignore[attr-defined]
        ours = "accepted"
    except VerificationError as err:
        ours = f"refused: {err.report.message}"
    if kernel["verdict"] == "rejected":
        assert ours.startswith("refused"), f"the kernel refused it ({kernel['reason']}), bpfkit accepts"
    else:
        assert ours == "accepted"
