"""The JIT's native map helpers (`bpfkit.vm.jit.fastcalls`) against the kernel: the same sequence of
programs (lookup and increment, update with each flag) on a kernel map through BPF_PROG_TEST_RUN and on
a VM map run by the JIT gives the same r0 at every step and the same map contents at the end."""

from __future__ import annotations

import pytest

from bpfkit.isa import Builder, Instruction
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapType, ProgType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg
from bpfkit.vm import Vm
from bpfkit.vm.jit import jit_supported

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")]
R = Reg
U32 = 0xFFFFFFFF
PACKET = bytes(64)

Step = tuple[str, int, int, int]
"""(op, key, flags, value): op "get" adds 3 to the value and returns it (0xFFFF when missing), "set"
returns the update's result."""


def program(fd: int, step: Step) -> list[Instruction]:
    op, key, flags, value = step
    b = Builder().st(4, R.R10, -4, key).st(4, R.R10, -16, value).st(4, R.R10, -12, 0)
    b.ld_imm64(R.R1, fd, PseudoSrc.MAP_FD).mov(R.R2, R.R10).add(R.R2, -4)
    if op == "get":
        b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "missing").mov(R.R1, 3)
        b.atomic(8, AtomicOp.ADD, R.R0, 0, R.R1).ldx(8, R.R0, R.R0, 0).exit()
        b.label("missing").mov(R.R0, 0xFFFF).exit()
    else:
        b.mov(R.R3, R.R10).add(R.R3, -16).mov(R.R4, flags).call(Helper.MAP_UPDATE_ELEM).exit()
    return b.build()


HASH_STEPS: list[Step] = [
    ("get", 1, 0, 0), ("set", 1, 0, 10), ("get", 1, 0, 0), ("get", 1, 0, 0), ("set", 1, 1, 5),
    ("set", 2, 2, 5), ("set", 2, 1, 20), ("set", 3, 0, 30), ("set", 4, 0, 40), ("set", 5, 0, 50),
    ("get", 2, 0, 0), ("set", 1, 2, 7), ("get", 1, 0, 0), ("set", 1, 3, 7), ("get", 9, 0, 0),
]
ARRAY_STEPS: list[Step] = [
    ("get", 2, 0, 0), ("set", 2, 0, 10), ("get", 2, 0, 0), ("set", 2, 1, 5), ("set", 7, 0, 5),
    ("set", 3, 2, 30), ("get", 3, 0, 0), ("get", 9, 0, 0), ("set", 0, 3, 1), ("get", 0, 0, 0),
]


@pytest.mark.parametrize(("map_type", "steps"), [(MapType.HASH, HASH_STEPS), (MapType.ARRAY, ARRAY_STEPS)],
                         ids=["hash", "array"])
def test_native_map_helpers_match_the_kernel(map_type: MapType, steps: list[Step]) -> None:
    spec = MapSpec(map_type, 4, 8, 4, name="m")
    vm = Vm()
    vm_map = vm.create_map(spec)
    with Map.create(spec) as kernel_map:
        for step in steps:
            kernel_prog = Program.load(program(kernel_map.fileno(), step), ProgType.XDP, name="step")
            vm_prog = vm.load(program(vm_map.fd, step), prog_type=ProgType.XDP)
            with kernel_prog, vm_prog:
                for _ in range(2 if step[0] == "get" else 1):  # a second get runs natively
                    expected = kernel_prog.test_run(PACKET).retval & U32
                    assert vm_prog.test_run(PACKET, engine="jit").retval & U32 == expected, step
        kernel = sorted((bytes(k), bytes(v)) for k, v in kernel_map.items())
    assert sorted(vm_map.items()) == kernel
