"""Small pieces the native helper emitters share."""

from __future__ import annotations

from typing import TypeVar

from bpfkit.isa.opcodes import Kind
from bpfkit.uapi.insn import PseudoSrc
from bpfkit.vm.maps import VmMap, map_by_fd
from bpfkit.vm.memory import MAP_BASE, AddressSpace
from bpfkit.vm.program import LoadedProgram

M = TypeVar("M", bound=VmMap)


def imm64(value: int) -> int:
    """A u64 as the signed 64-bit immediate `Asm.mov` takes."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def program_maps(loaded: LoadedProgram, mem: AddressSpace, cls: type[M]) -> list[M]:
    """The maps of type `cls` that `loaded` loads with LD_IMM64 (in slot order, each once)."""
    out: list[M] = []
    for step in loaded.steps:
        if step is None or step.kind is not Kind.LD_IMM64 or step.insn.src not in (PseudoSrc.MAP_FD,
                                                                                   PseudoSrc.MAP_IDX):
            continue
        addr = step.value or 0
        if addr < MAP_BASE or (addr - MAP_BASE) % 0x1000:
            continue
        vm_map = map_by_fd(mem, 1000 + (addr - MAP_BASE) // 0x1000)
        if isinstance(vm_map, cls) and vm_map.address == addr and vm_map not in out:
            out.append(vm_map)
    return out
