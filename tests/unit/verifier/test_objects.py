"""bpfkit's verifier on the programs clang compiled in tests/data/obj (C sources in tests/data/c):
every program it can model is accepted (CO-RE applied and kfuncs checked against the running kernel's
BTF), the others are refused with the reason, and the source line from .BTF.ext line info reaches the
report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.errors import VerificationError
from bpfkit.obj.load import load_object
from bpfkit.vm.verifier import verify_program

from .conftest import load_data

objects = load_data("objects")
OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
REFUSED = {
    "ksym_percpu.o:ksym_percpu": "typed kernel variables",
    "license_proprietary.o:license_proprietary": "GPL-restricted",
}
NEEDS_BTF = {"fentry.o:on_entry", "fentry.o:on_exit", "iter.o:dump_task", "ksym_kfunc.o:ksym_kfunc",
             "lsm.o:allow_file_open"}
"""Programs whose context or kfuncs are typed by the kernel's BTF (for lsm.o the prototype of the LSM
hook's bpf_lsm_file_open): checked against the running kernel's (when readable), refused without one."""
PROGRAMS = [(path, name) for path in sorted(OBJ.glob("*.o")) for name in load_object(path).programs]


@pytest.mark.parametrize(("path", "name"), PROGRAMS, ids=[f"{p.name}:{n}" for p, n in PROGRAMS])
def test_object_program(path: Path, name: str) -> None:
    key = f"{path.name}:{name}"
    btf = objects.target_btf()
    if key in NEEDS_BTF and btf is None:
        pytest.skip(f"{objects.VMLINUX} is not readable")
    if key not in REFUSED:
        result = objects.verify_object_program(path, name, btf)
        assert result.processed_insns < 20_000  # pruning keeps even the loops small
        return
    with pytest.raises(VerificationError) as info:
        objects.verify_object_program(path, name, btf)
    assert REFUSED[key] in info.value.report.message


@pytest.mark.parametrize("key", sorted(NEEDS_BTF))
def test_btf_typed_program_without_btf_is_refused(key: str) -> None:
    file, name = key.split(":")
    obj = load_object(OBJ / file)
    with pytest.raises(VerificationError) as info:
        verify_program(obj.programs[name], obj.maps)
    assert "needs the kernel's BTF" in info.value.report.message
    assert "btf=" in info.value.report.hint


def test_refusal_names_the_source_line() -> None:
    obj = load_object(OBJ / "license_proprietary.o")
    with pytest.raises(VerificationError) as info:
        verify_program(obj.programs["license_proprietary"], obj.maps)
    report = info.value.report
    assert report.source is not None and report.source.file.endswith("license_proprietary.c")
    assert report.source.line == 14 and "bpf_probe_read_kernel(&v" in report.source.text
    assert f"source: {report.source}" in str(report)
