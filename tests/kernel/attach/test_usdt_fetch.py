"""USDT arguments read in the kernel by code from `bpfkit.obj.usdt`, on a program gcc builds with
<sys/sdt.h>: a probe with register, sub-register, stack memory and constant arguments of every size,
signed and unsigned. The oracle is the C program's own values (computed here with C's conversions).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.isa import Builder
from bpfkit.kernel.attach.usdt import attach_usdt, find_usdt
from bpfkit.kernel.attach.usdt_args import ArgKind
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.obj.usdt import emit_usdt_arg
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.uapi.insn import PseudoSrc, Reg

pytestmark = pytest.mark.kernel

SDT_HEADER = Path("/usr/include/x86_64-linux-gnu/sys/sdt.h")
SOURCE = r"""
#include <sys/sdt.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 7;
    volatile short vs = (short)(-n * 3);                 /* volatile: passed as a stack operand */
    volatile unsigned char vc = (unsigned char)(n + 200);
    volatile long vl = -n * 100000000000L;
    signed char sc = (signed char)(-n);
    int i = (int)(n * 1000);
    unsigned u = (unsigned)(n * 3000000000u);
    DTRACE_PROBE9(bpfkit_fetch, args, n, vs, vc, vl, sc, i, u, 42, -7);
    return 0;
}
"""
NARGS = 9
MASK = (1 << 64) - 1


def c_int(value: int, bits: int, signed: bool) -> int:
    """`value` converted to a C integer of `bits` bits, then widened to a u64 as the fetch gives it."""
    v = value & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v & MASK


def expected(n: int) -> list[int]:
    return [c_int(n, 64, True), c_int(-n * 3, 16, True), c_int(n + 200, 8, False),
            c_int(-n * 100000000000, 64, True), c_int(-n, 8, True), c_int(n * 1000, 32, True),
            c_int(n * 3000000000, 32, False), 42, c_int(-7, 64, True)]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the probe target)")
    if not SDT_HEADER.exists():
        pytest.skip(f"{SDT_HEADER} is missing (apt install systemtap-sdt-dev)")
    d = tmp_path_factory.mktemp("usdt_fetch")
    (d / "t.c").write_text(SOURCE)
    subprocess.run(["gcc", "-O1", "-o", "t", "t.c"], cwd=d, check=True, capture_output=True)
    return d / "t"


@pytest.fixture
def values() -> Iterator[Map]:
    with Map.create(MapSpec(MapType.ARRAY, 4, 8, NARGS, name="usdt_vals"), key=int, value=int) as m:
        yield m


def fetch_all_program(args: tuple[object, ...], map_fd: int) -> Program:
    """A kprobe program storing every argument i of the probe in values[i]."""
    b = Builder()
    b.mov(Reg.R6, Reg.R1)
    for i in range(len(args)):
        emit_usdt_arg(b, Reg.R7, Reg.R6, args, i, stack_off=-8)  # type: ignore[arg-type]
        b.st(4, Reg.R10, -16, i)
        b.ld_imm64(Reg.R1, map_fd, PseudoSrc.MAP_FD)
        b.mov(Reg.R2, Reg.R10).add(Reg.R2, -16)
        b.call(Helper.MAP_LOOKUP_ELEM)
        b.jmp("jeq", Reg.R0, 0, f"skip{i}")
        b.stx(8, Reg.R0, 0, Reg.R7)
        b.label(f"skip{i}")
    b.mov(Reg.R0, 0).exit()
    return Program.load(list(b.build()), ProgType.KPROBE, name="usdt_fetch")


def test_probe_has_every_operand_form(target: Path) -> None:
    (site,) = find_usdt(str(target), "bpfkit_fetch", "args")
    kinds = {a.kind for a in site.args}
    assert kinds == {ArgKind.REG, ArgKind.REG_DEREF, ArgKind.CONST}, site.arg_spec
    sizes = {(a.size, a.signed) for a in site.args}
    assert sizes >= {(8, True), (2, True), (1, False), (4, False), (1, True)}


@pytest.mark.parametrize("n", [5, 123456])
def test_arguments_read_in_the_kernel(target: Path, values: Map, n: int) -> None:
    (site,) = find_usdt(str(target), "bpfkit_fetch", "args")
    assert len(site.args) == NARGS
    with fetch_all_program(site.args, values.fileno()) as prog, \
            attach_usdt(prog, str(target), "bpfkit_fetch", "args"):
        subprocess.run([str(target), str(n)], check=True)
        got = [values[i] for i in range(NARGS)]
    assert got == expected(n), f"spec: {site.arg_spec}"
