"""/proc/PID/maps parsing, and resolution of this process's own functions through ELF symbols (the
addresses ctypes gets from the dynamic linker, and the entry point the kernel put in the aux vector,
are the oracles for the load bias)."""

from __future__ import annotations

import ctypes
import os
import struct
import sys

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.stacks import format_stack
from bpfkit.kernel.usyms import Mapping, ProcessSymbols, parse_maps

MAPS = """\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:00 1234                       /usr/bin/prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:00 1234                       /usr/bin/prog
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7f1000000000-7f1000001000 r-xp 00002000 fe:00 99                         /lib/with space.so (deleted)
"""


def test_parse_maps() -> None:
    maps = parse_maps(MAPS.splitlines())
    assert maps[0] == Mapping(0x55D0C0A00000, 0x55D0C0A01000, "r--p", 0, 1234, "/usr/bin/prog")
    assert [m.is_file for m in maps] == [True, True, False, True, False]
    assert maps[3].path == "/lib/with space.so (deleted)" and maps[3].offset == 0x2000


def _addr(fn: object) -> int:
    value = ctypes.cast(fn, ctypes.c_void_p).value
    assert value is not None
    return value


def test_libc_function_resolves() -> None:
    syms = ProcessSymbols()
    libc = ctypes.CDLL(None)
    sym = syms.resolve(_addr(libc.getpid) + 2)
    assert sym is not None and sym.name in ("getpid", "__getpid") and sym.offset == 2
    assert "libc" in os.path.basename(sym.module)


def test_python_c_api_function_resolves() -> None:
    syms = ProcessSymbols()
    addr = _addr(ctypes.pythonapi.PyObject_GetAttr)
    sym = syms.resolve(addr)
    assert sym is not None and sym.name == "PyObject_GetAttr" and sym.offset == 0
    assert syms.address("PyObject_GetAttr", os.path.basename(sym.module)) == addr


def test_executable_entry_point_resolves_to_start() -> None:
    """AT_ENTRY (auxv type 9) is where the kernel started the (possibly PIE) executable: _start."""
    with open("/proc/self/auxv", "rb") as f:
        auxv = dict(struct.iter_unpack("=QQ", f.read()))
    syms = ProcessSymbols()
    sym = syms.resolve(auxv[9])
    if sym is None:
        pytest.skip(f"{sys.executable} has no symbol at its entry point (stripped)")
    assert (sym.name, sym.offset) == ("_start", 0)
    assert str(sym) == f"_start [{os.path.basename(sym.module)}]"


def test_anonymous_memory_and_format_stack() -> None:
    syms = ProcessSymbols()
    buf = ctypes.create_string_buffer(64)
    assert syms.resolve(ctypes.addressof(buf)) is None
    libc = ctypes.CDLL(None)
    text = format_stack([_addr(libc.getpid) + 1, 0x10, 0, 0x20], syms)
    lines = text.splitlines()
    assert len(lines) == 2 and "getpid+0x1 [libc" in lines[0] and lines[1] == "    0x10"


def test_unknown_process() -> None:
    with pytest.raises(KernelError, match="memory map"):
        ProcessSymbols(2**22 + 12345)
