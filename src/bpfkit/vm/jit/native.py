"""Executable memory: machine code and its data area in one anonymous mapping.

The mapping is made read+write, the code is copied in, then the code pages are switched to read+execute
with mprotect(2); the data pages (inline caches, callback pointers, the callx table) stay read+write. No
page is ever writable and executable at once. `close()` unmaps everything; a finalizer does it for code
that was dropped without being closed.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys
import weakref
from collections.abc import Callable

from bpfkit.errors import VmError

PAGE = mmap.PAGESIZE


def jit_supported() -> str | None:
    """None when native code can run here, else why not (the machine is not x86-64 Linux)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"the JIT emits x86-64 code and this machine is {platform.machine() or 'unknown'}"
    if not sys.platform.startswith("linux"):
        return f"the JIT needs Linux (mmap + mprotect), not {sys.platform}"
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return "the JIT needs a 64-bit Python"
    return None


def _libc_mprotect() -> Callable[[int, int, int], int]:
    fn = ctypes.CDLL(None, use_errno=True).mprotect
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_MPROTECT: Callable[[int, int, int], int] | None = None


def _round(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


class _Mapping:
    """The mmap object and the ctypes view that exports its address (kept apart from `CodeBuffer` so
    the finalizer does not hold the buffer alive)."""

    def __init__(self, size: int) -> None:
        self.map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.view: ctypes.Array[ctypes.c_char] | None = (ctypes.c_char * size).from_buffer(self.map)
        self.address = ctypes.addressof(self.view)

    def release(self) -> None:
        if self.view is not None:
            self.view = None  # drop the export first, or mmap.close() refuses
            self.map.close()


class CodeBuffer:
    """`code` at `address` (read+execute) followed by `data_size` bytes at `data` (read+write, zeroed)."""

    def __init__(self, code: bytes, data_size: int) -> None:
        global _MPROTECT
        reason = jit_supported()
        if reason is not None:
            raise VmError(f"cannot run native code: {reason}")
        self.code_size = _round(max(len(code), 1))
        self.data_size = _round(max(data_size, 1))
        self._mapping = _Mapping(self.code_size + self.data_size)
        self.address = self._mapping.address
        self.data = self.address + self.code_size
        ctypes.memmove(self.address, code, len(code))
        if _MPROTECT is None:
            _MPROTECT = _libc_mprotect()
        if _MPROTECT(self.address, self.code_size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            err = ctypes.get_errno()
            self._mapping.release()
            raise VmError(f"mprotect(PROT_READ|PROT_EXEC) of JIT code failed: {os.strerror(err)}")
        self._finalizer = weakref.finalize(self, self._mapping.release)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Unmap the code and data (idempotent). The code must not be running."""
        self._finalizer()

    def write_data(self, offset: int, data: bytes) -> None:
        if self.closed:
            raise VmError("the JIT code was closed")
        if offset < 0 or offset + len(data) > self.data_size:
            raise VmError(f"data write of {len(data)} bytes at {offset} is outside the data area")
        ctypes.memmove(self.data + offset, data, len(data))

    def zero_data(self, offset: int, size: int) -> None:
        if offset < 0 or offset + size > self.data_size:
            raise VmError(f"data clear of {size} bytes at {offset} is outside the data area")
        ctypes.memset(self.data + offset, 0, size)
