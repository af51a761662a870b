"""Compiler diagnostics rendered the way bpftrace prints them.

bpftrace 0.17 prints an error as a location line, the source line, and a line of tildes under the
offending text::

    script.bt:3:14-20: ERROR: unknown function 'prinft'
      @x = prinft("x");
           ~~~~~~
    HINT: did you mean 'printf'?

Columns are 1-based and the end column is exclusive. Tabs in the shown line are expanded to four spaces
(so the tildes stay aligned), and a span over several lines is shown as ``file:3-5:`` with no source text,
both as bpftrace does. An empty span gets a single ``^``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from bpfkit._records import record
from bpfkit.errors import CompileError
from bpfkit.lang.source import Span

TAB = "    "


class Severity(str, enum.Enum):
    """How bad a diagnostic is; the value is the label printed."""

    ERROR = "ERROR"
    WARNING = "WARNING"
    NOTE = "NOTE"


@record
class Note:
    """Extra information attached to a diagnostic, optionally pointing at other source."""

    message: str
    span: Span | None = None


@record
class Diagnostic:
    """One message about a script: severity, text, where, and optionally a hint and notes."""

    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None
    notes: tuple[Note, ...] = ()

    def render(self) -> str:
        """The text bpftrace would print for this diagnostic (no trailing newline)."""
        lines = _render_block(self.severity.value, self.message, self.span)
        if self.hint:
            lines.append(f"HINT: {self.hint}")
        for note in self.notes:
            lines += _render_block(Severity.NOTE.value, note.message, note.span)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _render_block(label: str, message: str, span: Span | None) -> list[str]:
    if span is None:
        return [f"{label}: {message}"]
    name = span.source.name
    line, col = span.line, span.column
    end_line = span.end_line
    if end_line != line:
        return [f"{name}:{line}-{end_line}: {label}: {message}"]
    end_col = span.end_column
    text = span.source.line_text(line)
    prefix = text[: col - 1].replace("\t", TAB)
    if span.end > span.start:
        marked = text[col - 1 : end_col - 1].replace("\t", TAB)
        marks = "~" * max(1, len(marked))
        where = f"{name}:{line}:{col}-{end_col}"
    else:
        marks = "^"
        where = f"{name}:{line}:{col}"
    return [f"{where}: {label}: {message}", text.replace("\t", TAB), " " * len(prefix) + marks]


def error(message: str, span: Span | None, hint: str | None = None,
          notes: Sequence[Note] = ()) -> Diagnostic:
    """An ERROR diagnostic."""
    return Diagnostic(Severity.ERROR, message, span, hint, tuple(notes))


def warning(message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
    """A WARNING diagnostic."""
    return Diagnostic(Severity.WARNING, message, span, hint)


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` hint for a misspelt name, or None when nothing is close.

    The nearest candidate by edit distance wins (within a third of the name's length); ties go to the
    candidate of the same length, since swapped letters are the commonest slip (``prinft``).
    """
    limit = max(1, len(name) // 3)
    best = min(((edit_distance(name, c), abs(len(c) - len(name)), c) for c in set(candidates) if c != name),
               default=None)
    if best is None or best[0] > limit:
        return None
    return f"did you mean '{best[2]}'?"


class DiagnosticSink:
    """Collects diagnostics while a pass runs; `check()` raises them as one `CompileError`."""

    __slots__ = ("diagnostics",)

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def error(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.add(error(message, span, hint))

    def warning(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.add(warning(message, span, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is not Severity.ERROR]

    def check(self) -> None:
        """Raise `CompileError` with every diagnostic collected so far if any is an error."""
        if self.has_errors:
            raise CompileError(list(self.diagnostics))

    def fail(self, diagnostic: Diagnostic) -> CompileError:
        """A `CompileError` holding what was collected plus `diagnostic` (for the caller to raise)."""
        return CompileError([*self.diagnostics, diagnostic])
