"""`verify`: inputs (instructions, bytecode), the ways maps are named, options, and the result."""

from __future__ import annotations

import pytest

from bpfkit.errors import BpfkitError, VerificationError
from bpfkit.isa import Builder, assemble, encode
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.uapi.insn import Reg
from bpfkit.vm import Vm
from bpfkit.vm.verifier import COMPLEXITY_LIMIT_INSNS, VerifierResult, verify

R = Reg
HASH = MapSpec(MapType.HASH, 4, 8, 4, name="h")
LOOKUP = """
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    {load}
    call bpf_map_lookup_elem
    r0 = 0
    exit
"""


def _lookup(load: str) -> list:
    return assemble(LOOKUP.format(load=load))


def test_result_counts() -> None:
    result = verify(assemble("r0 = 0\nr1 = 0\nl: r1 += 1\nif r1 < 3 goto l\nexit"), prog_type=ProgType.XDP)
    assert isinstance(result, VerifierResult)
    assert result.processed_insns == 2 + 3 * 2 + 1
    assert result.states >= 1 and result.peak_states >= result.states
    assert result.subprograms == (0,) and result.max_stack == 0


def test_stack_figures() -> None:
    text = "r1 = 0\n*(u64 *)(r10 - 40) = r1\ncall f\nr0 = 0\nexit\nf:\n*(u32 *)(r10 - 4) = r1\nr0 = 0\nexit"
    result = verify(assemble(text), prog_type=ProgType.XDP)
    assert result.stack_depths == {0: 40, 5: 4}
    assert result.max_stack == 48 + 16  # rounded to 16 as with the JIT
    assert verify(assemble(text), prog_type=ProgType.XDP, jit=False).max_stack == 64 + 32


def test_bytecode_input() -> None:
    assert verify(encode(assemble("r0 = 0\nexit")), prog_type=ProgType.XDP).processed_insns == 2
    with pytest.raises(VerificationError) as info:
        verify(b"\x18\x00\x00\x00\x00\x00\x00\x00", prog_type=ProgType.XDP)
    assert "LD_IMM64" in info.value.report.message


def test_maps_by_fd_index_and_name() -> None:
    verify(_lookup("r1 = map[id:7]"), prog_type=ProgType.XDP, maps={7: HASH})
    b = Builder()
    b.mov(R.R1, 0).stx(4, R.R10, -4, R.R1).mov(R.R2, R.R10).add(R.R2, -4).ld_map(R.R1, "h").call(1)
    b.mov(R.R0, 0).exit()
    verify(b.build(), prog_type=ProgType.XDP, maps={"h": HASH}, relocations=b.relocations)
    vm = Vm()
    vm_map = vm.create_map(HASH)
    verify(_lookup(f"r1 = map[id:{vm_map.fd}]"), prog_type=ProgType.XDP, maps=[vm_map])


def test_missing_map() -> None:
    with pytest.raises(VerificationError, match="fd 3 is not pointing to valid bpf_map"):
        verify(_lookup("r1 = map[id:3]"), prog_type=ProgType.XDP, maps={7: HASH})
    b = Builder()
    b.ld_map(R.R1, "nope").mov(R.R0, 0).exit()
    with pytest.raises(VerificationError, match="names map 'nope'"):
        verify(b.build(), prog_type=ProgType.XDP, maps={"h": HASH}, relocations=b.relocations)
    with pytest.raises(VerificationError, match="not a map description"):
        verify(_lookup("r1 = map[id:7]"), prog_type=ProgType.XDP, maps={7: "hash"})


def test_complexity_limit() -> None:
    text = "r0 = 0\nr1 = 0\nl: r1 += 1\nif r1 < 1000 goto l\nexit"
    with pytest.raises(VerificationError) as info:
        verify(assemble(text), prog_type=ProgType.XDP, limit=500)
    assert info.value.report.message.startswith("BPF program is too large. Processed 501 insn")
    assert COMPLEXITY_LIMIT_INSNS == 1_000_000


def test_license() -> None:
    text = "r1 = r10\nr1 += -8\n*(u64 *)(r10 - 8) = 0\nr2 = 8\ncall bpf_trace_printk\nr0 = 0\nexit"
    verify(assemble(text), prog_type=ProgType.KPROBE, license="Dual BSD/GPL")
    with pytest.raises(VerificationError, match="GPL-restricted"):
        verify(assemble(text), prog_type=ProgType.KPROBE, license="MIT")


def test_error_is_a_bpfkit_error() -> None:
    with pytest.raises(BpfkitError):
        verify(assemble("exit"), prog_type=ProgType.XDP)


def test_kfunc_and_btf_loads_are_refused_not_crashed() -> None:
    b = Builder()
    b.call_kfunc(1234).mov(R.R0, 0).exit()
    with pytest.raises(VerificationError, match="kfunc"):
        verify(b.build(), prog_type=ProgType.XDP)
    with pytest.raises(VerificationError, match="BTF"):
        verify(assemble("r1 = 0 ll\nr0 = 0\nexit")[:0] + Builder().ld_imm64(R.R1, 5, 3).mov(R.R0, 0)
               .exit().build(), prog_type=ProgType.XDP)
