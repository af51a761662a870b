"""The address space: regions at fake addresses, bounds and permission checks, hooks."""

from __future__ import annotations

import pytest

from bpfkit.errors import VmMemoryError
from bpfkit.isa import Builder
from bpfkit.uapi.insn import Reg
from bpfkit.vm import AddressSpace, RegionKind, Vm
from bpfkit.vm.memory import DATA_SLOT0, SLOT_SHIFT, STACK_SLOT0

from .conftest import run_both


def test_regions_get_distinct_kernel_looking_addresses() -> None:
    mem = AddressSpace()
    a = mem.map(bytearray(16), RegionKind.MEMORY)
    b = mem.map(bytearray(16), RegionKind.MAP_VALUE)
    assert a.base != b.base
    assert a.base >> 48 == 0xFFFF and b.base >> SLOT_SHIFT > DATA_SLOT0
    assert mem.region_of(a.base + 15) is a
    assert mem.region_of(0) is None


def test_load_store_round_trip_and_sign_extension() -> None:
    mem = AddressSpace()
    r = mem.map(bytearray(8), RegionKind.MEMORY)
    mem.store(r.base, 8, 0x8877665544332211)
    assert mem.load(r.base, 4) == 0x44332211
    assert mem.load(r.base + 7, 1, signed=True) == 0xFFFF_FFFF_FFFF_FF88
    mem.store(r.base + 2, 2, 0x1_ABCD)  # only the low 2 bytes are written
    assert mem.read_bytes(r.base, 4) == bytes.fromhex("1122cdab")


@pytest.mark.parametrize(("delta", "size", "text"), [
    (8, 1, "out of bounds"), (5, 4, "out of bounds"), (-1, 1, "no memory is mapped"),
])
def test_out_of_bounds_accesses_fault(delta: int, size: int, text: str) -> None:
    mem = AddressSpace()
    r = mem.map(bytearray(8), RegionKind.MEMORY)
    with pytest.raises(VmMemoryError, match=text):
        mem.load(r.base + delta, size)


def test_null_and_read_only() -> None:
    mem = AddressSpace()
    with pytest.raises(VmMemoryError, match="NULL"):
        mem.load(0, 8)
    ro = mem.map(b"abcd", RegionKind.RODATA, writable=False)
    assert mem.load(ro.base, 1) == ord("a")
    with pytest.raises(VmMemoryError, match="read-only"):
        mem.store(ro.base, 1, 0)
    with pytest.raises(VmMemoryError):
        mem.map(b"xx", RegionKind.MEMORY, writable=True)  # bytes cannot back a writable region


def test_unmapped_slots_are_reused() -> None:
    mem = AddressSpace()
    a = mem.map(bytearray(4), RegionKind.RINGBUF)
    mem.unmap(a)
    with pytest.raises(VmMemoryError):
        mem.load(a.base, 1)
    b = mem.map(bytearray(4), RegionKind.RINGBUF)
    assert b.base == a.base


def test_hooks_rewrite_loads_and_refuse_stores() -> None:
    mem = AddressSpace()

    def load(off: int, size: int) -> int | None:
        return 0xDEAD if off == 0 else None

    def store(off: int, size: int, value: int) -> bool:
        raise VmMemoryError("no")

    r = mem.map(bytearray(b"\x01\x02\x03\x04"), RegionKind.CTX, load_hook=load, store_hook=store)
    assert mem.load(r.base, 4) == 0xDEAD
    assert mem.load(r.base + 1, 1) == 2
    with pytest.raises(VmMemoryError):
        mem.store(r.base, 1, 0)


def test_r10_is_the_top_of_a_512_byte_stack() -> None:
    # Opt-out (verify=False): a store above the frame on purpose: the run-time check is under test.
    b = Builder().mov(Reg.R0, Reg.R10).exit()
    top = run_both(b, verify=False).retval
    assert top == ((STACK_SLOT0 << SLOT_SHIFT) + 512)
    # the whole frame is usable, one byte further is not
    ok = Builder().st(8, Reg.R10, -512, 7).ldx(8, Reg.R0, Reg.R10, -512).exit()
    assert run_both(ok, verify=False).retval == 7
    with pytest.raises(VmMemoryError, match="out of bounds of the stack region") as info:
        run_both(Builder().mov(Reg.R0, 0).stx(1, Reg.R10, 0, Reg.R0).exit(), verify=False)
    assert info.value.pc == 1


@pytest.mark.parametrize("engine", ["fast", "interp"])
def test_faults_name_the_instruction(engine: str) -> None:
    # Opt-out (verify=False): faults on purpose: the run-time checks are under test.
    b = Builder().mov(Reg.R0, 0).mov(Reg.R1, 0).ldx(8, Reg.R0, Reg.R1, 16).exit()
    prog = Vm().load(b.build(), verify=False)
    with pytest.raises(VmMemoryError) as info:
        prog.test_run(engine=engine)  # type: ignore[arg-type]
    err = info.value
    assert err.pc == 2 and err.insn == b.build()[2]
    assert "pc 2" in str(err) and "r0 = *(u64 *)(r1 + 16)" in str(err)


def test_wild_pointers_never_crash() -> None:
    # Opt-out (verify=False): wild pointers on purpose: the run-time checks are under test.
    for addr in (1 << 63, (1 << 64) - 1, 0xFFFF_8880_0000_0000, 0xFFFF_C900_0000_0000 + 4096):
        b = Builder().ld_imm64(Reg.R1, addr).ldx(4, Reg.R0, Reg.R1, -8).exit()
        with pytest.raises(VmMemoryError):
            run_both(b, verify=False)
