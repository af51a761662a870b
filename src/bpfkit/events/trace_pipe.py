"""Parsing lines of the kernel trace buffer (tracefs ``trace_pipe``), where bpf_printk output goes.

A line is ``<task>-<pid> [(<tgid>)] [<cpu>] <flags> <seconds>.<micros>: <event>: <message>``, e.g.
``python3-4242    [001] d..31  8123.000415: bpf_trace_printk: hello``
(kernel/trace/trace_output.c). The flags column (irqs-off, need-resched, hardirq/softirq, preempt depth,
migrate-disable) is absent when the ``irq-info`` option is off; the tgid column appears with
``record-tgid``. When the buffer overflowed the kernel writes ``CPU:<n> [LOST <count> EVENTS]``.
"""

from __future__ import annotations

import re

from bpfkit._records import record
from bpfkit.errors import ParseError

_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?"
    r"(?P<ts>\d+\.\d+):\s"
    r"(?:(?P<event>[\w.]+):\s?)?"
    r"(?P<msg>.*?)\n?$"
)
_LOST = re.compile(r"^CPU:(?P<cpu>\d+) \[LOST (?P<count>\d+) EVENTS\]\s*$")


class TraceParseError(ParseError):
    """A trace_pipe line in an unknown format."""


@record
class TraceEvent:
    """One trace line: who printed (`task`, `pid`, `tgid` when recorded), where (`cpu`), the irq/preempt
    `flags` column, `timestamp` in seconds, the trace `event` (``bpf_trace_printk``) and the message."""

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    message: str
    event: str = ""
    tgid: int | None = None


@record
class LostEvents:
    """``CPU:<cpu> [LOST <count> EVENTS]``: the trace buffer of `cpu` overflowed."""

    cpu: int
    count: int


def parse_line(line: str) -> TraceEvent | LostEvents:
    """Parse one line of trace_pipe (with or without its newline)."""
    m = _LINE.match(line)
    if m is None:
        lost = _LOST.match(line)
        if lost is not None:
            return LostEvents(int(lost["cpu"]), int(lost["count"]))
        raise TraceParseError(f"not a trace line: {line.rstrip()!r}")
    tgid = m["tgid"]
    return TraceEvent(
        task=m["task"], pid=int(m["pid"]), cpu=int(m["cpu"]), flags=m["flags"] or "",
        timestamp=float(m["ts"]), message=m["msg"], event=m["event"] or "",
        tgid=int(tgid) if tgid and tgid.strip("-") else None,
    )
