"""Base classes for UAPI constants whose members remember their C names.

A class is registered with `c_source` (the C enum it mirrors and the prefix its member names dropped),
so `MapType.RINGBUF.c_name == "BPF_MAP_TYPE_RINGBUF"` without storing a string per member.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from bpfkit._records import record

_C = TypeVar("_C", bound=type)


@record
class CSource:
    """Where a class's constants come from in the UAPI header."""

    enum: str | None
    """The C enum's tag (`bpf_cmd`); None for an anonymous enum or a group of #defines."""
    prefix: str
    """The part of each C name the Python member name drops (`BPF_MAP_TYPE_`)."""
    lowercase: bool = False
    """The C names are lowercase after the prefix (`BPF_FUNC_map_lookup_elem`)."""

    def c_name(self, member: str) -> str:
        """The C name of the member called `member` in Python."""
        return self.prefix + (member.lower() if self.lowercase else member)


_SOURCES: dict[type, CSource] = {}


def c_source(enum_tag: str | None, prefix: str, *, lowercase: bool = False) -> Callable[[_C], _C]:
    """Class decorator recording the C enum (or #define group) a constants class mirrors."""

    def register(cls: _C) -> _C:
        _SOURCES[cls] = CSource(enum_tag, prefix, lowercase)
        return cls

    return register


def source_of(cls: type) -> CSource:
    """The `CSource` of a class decorated with `c_source`."""
    try:
        return _SOURCES[cls]
    except KeyError:
        raise TypeError(f"{cls.__qualname__} is not a UAPI constants class") from None


def c_names(cls: type[enum.Enum]) -> dict[str, str]:
    """Map every member name of `cls`, aliases included, to its C name."""
    source = source_of(cls)
    return {name: source.c_name(name) for name in cls.__members__}


class CEnum(enum.IntEnum):
    """An IntEnum mirroring a C enum; `c_name` gives a member's C name."""

    @property
    def c_name(self) -> str:
        """The member's C name, e.g. `BPF_PROG_LOAD` for `Cmd.PROG_LOAD`."""
        return source_of(type(self)).c_name(self.name)


class CFlag(enum.IntFlag):
    """An IntFlag mirroring C flag bits; `c_name` gives a member's C name (`A|B` when combined)."""

    @property
    def c_name(self) -> str:
        """The C name, or the C names of the set bits joined by `|` for a combination."""
        source = source_of(type(self))
        name = self.name
        if name is not None and "|" not in name:
            return source.c_name(name)
        # A combination: Python 3.10 leaves .name None, 3.11+ joins names with "|".
        bits: dict[int, str] = {}
        for member_name, member in type(self).__members__.items():
            value = int(member)
            if value and value & (value - 1) == 0 and value & self and value not in bits:
                bits[value] = source.c_name(member_name)
        return "|".join(bits.values()) if bits else str(int(self))
