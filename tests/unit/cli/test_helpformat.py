"""The help formatter's width follows shutil's rule without importing shutil."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.cli.helpformat import HelpFormatter, terminal_columns

SRC = Path(__file__).resolve().parents[3] / "src"


def test_columns_come_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "57")
    assert terminal_columns() == 57
    assert HelpFormatter("x")._width == 55  # argparse keeps 2 columns free
    monkeypatch.setenv("COLUMNS", "junk")
    assert terminal_columns() > 0


def test_building_the_trace_parser_does_not_import_shutil() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bpfkit.cli.main as m; "
            "m.build_parser('trace').parse_args(['trace', '-e', 'BEGIN { exit(); }']); "
            "print('shutil' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(SRC)], capture_output=True, text=True,
                         check=True, env={"COLUMNS": "100"})
    assert out.stdout.strip() == "False", out.stderr
