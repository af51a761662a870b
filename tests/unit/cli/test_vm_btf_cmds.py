"""`bpfkit vm run` / `vm verify` with programs whose verification needs the kernel's BTF (fentry.o):
`--btf PATH` (hand-built here, so these run on every machine), the running kernel's by default, and
a refusal naming what is missing and `--btf` where there is none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bpfkit.btf import Func, FuncLinkage, FuncProto, Int, IntEncoding, Param, marshal
from bpfkit.cli.main import main
from bpfkit.vm import objects as vm_objects

OBJ = Path(__file__).resolve().parents[3] / "tests" / "data" / "obj"
FENTRY = str(OBJ / "fentry.o")
EXIT_CTX = (1).to_bytes(8, "little").hex() + (2).to_bytes(8, "little").hex()  # bpf_fentry_test1(1) = 2


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _btf_file(tmp_path: Path, func: str = "bpf_fentry_test1") -> str:
    path = tmp_path / f"{func}.btf"
    path.write_bytes(marshal((Int("int", 4, IntEncoding.SIGNED), FuncProto(1, (Param("a", 1),)),
                              Func(func, 2, FuncLinkage.GLOBAL))))  # type: ignore[arg-type]
    return str(path)


@pytest.mark.parametrize("engine", ["fast", "interp"])
def test_run_fentry_verified_with_btf(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      engine: str) -> None:
    status, out, err = run_cli(capsys, "vm", "run", FENTRY, "--section", "on_exit", "--ctx", EXIT_CTX,
                               "--btf", _btf_file(tmp_path), "--engine", engine, "-j")
    assert (status, err) == (0, "")
    assert json.loads(out)["r0"] == 0 and json.loads(out)["instructions"] == 7


def test_run_fentry_with_the_running_kernels_btf(capsys: pytest.CaptureFixture[str]) -> None:
    if not os.access(vm_objects.VMLINUX_BTF, os.R_OK):
        pytest.skip(f"no {vm_objects.VMLINUX_BTF}")
    status, out, err = run_cli(capsys, "vm", "run", FENTRY, "--section", "on_entry", "--ctx", EXIT_CTX[:16])
    assert (status, err, out) == (0, "", "r0 = 0x0 (0)\n")


def test_run_and_verify_without_btf_name_what_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_objects, "VMLINUX_BTF", str(tmp_path / "no-vmlinux"))
    status, _, err = run_cli(capsys, "vm", "run", FENTRY, "--section", "on_exit", "--ctx", EXIT_CTX)
    assert status == 1 and err.startswith("bpfkit: error: ") and "Traceback" not in err
    assert "a TRACING program's context needs the kernel's BTF" in err
    assert "no-vmlinux) is not readable" in err and "--btf PATH" in err
    status, out, _ = run_cli(capsys, "vm", "verify", FENTRY)
    assert status == 1 and "on_entry: refused" in out and "on_exit: refused" in out
    assert "needs the kernel's BTF" in out and "--btf PATH" in out
    status, out, _ = run_cli(capsys, "vm", "verify", FENTRY, "--btf", _btf_file(tmp_path))
    assert status == 0 and "on_entry: accepted" in out and "on_exit: accepted" in out
    status, _, err = run_cli(capsys, "vm", "run", FENTRY, "--section", "on_exit", "--ctx", EXIT_CTX,
                             "--no-verify")
    assert status == 0, err  # the trusted opt-out needs no BTF


def test_run_with_btf_lacking_the_attach_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "vm", "run", FENTRY, "--section", "on_entry", "--btf",
                             _btf_file(tmp_path, "something_else"))
    assert status == 1 and "attach target 'bpf_fentry_test1' is not a function in the kernel's BTF" in err
