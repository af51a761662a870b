"""The kernel layer: the only part of bpfkit that talks to the OS.

Every system call goes through `bpfkit.kernel.syscall` (replaceable by a fake in unit tests).
`Map.create(spec)` and `Program.load(spec)` make kernel objects from `bpfkit.obj` specs; `Fd` owns their
file descriptors; `features` says what the running kernel supports.
"""

# The names below are imported on first use (PEP 562): `bpfkit trace` imports a few submodules
# and must not pay for the rest (start-up is a hot path).
from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._lazy import lazy_attributes

if TYPE_CHECKING:
    from bpfkit.kernel.codec import Codec, CodecError
    from bpfkit.kernel.fd import Fd
    from bpfkit.kernel.maps import Map, MapInfo, MapOperationError
    from bpfkit.kernel.programs import Program, ProgramInfo, TestRunResult
    from bpfkit.kernel.syscall import LinuxSyscalls, Syscalls, current, override

_LAZY = {
    "Codec": "bpfkit.kernel.codec",
    "CodecError": "bpfkit.kernel.codec",
    "Fd": "bpfkit.kernel.fd",
    "Map": "bpfkit.kernel.maps",
    "MapInfo": "bpfkit.kernel.maps",
    "MapOperationError": "bpfkit.kernel.maps",
    "Program": "bpfkit.kernel.programs",
    "ProgramInfo": "bpfkit.kernel.programs",
    "TestRunResult": "bpfkit.kernel.programs",
    "LinuxSyscalls": "bpfkit.kernel.syscall",
    "Syscalls": "bpfkit.kernel.syscall",
    "current": "bpfkit.kernel.syscall",
    "override": "bpfkit.kernel.syscall",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Codec",
    "CodecError",
    "Fd",
    "LinuxSyscalls",
    "Map",
    "MapInfo",
    "MapOperationError",
    "Program",
    "ProgramInfo",
    "Syscalls",
    "TestRunResult",
    "current",
    "override",
]
