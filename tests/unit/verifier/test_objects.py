"""bpfkit's verifier on the programs clang compiled in tests/data/obj (C sources in tests/data/c):
every program it can model is accepted, the others are refused with the reason, and the source line
from .BTF.ext line info reaches the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.errors import VerificationError
from bpfkit.obj.load import load_object
from bpfkit.vm.verifier import verify_program

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
REFUSED = {
    "fentry.o:on_entry": "does not model TRACING programs",
    "fentry.o:on_exit": "does not model TRACING programs",
    "iter.o:dump_task": "does not model TRACING programs",
    "lsm.o:allow_file_open": "does not model LSM programs",
    "global_data.o:global_data": "unknown func bpf_strncmp#182",
    "ksym_kfunc.o:ksym_kfunc": "reference to kernel symbol",
    "ksym_percpu.o:ksym_percpu": "reference to kernel symbol",
    "ksym_typeless.o:ksym_typeless": "reference to kernel symbol",
    "license_proprietary.o:license_proprietary": "GPL-restricted",
    "maps_btf.o:maps_btf": "cannot pass map_type 12",
}
PROGRAMS = [(path, name) for path in sorted(OBJ.glob("*.o")) for name in load_object(path).programs]


@pytest.mark.parametrize(("path", "name"), PROGRAMS, ids=[f"{p.name}:{n}" for p, n in PROGRAMS])
def test_object_program(path: Path, name: str) -> None:
    obj = load_object(path)
    key = f"{path.name}:{name}"
    if key not in REFUSED:
        result = verify_program(obj.programs[name], obj.maps)
        assert result.processed_insns < 20_000  # pruning keeps even the loops small
        return
    with pytest.raises(VerificationError) as info:
        verify_program(obj.programs[name], obj.maps)
    assert REFUSED[key] in info.value.report.message


def test_refusal_names_the_source_line() -> None:
    obj = load_object(OBJ / "license_proprietary.o")
    with pytest.raises(VerificationError) as info:
        verify_program(obj.programs["license_proprietary"], obj.maps)
    report = info.value.report
    assert report.source is not None and report.source.file.endswith("license_proprietary.c")
    assert report.source.line == 14 and "bpf_probe_read_kernel(&v" in report.source.text
    assert f"source: {report.source}" in str(report)
