"""The members of a STRUCT value (re-exported by `bpfkit.lang.types`; use it from there).

A module of its own because running a cached script (`bpfkit.trace.cache`) creates only the classes its
values name, few scripts copy kernel structs, and each record class created is a measurable share of
`bpfkit trace`'s start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._records import record

if TYPE_CHECKING:
    from bpfkit.lang.types import Type


@record
class StructMember:
    """One member of a STRUCT value: `size` bytes at byte `offset` of the copy, of type `type` (an
    integer of its own width, a pointer, a string for a char array, an ARRAY or a STRUCT); for a
    bitfield, bits [bit_shift, bit_shift + bit_size) of those bytes."""

    name: str
    offset: int
    size: int
    type: Type
    bit_shift: int = 0
    bit_size: int = 0
