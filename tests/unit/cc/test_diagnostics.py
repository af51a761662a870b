"""Parsing and rendering clang diagnostics (pure)."""

from __future__ import annotations

from bpfkit.cc.diagnostics import Diagnostic, parse_diagnostics

STDERR = """\
<stdin>:3:11: error: use of undeclared identifier 'y'
<stdin>:2:5: warning: unused variable 'z' [-Wunused-variable]
In file included from <stdin>:1:
1 error generated.
"""


def test_parse_with_source_lines_and_rename() -> None:
    lines = {1: "#include <x.h>", 2: "int z;", 3: "int x = 1 + y;"}
    diags = parse_diagnostics(STDERR, lambda f, n: lines.get(n) if f == "<stdin>" else None,
                              {"<stdin>": "<text>"})
    assert [(d.file, d.line, d.col, d.severity) for d in diags] == [
        ("<text>", 3, 11, "error"), ("<text>", 2, 5, "warning")]
    assert str(diags[0]) == ("<text>:3:11: error: use of undeclared identifier 'y'\n"
                             " 3 | int x = 1 + y;\n"
                             "   |           ^")


def test_tabs_keep_the_caret_under_the_column() -> None:
    d = Diagnostic("a.c", 12, 2, "error", "boom", "\tx;")  # clang counts a tab as one column
    assert str(d).splitlines()[1:] == [" 12 |     x;", "    |     ^"]


def test_without_source_only_the_location_line() -> None:
    assert str(Diagnostic("f.c", 1, 1, "fatal error", "'x.h' file not found")) == \
        "f.c:1:1: fatal error: 'x.h' file not found"
