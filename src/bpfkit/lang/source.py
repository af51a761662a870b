"""Script text and the spans that point into it.

A `Source` is one script (a file, or ``stdin`` for ``-e``); a `Span` is a half-open character range of it.
Every token, AST node and diagnostic carries a span, so errors can name the file, line and column and
show the offending text with carets. Lines and columns are 1-based, as in bpftrace and rustc.
"""

from __future__ import annotations

from bisect import bisect_right

from bpfkit._records import record


class Source:
    """The text of one script and its name as shown in diagnostics.

    Line starts are computed once, so mapping an offset to a line is a binary search.
    """

    __slots__ = ("_line_starts", "name", "text")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        self._line_starts = starts

    def __repr__(self) -> str:
        return f"Source({self.name!r}, <{len(self.text)} chars>)"

    @property
    def line_count(self) -> int:
        """Number of lines (a trailing newline does not start a new, empty line)."""
        n = len(self._line_starts)
        if n > 1 and self._line_starts[-1] == len(self.text):
            n -= 1
        return n

    def line_col(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of a character offset (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        index = bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if not 1 <= line <= len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        if end < 0:
            end = len(self.text)
        return self.text[start:end].removesuffix("\r")

    def line_start(self, line: int) -> int:
        """The offset of the first character of a 1-based line."""
        return self._line_starts[max(0, min(line, len(self._line_starts)) - 1)]

    def span(self, start: int, end: int | None = None) -> Span:
        """A span of this source; `end` defaults to `start` (an empty span)."""
        return Span(self, start, start if end is None else end)


@record
class Span:
    """The half-open character range [start, end) of a source."""

    source: Source
    start: int
    end: int

    @property
    def text(self) -> str:
        """The spanned text."""
        return self.source.text[self.start:self.end]

    @property
    def line(self) -> int:
        """1-based line of the first character."""
        return self.source.line_col(self.start)[0]

    @property
    def column(self) -> int:
        """1-based column of the first character."""
        return self.source.line_col(self.start)[1]

    @property
    def end_line(self) -> int:
        """1-based line of the last character (the start line for an empty span)."""
        return self.source.line_col(max(self.start, self.end - 1))[0]

    @property
    def end_column(self) -> int:
        """1-based column just past the last character (exclusive, as bpftrace prints it)."""
        if self.end <= self.start:
            return self.column
        _, col = self.source.line_col(self.end - 1)
        return col + 1

    def __or__(self, other: Span) -> Span:
        """The smallest span covering both (they must share a source)."""
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    def __repr__(self) -> str:
        return f"Span({self.source.name}:{self.line}:{self.column}-{self.end_column})"


#: The source of nodes made by compiler passes rather than read from a script.
SYNTHETIC = Source("<synthetic>", "")
#: An empty span for synthetic nodes.
NOWHERE = Span(SYNTHETIC, 0, 0)
