"""The clock helpers as native code: clock_gettime called from JIT code, without Python.

The call goes to libc's `clock_gettime`, which reads the clock through the vDSO (tens of ns, no kernel
entry); only when this process has no such symbol does the code make the raw syscall (a few hundred ns).
Either way the result equals what the VM's Python helpers give (`bpfkit.vm.helpers`):

  * bpf_ktime_get_ns: CLOCK_MONOTONIC, when the VM reads the host's monotonic clock (`fastcalls`
    checks `NativeBlock.real_clock` first; a VM given a `clock` keeps the Python helper);
  * bpf_ktime_get_coarse_ns: the same clock rounded down to COARSE_TICK_NS, as the Python helper does;
  * bpf_ktime_get_boot_ns: CLOCK_BOOTTIME (the Python helper ignores a VM's `clock` too).

The call follows the SysV ABI: eBPF r1-r5 (rdi, rsi, rdx, rcx, r8) are caller-saved there and pushed
around it; r0 (rax) receives the result; r9-r11 are the JIT's scratch registers, never live across a
helper call; r6-r9 and r10 of eBPF (rbx, r13-r15, rbp) and the run block (r12) are callee-saved. JIT code
keeps rsp 16-byte aligned between instructions (`compile` module docstring), so pushing five registers
and reserving 24 bytes (64 in all) keeps it aligned at the call; the timespec lives in those 24 bytes,
on this thread's own stack, so nested and concurrent runs never share it.
"""

from __future__ import annotations

import ctypes
import functools

from bpfkit.vm.jit.x86 import Alu, Asm, Cond, Gp, Label, Mem, Unary

CLOCK_MONOTONIC = 1
CLOCK_BOOTTIME = 7
"""Clock ids (include/uapi/linux/time.h)."""
SYS_CLOCK_GETTIME = 228
"""x86-64 syscall number of clock_gettime (arch/x86/entry/syscalls/syscall_64.tbl)."""
COARSE_TICK_NS = 4_000_000
"""The tick bpf_ktime_get_coarse_ns rounds down to (`helpers.ktime_get_coarse_ns`: one jiffy at HZ=250)."""
NS_PER_SEC = 1_000_000_000

_SAVED = (Gp.RDI, Gp.RSI, Gp.RDX, Gp.RCX, Gp.R8)
"""eBPF r1-r5: the VM gives a caller its r1-r5 back after a helper call."""
_FRAME = 24
"""Bytes reserved below the saved registers: the timespec (16) plus 8 that keep rsp 16-byte aligned."""


@functools.lru_cache(maxsize=1)
def libc_clock_gettime() -> int:
    """The address of libc's `clock_gettime` in this process, 0 when there is none (then native code
    makes the syscall itself)."""
    try:
        fn = ctypes.CDLL(None).clock_gettime
    except (AttributeError, OSError):
        return 0
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def emit_clock_ns(a: Asm, clock_id: int, fallback: Label, *, function: int | None = None,
                  tick: int = 0) -> None:
    """rax = clock `clock_id` in ns (rounded down to a multiple of `tick` when it is not 0), r1-r5 kept;
    jumps to `fallback` (r1-r5 intact, rax clobbered) when clock_gettime fails. `function` is the
    address of a C `clock_gettime` (default: libc's); 0 means the raw syscall."""
    if function is None:
        function = libc_clock_gettime()
    for reg in _SAVED:
        a.push(reg)
    a.alu(Alu.SUB, Gp.RSP, _FRAME)
    a.mov(Gp.RDI, clock_id, 32)
    a.mov(Gp.RSI, Gp.RSP)  # struct timespec {tv_sec, tv_nsec} at [rsp]
    if function:
        a.mov(Gp.RAX, function)
        a.call(Gp.RAX)  # clobbers rax, rcx, rdx, rsi, rdi, r8-r11 (all saved or scratch)
    else:
        a.mov(Gp.RAX, SYS_CLOCK_GETTIME, 32)
        a.raw(b"\x0f\x05")  # syscall: clobbers rcx and r11; -errno in rax on failure
    a.mov(Gp.R9, Gp.RAX, 32)  # 0 when the clock was read
    a.imul_imm(Gp.RAX, Mem(Gp.RSP), NS_PER_SEC)
    a.alu(Alu.ADD, Gp.RAX, Mem(Gp.RSP, 8))
    if tick:  # rax -= rax % tick (rdx is saved: div writes the remainder there)
        a.mov(Gp.R11, Gp.RAX)
        a.alu(Alu.XOR, Gp.RDX, Gp.RDX, 32)
        a.mov(Gp.R10, tick)
        a.unary(Unary.DIV, Gp.R10)
        a.alu(Alu.SUB, Gp.R11, Gp.RDX)
        a.mov(Gp.RAX, Gp.R11)
    a.alu(Alu.ADD, Gp.RSP, _FRAME)
    for reg in reversed(_SAVED):
        a.pop(reg)
    a.test(Gp.R9, Gp.R9, 32)
    a.jcc(Cond.NE, fallback)  # refused (a seccomp filter?): Python reads the clock
