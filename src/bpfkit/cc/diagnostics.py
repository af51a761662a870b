"""clang's diagnostics (``file:line:col: error: message``) as structured, rendered values.

bpfkit renders each one itself with the source line and a caret, so the message reads the same
whatever clang's colour and caret settings were.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bpfkit._records import record

_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>fatal error|error|warning|note): "
                   r"(?P<msg>.*)$")


@record
class Diagnostic:
    """One compiler message at `file`:`line`:`col` (1-based), with the `source` line when known."""

    file: str
    line: int
    col: int
    severity: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"
        if self.source is not None:
            num = str(self.line)
            caret = len(self.source[: max(self.col - 1, 0)].expandtabs(4))
            text += f"\n {num} | {self.source.expandtabs(4)}\n {' ' * len(num)} | {' ' * caret}^"
        return text


def parse_diagnostics(stderr: str, read_line: Callable[[str, int], str | None] | None = None,
                      rename: dict[str, str] | None = None) -> list[Diagnostic]:
    """The diagnostics in clang's `stderr`; `read_line(file, line)` supplies source lines and `rename`
    maps file names as clang printed them to the names to show (``<stdin>`` -> ``<text>``)."""
    out: list[Diagnostic] = []
    for raw in stderr.splitlines():
        m = _DIAG.match(raw)
        if not m:
            continue
        file, line = m.group("file"), int(m.group("line"))
        source = read_line(file, line) if read_line is not None else None
        shown = (rename or {}).get(file, file)
        out.append(Diagnostic(shown, line, int(m.group("col")), m.group("sev"), m.group("msg"), source))
    return out


__all__ = ["Diagnostic", "parse_diagnostics"]
