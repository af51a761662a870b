"""`bpfkit cc`: compiles to the named object (checked with llvm-objdump when present), reports errors."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.cc import toolchain
from bpfkit.cli.main import main
from bpfkit.obj import load_object

SRC = '#include "bpfkit_helpers.h"\nSEC("xdp") int pass(void *ctx) { return VERDICT; }\n' \
      'char LICENSE[] SEC("license") = "GPL";\n'


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    try:
        toolchain.find_compiler()
    except toolchain.CompilerNotFoundError as e:
        pytest.skip(str(e))
    monkeypatch.setenv("BPFKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cc-cache"))
    yield


def test_cc_writes_the_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.c"
    src.write_text(SRC)
    assert main(["cc", str(src), "-o", str(tmp_path / "out.o"), "--", "-DVERDICT=2"]) == 0
    spec = load_object(tmp_path / "out.o")
    assert list(spec.programs) == ["pass"] and spec.programs["pass"].section == "xdp"
    if shutil.which("llvm-objdump"):
        dis = subprocess.run(["llvm-objdump", "-d", str(tmp_path / "out.o")], capture_output=True, text=True)
        assert "r0 = 2" in dis.stdout
    assert main(["cc", str(src), "--", "-DVERDICT=2"]) == 0  # default output: p.o, from the cache
    assert (tmp_path / "p.o").read_bytes() == (tmp_path / "out.o").read_bytes()
    assert "(cached)" in capsys.readouterr().err


def test_cc_error_exit_status_and_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.c"
    src.write_text(SRC)
    assert main(["cc", str(src)]) == 1  # VERDICT undefined
    err = capsys.readouterr().err
    assert f"{src.resolve()}:2:41: error: use of undeclared identifier 'VERDICT'" in err
    assert ' 2 | SEC("xdp") int pass(void *ctx) { return VERDICT; }\n   |' + " " * 41 + "^" in err
