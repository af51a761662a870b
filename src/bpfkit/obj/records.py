"""What a loader still has to fill in after the ELF loader: `Reference`s (map fds, kernel symbols),
`CoreRelocation`s, and the `Subprogram` and `SourceLine` records of a linked program.

Pure data, re-exported by `bpfkit.obj.spec`. They have a module of their own because a program that
comes from elsewhere (a compiled script, `bpfkit.trace.cache`) has none of them, and creating their
classes is a measurable share of `bpfkit trace`'s start-up.
"""

from __future__ import annotations

import enum

from bpfkit._records import record
from bpfkit.uapi.btf import CoreReloKind


class RefKind(enum.Enum):
    """What a loader writes into the instruction a `Reference` names."""

    MAP = "map"
    """lddw with src MAP_FD: the low 32 bits of imm become the map's fd."""
    MAP_VALUE = "map_value"
    """lddw with src MAP_VALUE: the low 32 bits of imm become the map's fd; the high 32 bits already
    hold the byte offset into the map's value (global data, `.kconfig` externs)."""
    KSYM = "ksym"
    """lddw of a `__ksym` variable: typed externs get src BTF_ID and the kernel BTF id (high half: the
    module BTF fd); typeless ones (src 0) get the kernel symbol's address."""
    KFUNC = "kfunc"
    """call with src KFUNC (kernel function): imm becomes the function's kernel BTF id and off the
    index of the module BTF fd (0 for vmlinux)."""


@record
class Reference:
    """An instruction of a program that refers to something only the loader can resolve.

    `index` is the instruction's slot in `ProgramSpec.insns` (an lddw takes two slots; `index` is its
    first). `target` is a map name (MAP, MAP_VALUE; a key of `ObjectSpec.maps`) or an extern name (KSYM,
    KFUNC; a key of `ObjectSpec.externs`). `symbol` is the ELF symbol the relocation named (a map, a
    variable, an extern or a section), for messages.
    """

    index: int
    kind: RefKind
    target: str
    offset: int = 0
    symbol: str = ""


@record
class Subprogram:
    """A function in a linked program: the main function at index 0, then each appended subprogram."""

    index: int
    name: str
    section: str = ""
    btf_type_id: int = 0


@record
class SourceLine:
    """A line_info record with its strings resolved: instruction `index` comes from `file`:`line`."""

    index: int
    file: str
    line: int
    column: int
    text: str


@record
class CoreRelocation:
    """A CO-RE relocation of instruction `index`: `kind` against local BTF type `type_id`, following
    `access` (field indices such as "0:1:2", or an enumerator index). Applied at load against the
    target kernel's BTF."""

    index: int
    kind: CoreReloKind
    type_id: int
    access: str
