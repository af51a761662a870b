"""Turning event records and maps into output: printf lines, exit, print/clear/zero of maps.

`EventPrinter` works on any maps with ``items()``, ``keys()``, ``update()`` and ``delete()`` (the kernel's
`Map` or the userspace VM's `VmMap`), so the same code prints a live trace and a VM test run.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from bpfkit.lang.resources import JOIN_MAX, CompiledScript, ExitEvent, PrintfEvent
from bpfkit.lang.types import STRLEN, Kind
from bpfkit.trace.output import (
    StackText,
    buffer_bytes,
    decode,
    format_map,
    json_dumps,
    json_map,
    value_stack,
)
from bpfkit.trace.printf import format_printf
from bpfkit.uapi.enums import MapType

if TYPE_CHECKING:
    from bpfkit.lang.resources import Event, MapEvent

_ID = struct.Struct("<Q")


class EventPrinter:
    """Handles the records of one script's event ring buffer; `exiting` turns True at exit()."""

    def __init__(self, script: CompiledScript, maps: Mapping[str, Any], out: TextIO | None = None,
                 err: TextIO | None = None, *, json: bool = False, stacks: StackText | None = None) -> None:
        self.script = script
        self.maps = maps
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.json = json
        self.exiting = False
        self.stacks = stacks

    def handle(self, record: memoryview | bytes) -> None:
        """Act on one record ``[u64 event id][arguments]``."""
        if self.exiting:
            return
        (event_id,) = _ID.unpack_from(record)
        if event_id >= len(self.script.events):
            return
        event = self.script.events[event_id]
        if isinstance(event, PrintfEvent):
            args: list[int | bytes] = []
            pos = 8
            for t in event.args:
                raw = bytes(record[pos:pos + t.storage])
                value = decode(t, raw, self.stacks)
                if t.kind is Kind.STR:
                    args.append(raw)
                elif t.kind is Kind.BUF:
                    args.append(buffer_bytes(t, raw))
                else:
                    args.append(value if isinstance(value, int) else value_stack(t, str(value)).encode())
                pos += t.storage
            text = format_printf(event.format, args)
            if event.stream == "system":
                self.out.flush()
                import subprocess  # here: only system() needs it (start-up cost)

                done = subprocess.run(text, shell=True, capture_output=True, text=True, check=False)
                self.out.write(done.stdout)
            elif event.stream == "cat":
                try:
                    with open(text, errors="replace") as f:
                        self.out.write(f.read())
                except OSError as e:
                    self.err.write(f"ERROR: cat: {text}: {e.strerror}\n")
            elif event.stream != "stdout":
                self.err.write(f"{event.stream.upper()}: {text}" if text.endswith("\n") else
                               f"{event.stream.upper()}: {text}\n")
            elif self.json:
                self.out.write(json_dumps({"type": "printf", "data": text}) + "\n")
            else:
                self.out.write(text)
        elif isinstance(event, ExitEvent):
            self.exiting = True
        else:
            self._rare_event(event, record)

    def _rare_event(self, event: Event, record: memoryview | bytes) -> None:
        """join(), print/clear/zero and time(): their classes are imported only by the scripts that send
        them (`bpfkit.lang.rare_events`; start-up is a hot path)."""
        from bpfkit.lang.resources import JoinEvent, MapEvent, TimeEvent

        if isinstance(event, JoinEvent):
            (count,) = _ID.unpack_from(record, 8)
            parts = [bytes(record[16 + i * STRLEN:16 + (i + 1) * STRLEN]).split(b"\0", 1)[0]
                     for i in range(min(count, JOIN_MAX))]
            text = event.delim.join(p.decode("utf-8", "replace") for p in parts) + "\n"
            self.out.write(json_dumps({"type": "join", "data": text}) + "\n" if self.json else text)
        elif isinstance(event, MapEvent):
            self.map_action(event)
        elif isinstance(event, TimeEvent):
            self.out.write(time.strftime(event.format))

    def map_action(self, event: MapEvent) -> None:
        m = self.maps[event.name]
        if event.action == "print":
            self.print_map(event.name, event.top, event.div)
        elif event.action == "clear":
            for k in list(m.keys()):
                m.delete(k)
        else:  # zero
            spec = self.script.map(event.name).spec
            zero: bytes | list[bytes] = bytes(spec.value_size)
            if spec.type is MapType.PERCPU_HASH:  # every CPU's copy
                zero = [bytes(spec.value_size)] * int(getattr(m, "ncpus", 1))
            for k in list(m.keys()):
                m.update(k, zero)

    def print_map(self, name: str, top: int = 0, div: int = 0) -> None:
        info = self.script.map(name)
        items = list(self.maps[name].items())
        if self.json:
            self.out.write(json_map(info, items, self.stacks))
            return
        self.out.write(format_map(info, items, self.stacks, top, div))
