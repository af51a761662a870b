"""The VM's bpf_get_prandom_u32 generator: SplitMix64 over one 64-bit state word in host memory.

The state lives in a ctypes `c_uint64` so that the JIT's native code (`bpfkit.vm.jit.fastcalls`) can
advance the very same word the Python helper advances: every engine draws from one stream, and a VM
made with the same seed gives the same numbers whichever engine runs the program.

SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014):
state += GAMMA; z = state; z = (z ^ z >> 30) * M1; z = (z ^ z >> 27) * M2; z ^= z >> 31. The helper
returns the high 32 bits of z. The kernel's own generator (a Tausworthe LFSR) is not reproduced: no
program can rely on the kernel's sequence, only on the range and the spread of the values.
"""

from __future__ import annotations

import ctypes
import os

GAMMA = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
U64 = 0xFFFFFFFFFFFFFFFF


def mix(z: int) -> int:
    """The SplitMix64 output function of an advanced state."""
    z = ((z ^ (z >> 30)) * M1) & U64
    z = ((z ^ (z >> 27)) * M2) & U64
    return z ^ (z >> 31)


class Prandom:
    """A seeded generator of 32-bit values; `address` is where its state word lives."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self._state = ctypes.c_uint64(seed & U64)
        self.address: int = ctypes.addressof(self._state)

    @property
    def state(self) -> int:
        return int(self._state.value)

    def next_u32(self) -> int:
        """Advance the state and return the next value (the high half of the mixed state)."""
        state = (self._state.value + GAMMA) & U64
        self._state.value = state
        return mix(state) >> 32
