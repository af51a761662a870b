"""`MapSpec` and `ProgramSpec`: what a map or program is, before the kernel makes one.

Pure data. The ELF loader (`bpfkit.obj.load_object`) fills them from objects; `bpfkit.kernel.Map.create(spec)`
and `bpfkit.kernel.Program.load(spec)` turn them into kernel objects. The records below them say what a
loader still has to fill in: `Reference`s (map fds, kernel symbols) and `CoreRelocation`s.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from bpfkit.isa import Instruction
from bpfkit.uapi.btf import CoreReloKind
from bpfkit.uapi.enums import AttachType, MapType, ProgType


class PinType(enum.IntEnum):
    """`pinning` of a BTF-defined map (libbpf's `enum libbpf_pin_type`)."""

    NONE = 0
    BY_NAME = 1
    """Pin at `<pin root>/<map name>` (default root /sys/fs/bpf); reuse a compatible pinned map."""


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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Subprogram:
    """A function in a linked program: the main function at index 0, then each appended subprogram."""

    index: int
    name: str
    section: str = ""
    btf_type_id: int = 0


@dataclass(frozen=True, slots=True)
class SourceLine:
    """A line_info record with its strings resolved: instruction `index` comes from `file`:`line`."""

    index: int
    file: str
    line: int
    column: int
    text: str


@dataclass(frozen=True, slots=True)
class CoreRelocation:
    """A CO-RE relocation of instruction `index`: `kind` against local BTF type `type_id`, following
    `access` (field indices such as "0:1:2", or an enumerator index). Applied at load against the
    target kernel's BTF."""

    index: int
    kind: CoreReloKind
    type_id: int
    access: str


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
