"""An x86-64 JIT for the userspace VM: eBPF compiled to native code that runs in this process.

`Vm(engine="jit")` or `test_run(engine="jit")` run a program natively behind the usual API. Pointers the
program sees are real host addresses of the VM's regions; every memory access not proven safe is checked
inline against the region table and faults with the same `VmMemoryError` as the interpreter. Helpers are
the VM's own, called back through ctypes with addresses translated at the boundary.

Until bpfkit's verifier exists, every program runs in this checked mode. `set_options(program,
JitOptions(unsafe=True))` compiles without checks, for programs a verifier accepted; `proven_safe`
lists slots whose accesses were proven in bounds.

On a machine that is not x86-64 Linux, the VM falls back to the fast engine with a warning
(`jit_supported()` says why).
"""

from bpfkit.vm.jit.compile import CompiledCode, Compiler
from bpfkit.vm.jit.native import CodeBuffer, jit_supported
from bpfkit.vm.jit.runner import (
    JitEngine,
    JitOptions,
    JitProgram,
    close_programs,
    program_for,
    run_native,
    runtime_for,
    set_options,
)

__all__ = [
    "CodeBuffer",
    "CompiledCode",
    "Compiler",
    "JitEngine",
    "JitOptions",
    "JitProgram",
    "close_programs",
    "jit_supported",
    "program_for",
    "run_native",
    "runtime_for",
    "set_options",
]
