"""Parsing tracefs event format files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError, ParseError
from bpfkit.lang.tracepoint_format import parse_format

SCHED_SWITCH = """name: sched_switch
ID: 316
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:0;
\tfield:const char * filename;\toffset:48;\tsize:8;\tsigned:0;

print fmt: "prev_comm=%s", REC->prev_comm
"""


def test_fields_and_layout() -> None:
    fmt = parse_format(SCHED_SWITCH, "sched", "sched_switch")
    assert (fmt.category, fmt.name, fmt.id) == ("sched", "sched_switch", 316)
    assert [f.name for f in fmt.args] == ["prev_comm", "prev_pid", "prev_state", "name", "filename"]
    comm = fmt.field("prev_comm")
    assert comm is not None and comm.array == 16 and comm.is_string and comm.offset == 8
    pid = fmt.field("prev_pid")
    assert pid is not None and pid.signed and pid.size == 4 and not pid.is_string
    name = fmt.field("name")
    assert name is not None and name.data_loc and name.is_string
    filename = fmt.field("filename")
    assert filename is not None and filename.is_pointer and filename.ctype == "const char *"


def test_declarations_as_bpftrace_lists_them() -> None:
    fmt = parse_format(SCHED_SWITCH, "sched", "sched_switch")
    assert [f.declaration() for f in fmt.args] == [
        "char prev_comm[16]", "pid_t prev_pid", "long prev_state", "__data_loc char[] name",
        "const char * filename"]


def test_bad_field_line() -> None:
    with pytest.raises(ParseError, match="line 2"):
        parse_format("format:\n\tfield:int x;\toffset:zz;\n", "a", "b")


@given(st.text(max_size=300))
def test_fuzz_only_bpfkit_errors(text: str) -> None:
    try:
        parse_format(text, "a", "b")
    except BpfkitError:
        pass
