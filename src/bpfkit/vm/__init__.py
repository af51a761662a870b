"""The userspace eBPF runtime: memory regions, an interpreter, a translating engine, maps and helpers
with kernel semantics.

`Vm` holds maps and helpers; `Vm.load` gives a `VmProgram` whose `test_run` mirrors
BPF_PROG_TEST_RUN. This package never imports `bpfkit.kernel`.
"""

from bpfkit.vm.context import Context, RawContext, RawMemory, SkbContext, XdpContext
from bpfkit.vm.helpers import HelperDef, HelperRegistry, conformance_helpers, default_helpers
from bpfkit.vm.interp import Interpreter, TraceStep
from bpfkit.vm.machine import ENGINES, EngineName, Task, TestRunResult, Vm, VmProgram
from bpfkit.vm.maps import VmMap
from bpfkit.vm.memory import AddressSpace, Region, RegionKind
from bpfkit.vm.program import LoadedProgram
from bpfkit.vm.readers import VmPerfBuffer, VmRingBuffer
from bpfkit.vm.runtime import BPF_MAX_LOOPS, DEFAULT_BUDGET, HelperFn, ProgramExit, RunState

__all__ = [
    "BPF_MAX_LOOPS",
    "DEFAULT_BUDGET",
    "ENGINES",
    "AddressSpace",
    "Context",
    "EngineName",
    "HelperDef",
    "HelperFn",
    "HelperRegistry",
    "Interpreter",
    "LoadedProgram",
    "ProgramExit",
    "RawContext",
    "RawMemory",
    "Region",
    "RegionKind",
    "RunState",
    "SkbContext",
    "Task",
    "TestRunResult",
    "TraceStep",
    "Vm",
    "VmMap",
    "VmPerfBuffer",
    "VmProgram",
    "VmRingBuffer",
    "XdpContext",
    "conformance_helpers",
    "default_helpers",
]
