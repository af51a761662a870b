"""trace_pipe reader: a socket filter run with BPF_PROG_TEST_RUN prints with bpf_trace_printk."""

from __future__ import annotations

import errno
import os
import random
import time
from pathlib import Path

import pytest

from bpfkit.errors import KernelError
from bpfkit.isa import Builder
from bpfkit.kernel.programs import Program
from bpfkit.kernel.trace_pipe import TracePipe
from bpfkit.uapi.enums import Helper, ProgType
from bpfkit.uapi.insn import Reg

pytestmark = pytest.mark.kernel


def printk_program(fmt: bytes, arg: int) -> bytes:
    """bpf_trace_printk(fmt, sizeof(fmt), arg) with `fmt` copied onto the stack."""
    fmt += b"\0" * (-len(fmt) % 8 or 8)
    b = Builder()
    base = -len(fmt)
    for i in range(0, len(fmt), 8):
        b.ld_imm64(Reg.R1, int.from_bytes(fmt[i:i + 8], "little"))
        b.stx(8, Reg.R10, base + i, Reg.R1)
    b.mov(Reg.R1, Reg.R10)
    b.add(Reg.R1, base)
    b.mov(Reg.R2, len(fmt.rstrip(b"\0")) + 1)
    b.ld_imm64(Reg.R3, arg)
    b.call(Helper.TRACE_PRINTK)
    b.mov(Reg.R0, 0)
    b.exit()
    return b.encode()


def open_pipe() -> TracePipe:
    """trace_pipe, retried for a few seconds while another tracer on the machine holds it (EBUSY)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return TracePipe()
        except KernelError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_bpf_trace_printk_lines_are_parsed() -> None:
    nonce = random.getrandbits(40)
    with open_pipe() as pipe:
        pipe.read(0)  # drop what earlier runs left behind
        with Program.load(printk_program(b"bpfkit-trace %llu\n", nonce), ProgType.SOCKET_FILTER,
                          license="GPL") as prog:
            prog.test_run(bytes(64), repeat=3)
        mine = []
        for ev in pipe.events(timeout_ms=2000):
            if ev.message == f"bpfkit-trace {nonce}":
                mine.append(ev)
                if len(mine) == 3:
                    break
    assert len(mine) == 3
    ev = mine[0]
    assert ev.pid == os.getpid() and ev.event == "bpf_trace_printk"
    # "<...>" is what the kernel prints when the task's name fell out of its saved_cmdlines cache.
    assert ev.task in (Path("/proc/self/comm").read_text().strip(), "<...>")
    assert ev.cpu in range(os.cpu_count() or 1) and ev.timestamp > 0
    assert mine[0].timestamp <= mine[1].timestamp <= mine[2].timestamp


def test_missing_file_is_a_kernel_error() -> None:
    with pytest.raises(KernelError, match="ENOENT"):
        TracePipe("/nonexistent/trace_pipe")
