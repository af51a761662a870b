"""Kernel and user symbols against the running kernel: kallsyms, and stacks taken by bpf_get_stackid in
a raw tracepoint program run with BPF_PROG_TEST_RUN from this process (so the kernel stack passes through
the bpf syscall's test-run path and the user stack starts in libc's syscall())."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.isa import Builder
from bpfkit.kernel.ksyms import KernelSymbols
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.stacks import format_stack, read_stack
from bpfkit.kernel.usyms import ProcessSymbols
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType, StackFlags
from bpfkit.uapi.insn import PseudoSrc, Reg

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ksyms() -> KernelSymbols:
    return KernelSymbols.load()


def test_kallsyms_has_addresses_as_root(ksyms: KernelSymbols) -> None:
    assert not ksyms.restricted and len(ksyms) > 1000
    addr = ksyms.address("bpf_prog_test_run_xdp")
    assert str(ksyms.resolve(addr)) == "bpf_prog_test_run_xdp"
    assert str(ksyms.resolve(addr + 0x10)) == "bpf_prog_test_run_xdp+0x10"


def test_kallsyms_agrees_with_the_kernels_own_symbolization(ksyms: KernelSymbols) -> None:
    """/proc/self/stack is symbolized by the kernel; its frames' names must be kallsyms names."""
    try:
        frames = Path("/proc/self/stack").read_text().split()
    except OSError:
        pytest.skip("/proc/self/stack is unavailable")
    names = [f.split("+")[0] for f in frames if "+" in f]
    for name in names:
        ksyms.address(name)


@pytest.fixture
def stacks() -> Iterator[tuple[list[int], list[int]]]:
    """(kernel stack, user stack) of one BPF_PROG_TEST_RUN of a raw_tp program calling bpf_get_stackid."""
    # One map per stack: two stacks in one small map may hash to one bucket (EEXIST).
    with Map.create(MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 16, name="kstacks")) as kmap, \
            Map.create(MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 16, name="ustacks")) as umap, \
            Map.create(MapSpec(MapType.ARRAY, 4, 8, 2, name="ids")) as ids:
        b = Builder()
        b.mov(Reg.R6, Reg.R1)
        for slot, flags, sm in ((0, 0, kmap), (1, int(StackFlags.USER_STACK), umap)):
            b.mov(Reg.R1, Reg.R6)
            b.ld_imm64(Reg.R2, sm.fileno(), PseudoSrc.MAP_FD)
            b.mov(Reg.R3, flags)
            b.call(Helper.GET_STACKID)
            b.stx(8, Reg.R10, -16, Reg.R0)
            b.st(4, Reg.R10, -4, slot)
            b.ld_imm64(Reg.R1, ids.fileno(), PseudoSrc.MAP_FD)
            b.mov(Reg.R2, Reg.R10)
            b.add(Reg.R2, -4)
            b.mov(Reg.R3, Reg.R10)
            b.add(Reg.R3, -16)
            b.mov(Reg.R4, 0)
            b.call(Helper.MAP_UPDATE_ELEM)
        b.mov(Reg.R0, 0)
        b.exit()
        with Program.load(b.encode(), ProgType.RAW_TRACEPOINT, license="GPL") as prog:
            prog.test_run(ctx_in=bytes(8), ctx_out_size=0, repeat=0)
        kid, uid = (int.from_bytes(ids[i], "little", signed=True) for i in (0, 1))
        assert kid >= 0 and uid >= 0, f"bpf_get_stackid failed: {kid}, {uid}"
        yield read_stack(kmap, kid), read_stack(umap, uid)


def test_kernel_stack_is_the_test_run_path(ksyms: KernelSymbols, stacks: tuple[list[int], list[int]]) -> None:
    kstack, _ = stacks
    text = format_stack(kstack, ksyms)
    names = [line.strip().split("+")[0] for line in text.splitlines()]
    assert "bpf_prog_test_run_raw_tp" in names, text
    assert names.index("bpf_prog_test_run_raw_tp") < names.index("__sys_bpf"), text


def test_user_stack_starts_in_libc_syscall(stacks: tuple[list[int], list[int]]) -> None:
    """bpfkit enters bpf(2) through libc's syscall(): the innermost user frame is in it."""
    _, ustack = stacks
    syms = ProcessSymbols()
    top = syms.resolve(ustack[0])
    assert top is not None and top.name == "syscall" and "libc" in top.module, format_stack(ustack, syms)
    start = ctypes.cast(ctypes.CDLL(None).syscall, ctypes.c_void_p).value
    assert start is not None and ustack[0] - start == top.offset
