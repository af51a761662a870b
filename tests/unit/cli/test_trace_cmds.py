"""`bpfkit trace` command-line handling that needs no kernel: -d dumps, compile errors, usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.cli.main import main


def test_debug_dump_shows_ast_and_bytecode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "-d", "-e", 'BEGIN { printf("x %d\\n", 1); exit(); }']) == 0
    out = capsys.readouterr().out
    assert out.startswith("Program\n BEGIN\n") and "\nBEGIN:\n" in out and "call 130" in out and "exit" in out


def test_compile_error_is_rendered_with_carets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "-e", "BEGIN { @x = count(1); }"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["stdin:1:14-22: ERROR: count() requires no arguments (1 provided)",
                                "BEGIN { @x = count(1); }", " " * 13 + "~" * 8]


def test_script_file_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.bt"
    path.write_text("BEGIN {\n  $x = $y;\n}\n")
    assert main(["trace", "-d", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:2:8-10: ERROR: Undefined or undeclared variable: $y")


def test_no_program_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace"]) == 2
    assert "give a program" in capsys.readouterr().err
