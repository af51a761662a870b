"""An x86-64 JIT for the userspace VM: eBPF compiled to native code that runs in this process.

`Vm(engine="jit")` or `test_run(engine="jit")` run a program natively behind the usual API. Pointers the
program sees are real host addresses of the VM's regions; every memory access not proven safe is checked
inline against the region table and faults with the same `VmMemoryError` as the interpreter. Helpers are
the VM's own, called back through ctypes with addresses translated at the boundary, except those the
JIT emits natively (`natives`: bpf_tail_call into JIT-compiled targets, the ring buffer helpers in
verified programs, and the map, clock and random helpers of `fastcalls`);
`JitOptions(native_helpers=False)` sends every call through Python.

A program loaded with `Vm.load(..., verify=True)` runs with the accesses in its
`VerifierResult.proven_safe` unchecked, and its loads of plain context fields too
(`VerifierResult.ctx_loads`, decided per run by `native_ctx`); any other program runs checked, except
the accesses inside map values that the JIT proves itself (`map_values`: after a lookup's NULL
test, at constant offsets inside the value).
`set_options(program, JitOptions(...))` overrides that: `proven_safe` lists slots whose accesses need
no check, `unsafe` drops every check. The contract for `proven_safe`: at each listed slot, on every
path, the base register holds the real address of a plain host buffer (a stack frame, map value, raw
memory or ring buffer record, or the packet up to data_end: never a hooked context) that covers the
access; the caller guarantees the run matches what was verified (`VmProgram.test_run` refuses raw
data shorter than the verified `mem_size`).

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
