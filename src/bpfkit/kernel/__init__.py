"""The kernel layer: the only part of bpfkit that talks to the OS.

Every system call goes through `bpfkit.kernel.syscall` (replaceable by a fake in unit tests).
`Map.create(spec)` and `Program.load(spec)` make kernel objects from `bpfkit.obj` specs; `Fd` owns their
file descriptors; `features` says what the running kernel supports.
"""

from bpfkit.kernel.codec import Codec, CodecError
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.maps import Map, MapInfo, MapOperationError
from bpfkit.kernel.programs import Program, ProgramInfo, TestRunResult
from bpfkit.kernel.syscall import LinuxSyscalls, Syscalls, current, override

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
