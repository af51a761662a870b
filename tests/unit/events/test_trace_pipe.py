"""Parsing trace_pipe lines in the formats the kernel writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.events import LostEvents, TraceEvent, TraceParseError, parse_line


def test_bpf_printk_line() -> None:
    ev = parse_line("         python3-4242    [001] d..31  8123.000415: bpf_trace_printk: hello world\n")
    assert ev == TraceEvent("python3", 4242, 1, "d..31", 8123.000415, "hello world", "bpf_trace_printk")


def test_task_with_dashes_spaces_and_tgid() -> None:
    ev = parse_line("  kworker/u4:2-x y-17 (   17) [000] ..... 5.5: bpf_trace_printk: a: b")
    assert isinstance(ev, TraceEvent)
    assert (ev.task, ev.pid, ev.tgid, ev.cpu, ev.message) == ("kworker/u4:2-x y", 17, 17, 0, "a: b")


def test_unknown_tgid_and_no_flags_column() -> None:
    ev = parse_line("<idle>-0 (-------) [003] 12.000001: bpf_trace_printk: x")
    assert isinstance(ev, TraceEvent)
    assert (ev.task, ev.tgid, ev.flags, ev.cpu, ev.timestamp) == ("<idle>", None, "", 3, 12.000001)


def test_lost_events_line() -> None:
    assert parse_line("CPU:1 [LOST 123 EVENTS]\n") == LostEvents(1, 123)


def test_garbage_raises() -> None:
    with pytest.raises(TraceParseError, match="not a trace line"):
        parse_line("hello there")


@given(st.text(max_size=120))
def test_fuzz_only_trace_parse_errors(line: str) -> None:
    try:
        parse_line(line)
    except TraceParseError:
        pass
