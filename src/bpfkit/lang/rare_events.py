"""The events few scripts send: print/clear/zero of a map, time() and join() (re-exported by
`bpfkit.lang.resources`; use them from there).

A module of their own because running a cached script (`bpfkit.trace.cache`) creates only the classes
its events name, and each record class created is a measurable share of `bpfkit trace`'s start-up.
"""

from __future__ import annotations

from bpfkit._records import record


@record
class MapEvent:
    """print(@m), clear(@m) or zero(@m): `action` applied by the runtime to map `name`.

    print(@m, top, div) prints only the `top` greatest entries (0: all), values divided by `div`
    (0: as they are).
    """

    action: str
    name: str
    top: int = 0
    div: int = 0


@record
class TimeEvent:
    """time(fmt): print the wall-clock time with a strftime format."""

    format: str


@record
class JoinEvent:
    """join(array, delim): payload is [u64 count][JOIN_MAX strings of STRLEN bytes]."""

    delim: str = " "
