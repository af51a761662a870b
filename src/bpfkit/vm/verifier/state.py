"""The abstract machine state: registers, stack slots, call frames, acquired references.

`Reg` and `StackSlot` are immutable, so copying a frame (at every branch) copies lists of references.
A `Frame` and a `State` are mutable and owned by one path of the exploration; `State.copy()` forks a
path. Types and their log names follow the kernel's `enum bpf_reg_type` (include/linux/bpf.h).
"""

from __future__ import annotations

import enum
from typing import Any

from bpfkit._records import field, record, replace
from bpfkit.uapi.enums import MapType
from bpfkit.uapi.insn import MAX_BPF_STACK
from bpfkit.vm.verifier.ranges import UNBOUNDED, ZERO, Bounds

NREGS = 11
FP = 10
SLOT = 8
"""Bytes per stack slot (BPF_REG_SIZE)."""
NSLOTS = MAX_BPF_STACK // SLOT


class RegType(enum.Enum):
    """What a register holds. The value is the kernel log's name."""

    NOT_INIT = "?"
    SCALAR = "scalar"
    CTX = "ctx"
    MAP_PTR = "map_ptr"
    MAP_VALUE = "map_value"
    STACK = "fp"
    PACKET = "pkt"
    PACKET_META = "pkt_meta"
    PACKET_END = "pkt_end"
    MEM = "mem"
    FUNC = "func"
    BTF_ID = "ptr_"
    """PTR_TO_BTF_ID: a kernel object typed by the target BTF (`Reg.btf_id`)."""


PACKET_TYPES = frozenset({RegType.PACKET, RegType.PACKET_META})
POINTER_TYPES = frozenset(t for t in RegType if t not in (RegType.NOT_INIT, RegType.SCALAR))


@record
class MapInfo:
    """The facts about a map the verifier uses (from a `MapSpec`)."""

    name: str
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    inner: MapInfo | None = None
    """ARRAY_OF_MAPS/HASH_OF_MAPS: the template of the maps it holds (a lookup gives one of them)."""
    frozen: bool = False
    """Frozen after creation (`.rodata`): with BPF_F_RDONLY_PROG, its contents are constants."""
    value0: bytes = field(default=b"", compare=False)
    """The initial value of element 0 (global data), for constant strings in frozen maps."""

    @property
    def readonly(self) -> bool:
        """BPF_F_RDONLY_PROG: programs may not write the values."""
        return bool(self.flags & 0x80)

    @property
    def constant(self) -> bool:
        """The kernel's bpf_map_is_rdonly: read-only for programs and frozen, so values never change."""
        return self.readonly and self.frozen


OF_MAPS = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})


def map_info(obj: Any, where: str) -> MapInfo:
    """The `MapInfo` of a `MapSpec` (or of anything with a `spec` attribute holding one, a `VmMap`);
    raises ValueError if `obj` does not describe a map."""
    spec = getattr(obj, "spec", obj)
    try:
        mtype = MapType(spec.type)
        inner_spec = getattr(spec, "inner_map", None)
        inner = map_info(inner_spec, f"{where} (inner map)") if inner_spec is not None else None
        if mtype in OF_MAPS and inner is None:
            raise ValueError(f"{where}: a map of maps without an inner map template")
        value0 = b""
        for key, value in getattr(spec, "contents", ()) or ():
            if mtype is MapType.ARRAY and bytes(key) == bytes(len(key)):
                value0 = bytes(value)
        return MapInfo(str(getattr(spec, "name", "") or where), mtype, int(spec.key_size),
                       int(spec.value_size), int(spec.max_entries), int(getattr(spec, "flags", 0)), inner,
                       bool(getattr(spec, "freeze", False)), value0)
    except (AttributeError, TypeError) as err:
        raise ValueError(str(err)) from None


@record
class Reg:
    """One register. For pointers `b` is the variable part of the offset and `off` the fixed part.

    `id` links registers that hold the same value (scalars copied with MOV, pointers from one map
    lookup, packet pointers with the same variable offset); `ref_obj_id` names an acquired reference
    (a ring buffer reservation) the register points into.
    """

    type: RegType = RegType.NOT_INIT
    b: Bounds = UNBOUNDED
    off: int = 0
    id: int = 0
    ref_obj_id: int = 0
    maybe_null: bool = False
    map: MapInfo | None = None
    range: int = 0
    """PACKET/PACKET_META: bytes known to be inside the packet, from the pointer's base."""
    mem_size: int = 0
    """MEM: bytes the pointer may access."""
    ringbuf: bool = False
    rdonly: bool = False
    frameno: int = 0
    """STACK: the call frame whose stack this points into."""
    subprog: int = 0
    """FUNC: the entry instruction of the function."""
    btf_id: int = 0
    """BTF_ID: the struct's type id in the target BTF; `btf_name` its name (for messages)."""
    btf_name: str = ""
    trust: int = 0
    """BTF_ID: plain (0), trusted (1) or untrusted (2): see `bpfkit.vm.verifier.btfmem`."""

    @property
    def is_scalar(self) -> bool:
        return self.type is RegType.SCALAR

    @property
    def is_pointer(self) -> bool:
        return self.type in POINTER_TYPES

    @property
    def is_init(self) -> bool:
        return self.type is not RegType.NOT_INIT

    def with_bounds(self, b: Bounds) -> Reg:
        return replace(self, b=b)

    def type_name(self) -> str:
        """The kernel log's name of the type: `map_value_or_null`, `ringbuf_mem`, `scalar`..."""
        name = self.type.value
        if self.type is RegType.MEM and self.ringbuf:
            name = "ringbuf_mem"
        if self.type is RegType.BTF_ID:
            name = ("ptr_", "trusted_ptr_", "untrusted_ptr_")[self.trust] + self.btf_name
        if self.rdonly:
            name = "rdonly_" + name
        if self.maybe_null:
            name += "_or_null"
        return name

    def describe(self) -> str:
        """Kernel log style: `scalar(umax=255)`, `map_value(map=counts,ks=4,vs=8)`, `fp-8`, `0`."""
        if self.type is RegType.NOT_INIT:
            return "?"
        if self.type is RegType.SCALAR:
            text = self.b.describe()
            return text if self.b.is_const else f"scalar({text})"
        if self.type is RegType.STACK and self.b.is_const and self.b.value == 0:
            return f"fp{self.off:+d}" if self.off else "fp0"
        parts = []
        if self.id:
            parts.append(f"id={self.id}")
        if self.ref_obj_id:
            parts.append(f"ref_obj_id={self.ref_obj_id}")
        if self.off:
            parts.append(f"off={self.off}")
        if self.type in PACKET_TYPES:
            parts.append(f"r={self.range}")
        if self.map is not None:
            parts.append(f"map={self.map.name},ks={self.map.key_size},vs={self.map.value_size}")
        if self.type is RegType.MEM:
            parts.append(f"sz={self.mem_size}")
        if not (self.b.is_const and self.b.value == 0):
            parts.append(self.b.describe())
        return f"{self.type_name()}({','.join(parts)})"


NOT_INIT = Reg()
UNKNOWN = Reg(RegType.SCALAR)


def scalar(b: Bounds = UNBOUNDED) -> Reg:
    return Reg(RegType.SCALAR, b)


def const(value: int) -> Reg:
    return Reg(RegType.SCALAR, Bounds.const(value))


def pointer(kind: RegType, **fields: object) -> Reg:
    """A pointer with no variable offset."""
    return Reg(kind, ZERO, **fields)  # type: ignore[arg-type]


class Byte(enum.Enum):
    """What one stack byte holds (the kernel's STACK_* slot types); the value is the log's letter."""

    INVALID = "?"
    MISC = "m"
    ZERO = "0"
    SPILL = "r"


@record
class StackSlot:
    """One 8-byte stack slot: the kind of each byte (lowest address first) and a spilled register."""

    kinds: tuple[Byte, ...] = (Byte.INVALID,) * SLOT
    spilled: Reg | None = None

    def describe(self) -> str:
        if self.spilled is not None and all(k is Byte.SPILL for k in self.kinds):
            return self.spilled.describe()
        return "".join(k.value for k in reversed(self.kinds))


EMPTY_SLOT = StackSlot()


@record(frozen=False)
class Frame:
    """One call frame: registers and stack. `callsite` is the call instruction (-1 for the main
    program), `subprog` the entry instruction of the function running in it."""

    regs: list[Reg]
    stack: dict[int, StackSlot] = field(default_factory=dict)
    """Slot index (0 is fp-8..fp-1) -> slot; missing slots are uninitialised."""
    frameno: int = 0
    callsite: int = -1
    subprog: int = 0
    callback: str = ""
    """Non-empty in a callback invoked by a helper (bpf_loop...): the helper's name."""
    callback_ret: tuple[int, int] = (0, 1)
    entry_refs: tuple[tuple[int, int], ...] = ()
    """The references held when a callback was entered (it must not return holding others)."""

    def copy(self) -> Frame:
        return Frame(list(self.regs), dict(self.stack), self.frameno, self.callsite, self.subprog,
                     self.callback, self.callback_ret, self.entry_refs)

    def slot(self, index: int) -> StackSlot:
        return self.stack.get(index, EMPTY_SLOT)


@record
class Edge:
    """A control transfer on the path to an instruction: `kind` is taken / not taken / goto / call /
    return."""

    src: int
    dst: int
    kind: str


@record
class PathNode:
    """A persistent list of the edges a path took (shared between the paths that forked from it)."""

    edge: Edge
    prev: PathNode | None
    length: int

    def edges(self) -> list[Edge]:
        out = []
        node: PathNode | None = self
        while node is not None:
            out.append(node.edge)
            node = node.prev
        out.reverse()
        return out


@record(frozen=False)
class State:
    """The state of one path: call frames (the last is running), acquired references and counters."""

    frames: list[Frame]
    refs: tuple[tuple[int, int], ...] = ()
    """(reference id, instruction that acquired it) of every unreleased reference."""
    may_goto_depth: int = 0
    rcu: bool = False
    """Inside bpf_rcu_read_lock() (active_rcu_lock)."""
    path: PathNode | None = None
    parent: object = None
    """The last checkpoint this path passed (see `bpfkit.vm.verifier.check`)."""
    hist: list[tuple[int, int, int, object]] = field(default_factory=list)
    """The instructions run since that checkpoint (see `bpfkit.vm.verifier.precision`)."""

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def regs(self) -> list[Reg]:
        return self.frames[-1].regs

    def copy(self) -> State:
        return State([f.copy() for f in self.frames], self.refs, self.may_goto_depth, self.rcu, self.path,
                     self.parent, list(self.hist))

    def add_edge(self, src: int, dst: int, kind: str) -> None:
        length = self.path.length + 1 if self.path is not None else 1
        self.path = PathNode(Edge(src, dst, kind), self.path, length)

    def all_regs(self) -> list[tuple[Frame, int, Reg]]:
        """Every register and spilled register of every frame: (frame, index, reg); spilled
        registers have index -1 - slot."""
        out = []
        for frame in self.frames:
            for i, reg in enumerate(frame.regs):
                out.append((frame, i, reg))
            for index, slot in frame.stack.items():
                if slot.spilled is not None:
                    out.append((frame, -1 - index, slot.spilled))
        return out

    def set_reg(self, frame: Frame, index: int, reg: Reg) -> None:
        """Store `reg` where `all_regs` found a register (a register, or a spilled slot)."""
        if index >= 0:
            frame.regs[index] = reg
        else:
            slot = frame.stack[-1 - index]
            frame.stack[-1 - index] = StackSlot(slot.kinds, reg)

    def map_regs(self, fn: object) -> None:
        """Replace every register (and spilled register) `r` with `fn(r)` where that differs."""
        assert callable(fn)
        for frame, index, reg in self.all_regs():
            new = fn(reg)
            if new is not reg:
                self.set_reg(frame, index, new)
