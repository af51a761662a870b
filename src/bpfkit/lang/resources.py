"""What a compiled script needs from the runtime: maps, events and programs, as plain data.

The compiler (`bpfkit.lang.codegen`) produces a `CompiledScript`; the runtime (`bpfkit.trace`) creates
the maps, patches map fds into each program at the recorded slots, loads and attaches the programs,
and decodes the events the programs send through the ring buffer map `EVENTS_MAP`.

An event record is ``[u64 event id][payload]``; the id indexes `CompiledScript.events`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfkit._records import record
from bpfkit.lang.attach import AttachPoint
from bpfkit.lang.source import Span
from bpfkit.lang.types import Type
from bpfkit.obj.spec import MapSpec, ProgramSpec

if TYPE_CHECKING:
    from bpfkit.lang.rare_events import JoinEvent as JoinEvent
    from bpfkit.lang.rare_events import MapEvent as MapEvent
    from bpfkit.lang.rare_events import TimeEvent as TimeEvent
    from bpfkit.lang.script_maps import MapInfo as MapInfo

#: Name of the ring buffer map that carries every event to user space.
EVENTS_MAP = "ringbuf"
#: Size of its data area (bytes; a power of two, a multiple of the page size).
EVENTS_SIZE = 1 << 20
#: Names of the stack trace maps behind ``kstack`` and ``ustack``.
KSTACK_MAP = "__kstack"
USTACK_MAP = "__ustack"
#: Name of the per-CPU scratch map join() assembles its event in (too big for the 512-byte stack).
JOIN_MAP = "__join"
#: join() prints at most this many array elements, each cut to STRLEN bytes (as bpftrace).
JOIN_MAX = 16


@record
class PrintfEvent:
    """printf/errorf/warnf/system/cat: the format string and the type of each argument, packed after the
    id. `stream` says what to do with the formatted text: stdout, error, warning (to stderr), system
    (run it as a shell command) or cat (print that file)."""

    format: str
    args: tuple[Type, ...]
    span: Span | None = None
    stream: str = "stdout"


@record
class ExitEvent:
    """exit(): stop tracing."""


if TYPE_CHECKING:  # at run time `Event` is built on first use (see `__getattr__`)
    Event = PrintfEvent | ExitEvent | MapEvent | TimeEvent | JoinEvent




@record
class CompiledProbe:
    """One program for one attach point.

    `map_refs` are (instruction slot, map name) of each lddw to patch with a map fd; `spans` maps the
    first slot of each statement/expression's code to its source span, to point at the script line a
    verifier complaint is about.
    """

    attach: AttachPoint
    name: str
    program: ProgramSpec
    map_refs: tuple[tuple[int, str], ...]
    spans: tuple[tuple[int, Span], ...]
    btf: bytes = b""
    """BTF for the program's func_info (needed when it has callbacks: for loops); empty otherwise."""

    def span_at(self, slot: int) -> Span | None:
        """The span of the code that instruction `slot` belongs to."""
        best: Span | None = None
        for start, span in self.spans:
            if start <= slot:
                best = span
            else:
                break
        return best


@record
class CompiledScript:
    """Everything the runtime needs to run a script."""

    maps: tuple[MapInfo, ...]
    events: tuple[Event, ...]
    probes: tuple[CompiledProbe, ...]
    events_map: MapSpec
    aux_maps: tuple[tuple[str, MapSpec], ...] = ()
    """Maps the programs use that are not script maps (the stack trace maps), by symbol name."""

    def map(self, name: str) -> MapInfo:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)


_RARE = frozenset({"JoinEvent", "MapEvent", "TimeEvent"})


def __getattr__(name: str) -> Any:
    # The events few scripts send live in `bpfkit.lang.rare_events`, imported when first asked for;
    # `MapInfo` in `bpfkit.lang.script_maps` (a script without maps never needs it).
    if name == "MapInfo":
        from bpfkit.lang.script_maps import MapInfo

        globals()[name] = MapInfo
        return MapInfo
    if name in _RARE or name == "Event":
        from bpfkit.lang import rare_events

        value: Any = (PrintfEvent | ExitEvent | rare_events.MapEvent | rare_events.TimeEvent
                      | rare_events.JoinEvent) if name == "Event" else getattr(rare_events, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
