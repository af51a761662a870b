"""Diagnostics render like bpftrace 0.17's errors (location line, source line, tildes)."""

from __future__ import annotations

import pytest

from bpfkit.errors import CompileError
from bpfkit.lang.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Note,
    Severity,
    did_you_mean,
    edit_distance,
    error,
    warning,
)
from bpfkit.lang.source import Source


def test_single_line_span_with_hint() -> None:
    src = Source("script.bt", 'BEGIN { prinft("x") }')
    d = error("unknown function 'prinft'", src.span(8, 14), hint="did you mean 'printf'?")
    assert d.render() == (
        "script.bt:1:9-15: ERROR: unknown function 'prinft'\n"
        'BEGIN { prinft("x") }\n'
        "        ~~~~~~\n"
        "HINT: did you mean 'printf'?"
    )
    assert str(d) == d.render()


def test_tabs_expand_to_four_spaces_in_line_and_carets() -> None:
    # bpftrace 0.17 prints t.bt:2:7-19 for this span with the line and tildes expanded this way.
    src = Source("t.bt", 'BEGIN {\n\t$x = @a[1] + \t"s"; }')
    start = src.text.index("@")
    d = error("Type mismatch", src.span(start, src.text.index('";') + 1))
    assert d.render() == (
        "t.bt:2:7-19: ERROR: Type mismatch\n"
        '    $x = @a[1] +     "s"; }\n'
        "         ~~~~~~~~~~~~~~~"
    )


def test_multi_line_span_has_no_source_lines() -> None:
    src = Source("m.bt", 'BEGIN { printf("%d\\n",\n   1, 2) }')
    d = error("printf: too many arguments", src.span(8, len(src.text) - 2))
    assert d.render() == "m.bt:1-2: ERROR: printf: too many arguments"


def test_empty_span_gets_a_caret() -> None:
    src = Source("e.bt", "BEGIN { }")
    assert error("here", src.span(6)).render() == "e.bt:1:7: ERROR: here\nBEGIN { }\n      ^"


def test_no_span_and_warning_and_notes() -> None:
    src = Source("w.bt", "kprobe:foo {}")
    assert error("no probes", None).render() == "ERROR: no probes"
    d = Diagnostic(Severity.WARNING, "foo is not traceable", src.span(0, 10),
                   notes=(Note("expanded from here", src.span(7, 10)), Note("plain note")))
    assert d.render() == (
        "w.bt:1:1-11: WARNING: foo is not traceable\n"
        "kprobe:foo {}\n"
        "~~~~~~~~~~\n"
        "w.bt:1:8-11: NOTE: expanded from here\n"
        "kprobe:foo {}\n"
        "       ~~~\n"
        "NOTE: plain note"
    )
    assert warning("w", None).severity is Severity.WARNING


def test_sink_raises_compile_error_with_all_diagnostics() -> None:
    sink = DiagnosticSink()
    sink.warning("just a warning", None)
    sink.check()  # warnings alone do not fail
    sink.error("first", None)
    sink.error("second", None)
    with pytest.raises(CompileError) as info:
        sink.check()
    assert [d.message for d in info.value.diagnostics] == ["just a warning", "first", "second"]
    assert str(info.value) == "WARNING: just a warning\nERROR: first\nERROR: second"
    assert len(sink.warnings) == 1


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0), ("abc", "abc", 0), ("abc", "", 3), ("prinft", "printf", 1), ("print", "printf", 1),
    ("kitten", "sitting", 3), ("ab", "ba", 1), ("ca", "abc", 3),
])
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_did_you_mean_prefers_swaps_of_the_same_length() -> None:
    names = ["print", "printf", "exit", "str", "count"]
    assert did_you_mean("prinft", names) == "did you mean 'printf'?"
    assert did_you_mean("cuont", names) == "did you mean 'count'?"
    assert did_you_mean("exti", names) == "did you mean 'exit'?"
    assert did_you_mean("zzzzzz", names) is None
    assert did_you_mean("printf", ["printf"]) is None
