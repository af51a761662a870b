"""`MapSpec` and `ProgramSpec`: what a map or program is, before the kernel makes one.

Pure data. The ELF loader (`bpfkit.obj.load_object`) fills them from objects; `bpfkit.kernel.Map.create(spec)`
and `bpfkit.kernel.Program.load(spec)` turn them into kernel objects. The records of what a loader still
has to fill in (`Reference`s, `CoreRelocation`s...) live in `bpfkit.obj.records` and are re-exported here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bpfkit._records import record
from bpfkit.uapi.enums import AttachType, MapType, ProgType

if TYPE_CHECKING:  # annotations only: loading a spec's bytecode does not need the instruction set package
    from bpfkit.isa import Instruction
    from bpfkit.obj.records import CoreRelocation as CoreRelocation
    from bpfkit.obj.records import Reference as Reference
    from bpfkit.obj.records import RefKind as RefKind
    from bpfkit.obj.records import SourceLine as SourceLine
    from bpfkit.obj.records import Subprogram as Subprogram

#: Names defined in `bpfkit.obj.records`, imported from there on first use (PEP 562).
_RECORDS = frozenset({"CoreRelocation", "Reference", "RefKind", "SourceLine", "Subprogram"})


class PinType(enum.IntEnum):
    """`pinning` of a BTF-defined map (libbpf's `enum libbpf_pin_type`)."""

    NONE = 0
    BY_NAME = 1
    """Pin at `<pin root>/<map name>` (default root /sys/fs/bpf); reuse a compatible pinned map."""


@record
class MapSpec:
    """A map to create (the fields of BPF_MAP_CREATE).

    `inner_map` is the template of the maps an ARRAY_OF_MAPS/HASH_OF_MAPS holds. `numa_node` (when not
    None) adds BPF_F_NUMA_NODE. `contents` are (key, value) pairs written after creation (global data);
    `freeze` then makes the map read-only from user space (`.rodata`). The `btf_*` ids refer to the BTF
    object passed to `Map.create(..., btf=...)`.

    `pinning` asks the loader to pin (or reuse a pinned map) by name. `init_slots` are the initial
    values of a map of maps or a program array, filled once every map and program exists: (slot, name
    of the map or program to store there). `section` is the ELF section the definition came from.
    """

    type: MapType
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    name: str = ""
    inner_map: MapSpec | None = None
    numa_node: int | None = None
    map_extra: int = 0
    ifindex: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    contents: tuple[tuple[bytes, bytes], ...] = ()
    freeze: bool = False
    pinning: PinType = PinType.NONE
    init_slots: tuple[tuple[int, str], ...] = ()
    section: str = ""


@record
class ProgramSpec:
    """A program to load (the fields of BPF_PROG_LOAD).

    `insns` is bytecode (8 bytes per slot, little endian) or instructions `bpfkit.isa.encode` accepts.
    `attach_to` names the attach target for the loader and linker to resolve (`attach_btf_id` is the
    resolved id). `func_info`/`line_info` are packed .BTF.ext records for the BTF passed at load.

    From an object: `insns` are the program's own instructions followed by every subprogram it calls
    (`subprograms` says where each starts), calls already pointing at them; `references` list the
    instructions the loader must patch; `lines` and `core_relos` are the decoded line_info and CO-RE
    records, all indexed by instruction slot.
    """

    type: ProgType
    insns: bytes | tuple[Instruction, ...]
    name: str = ""
    license: str = "GPL"
    expected_attach_type: AttachType | None = None
    attach_to: str = ""
    attach_btf_id: int = 0
    flags: int = 0
    kern_version: int = 0
    section: str = ""
    func_info: bytes = b""
    func_info_rec_size: int = 0
    line_info: bytes = b""
    line_info_rec_size: int = 0
    references: tuple[Reference, ...] = ()
    subprograms: tuple[Subprogram, ...] = ()
    lines: tuple[SourceLine, ...] = ()
    core_relos: tuple[CoreRelocation, ...] = ()

    @staticmethod
    def of(prog_type: ProgType, insns: bytes | Sequence[Instruction], **kwargs: object) -> ProgramSpec:
        """A spec from a list of instructions (stored as a tuple, so the spec stays hashable)."""
        body = insns if isinstance(insns, bytes) else tuple(insns)
        return ProgramSpec(prog_type, body, **kwargs)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    # The loader records are not needed to create a map or load bytecode (a cached script), so their
    # module is imported only when one of them is asked for.
    if name in _RECORDS:
        from bpfkit.obj import records

        value = getattr(records, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
