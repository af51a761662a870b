"""The memory shared by native code and Python during a JIT run: the run block, the region table and
the codes they exchange.

Native code keeps a pointer to the `RunBlock` in r12 for the whole run. Field offsets come from the
ctypes structure itself, so the code generator and Python can never disagree about them.
"""

from __future__ import annotations

import ctypes
import enum

from bpfkit.uapi.insn import MAX_CALL_FRAMES

U64 = 0xFFFFFFFFFFFFFFFF


class RunBlock(ctypes.Structure):
    """Per-VM state of a native run (`r12` points here)."""

    _fields_ = [
        ("entry_rsp", ctypes.c_uint64),  # native rsp of the innermost entry (for unwinding exits)
        ("target", ctypes.c_uint64),  # native address of the function an entry calls
        ("args", ctypes.c_uint64 * 5),  # r1..r5 for that call
        ("repeat", ctypes.c_uint64),  # runs left in the native repeat loop
        ("nested", ctypes.c_uint64),  # 0: a top-level run (reset counters per run); 1: nested call
        ("remain", ctypes.c_uint64),  # instructions left in the budget of this run
        ("budget", ctypes.c_uint64),  # what `remain` is reset to for each top-level run
        ("depth", ctypes.c_int64),  # call depth of the running function (-1 before the first)
        ("tail", ctypes.c_uint64),  # tail calls made in this run
        ("status", ctypes.c_uint64),  # set by helper calls: HelperStatus
        ("retval", ctypes.c_uint64),  # r0 of the last completed run
        ("err_pc", ctypes.c_uint64),  # slot of a fault detected by native code
        ("value", ctypes.c_uint64),  # a value the memory fallback produced (load result, old value)
        ("store_val", ctypes.c_uint64),  # the value a store or atomic that missed wanted to write
        ("store_r0", ctypes.c_uint64),  # r0 at that atomic (cmpxchg compares it)
        ("table", ctypes.c_uint64),  # address of the region table
        ("table_len", ctypes.c_uint64),  # entries in it
        ("pkt_data", ctypes.c_uint64),  # host address of the packet data (LD_ABS / LD_IND)
        ("pkt_len", ctypes.c_uint64),  # bytes of packet data
        ("pkt_present", ctypes.c_uint64),  # 0 when the run has no packet
        ("frame_tops", ctypes.c_uint64 * MAX_CALL_FRAMES),  # r10 of each call depth
    ]


def offset(name: str) -> int:
    """Byte offset of a `RunBlock` field."""
    return int(getattr(RunBlock, name).offset)


def arg_offset(i: int) -> int:
    return offset("args") + 8 * i


def frame_tops_offset() -> int:
    return offset("frame_tops")


class Status(enum.IntEnum):
    """What a native entry returns."""

    OK = 0
    PENDING = 1  # a Python exception is waiting in the run (fault, helper error, ProgramExit...)
    BUDGET = 2  # the instruction budget ran out at the segment starting at err_pc
    DEPTH = 3  # a call at err_pc would exceed MAX_CALL_FRAMES
    FELL_OFF = 4  # execution ran past the last instruction (err_pc is the slot it reached)
    NO_PACKET = 5  # LD_ABS/LD_IND at err_pc in a run without packet data


class HelperStatus(enum.IntEnum):
    """`RunBlock.status` after a helper call."""

    OK = 0
    PENDING = 1  # exit the run: an exception is pending
    TAIL_CALL_DONE = 2  # return r0 from the current function (a tail call ran in its place)


class MemStatus(enum.IntEnum):
    """What the Python memory fallback answers."""

    PLAIN = 0
    VALUE = 1  # the access was done in Python; a load's result or the old value is in `value`
    FAULT = 2  # an exception is pending


class MemKind(enum.IntEnum):
    """Access kinds, packed in bits 4-5 of a memory instruction's info word (bit 5: needs write)."""

    LOAD = 1
    STORE = 2
    ATOMIC = 3


FORCED = 0x80
"""Info bit: the access is known to fault (r10 at a constant offset outside the frame)."""
SIGNED = 0x40
"""Info bit: a sign-extending load (never answered from a context's field list)."""


def mem_info(index: int, kind: MemKind, size: int, *, forced: bool = False, signed: bool = False) -> int:
    """The info word the miss path passes in r10: cache index, forced and signed bits, kind, size."""
    return (index << 8) | (FORCED if forced else 0) | (SIGNED if signed else 0) | (int(kind) << 4) | size


def unpack_info(info: int) -> tuple[int, MemKind, int, bool]:
    return info >> 8, MemKind((info >> 4) & 3), info & 15, bool(info & FORCED)


REGION_ENTRY = 32
"""Bytes per region-table entry: u64 start, u64 length, u64 flags, u64 fields (special regions)."""
FIELD_ENTRY = 16
"""Bytes per field entry of a special region: u32 offset, u32 size, u64 value; size 0 ends the list."""
CACHE_ENTRY = 16
"""Bytes per inline cache: u64 start, u64 count (addresses start .. start+count-1 are valid)."""


class RegionFlag(enum.IntFlag):
    WRITABLE = 1
    SPECIAL = 2  # the VM's region has access hooks: loads check `fields`, stores go to Python
    PLAIN_LOADS = 4  # a special region whose hooks leave every load outside `fields` to plain memory
