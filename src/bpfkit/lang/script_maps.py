"""A script map as the runtime sees it (re-exported by `bpfkit.lang.resources`; use it from there).

A module of its own because running a cached script (`bpfkit.trace.cache`) creates only the classes its
values name, a script without maps needs none, and each record class created is a measurable share of
`bpfkit trace`'s start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._records import record

if TYPE_CHECKING:
    from bpfkit.lang.types import Type
    from bpfkit.obj.spec import MapSpec


@record
class MapInfo:
    """A script map: `key` is None for a scalar map (``@x``), else the key type (a tuple for several).

    `lhist` holds (min, max, step) for lhist maps. `spec` is what to create.
    """

    name: str
    key: Type | None
    value: Type
    spec: MapSpec
    lhist: tuple[int, int, int] | None = None

    @property
    def display(self) -> str:
        """The map as written: ``@name``."""
        return "@" + self.name
