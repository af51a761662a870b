"""EventPrinter: decoding event records into output, without a kernel."""

from __future__ import annotations

import io
import struct

from bpfkit.lang.resources import CompiledScript, ExitEvent, JoinEvent, PrintfEvent
from bpfkit.lang.types import INT64, STRING, STRLEN, UINT64
from bpfkit.obj.spec import MapSpec
from bpfkit.trace.events import EventPrinter
from bpfkit.uapi.enums import MapType

EVENTS = (PrintfEvent("%s is %d (%x)\n", (STRING, INT64, UINT64)), JoinEvent(","), ExitEvent())
SCRIPT = CompiledScript((), EVENTS, (), MapSpec(MapType.RINGBUF, max_entries=4096))


def s64(text: bytes) -> bytes:
    return text.ljust(STRLEN, b"\0")


def test_printf_record() -> None:
    out = io.StringIO()
    p = EventPrinter(SCRIPT, {}, out)
    p.handle(struct.pack("<Q", 0) + s64(b"x\0garbage") + struct.pack("<qQ", -2, 255))
    assert out.getvalue() == "x is -2 (ff)\n"


def test_join_record_and_exit() -> None:
    out = io.StringIO()
    p = EventPrinter(SCRIPT, {}, out, json=False)
    record = struct.pack("<QQ", 1, 2) + s64(b"ls") + s64(b"-l") + s64(b"stale")
    p.handle(record)
    assert out.getvalue() == "ls,-l\n"
    p.handle(struct.pack("<Q", 2))
    assert p.exiting
    p.handle(record)  # events after exit() are dropped, as bpftrace does
    assert out.getvalue() == "ls,-l\n"


def test_json_printf() -> None:
    out = io.StringIO()
    record = struct.pack("<Q", 0) + s64(b"y") + struct.pack("<qQ", 1, 1)
    EventPrinter(SCRIPT, {}, out, json=True).handle(record)
    assert out.getvalue() == '{"type": "printf", "data": "y is 1 (1)\\n"}\n'


def test_unknown_event_ids_are_ignored() -> None:
    out = io.StringIO()
    EventPrinter(SCRIPT, {}, out).handle(struct.pack("<Q", 99))
    assert out.getvalue() == ""
