"""Source line/column mapping and spans."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bpfkit.lang.source import NOWHERE, Source, Span


def test_line_col_is_one_based() -> None:
    src = Source("a.bt", "ab\ncde\n\nf")
    assert src.line_col(0) == (1, 1)
    assert src.line_col(1) == (1, 2)
    assert src.line_col(2) == (1, 3)  # the newline itself belongs to line 1
    assert src.line_col(3) == (2, 1)
    assert src.line_col(7) == (3, 1)
    assert src.line_col(8) == (4, 1)
    assert src.line_col(9) == (4, 2)  # end of text
    assert src.line_col(100) == (4, 2)  # clamped


def test_line_text_strips_newline_and_cr() -> None:
    src = Source("a.bt", "one\r\ntwo\nthree")
    assert src.line_text(1) == "one"
    assert src.line_text(2) == "two"
    assert src.line_text(3) == "three"
    assert src.line_text(4) == ""
    assert src.line_text(0) == ""
    assert src.line_count == 3
    assert Source("b", "x\n").line_count == 1


def test_span_positions_and_text() -> None:
    src = Source("s.bt", "BEGIN {\n  prinft(1)\n}")
    span = src.span(10, 16)
    assert span.text == "prinft"
    assert (span.line, span.column, span.end_line, span.end_column) == (2, 3, 2, 9)
    empty = src.span(10)
    assert empty.text == "" and empty.end_column == empty.column == 3


def test_span_union_covers_both() -> None:
    src = Source("s", "0123456789")
    assert (src.span(2, 4) | src.span(7, 9)) == Span(src, 2, 9)
    assert (src.span(7, 9) | src.span(2, 4)) == Span(src, 2, 9)


def test_multiline_span_end() -> None:
    src = Source("s", "ab\ncd\nef")
    span = src.span(1, 5)
    assert (span.line, span.end_line, span.end_column) == (1, 2, 3)
    # a span that ends right after a newline ends on the newline's line
    assert src.span(0, 3).end_line == 1


def test_nowhere_is_empty() -> None:
    assert NOWHERE.text == "" and NOWHERE.line == 1


@given(st.text(alphabet="ab\n\t", max_size=60), st.data())
def test_line_col_agrees_with_naive_count(text: str, data: st.DataObject) -> None:
    src = Source("p", text)
    offset = data.draw(st.integers(0, len(text)))
    before = text[:offset]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    assert src.line_col(offset) == (line, col)
    assert src.line_text(line) == text.split("\n")[line - 1]
