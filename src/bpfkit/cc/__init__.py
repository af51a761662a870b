"""The C front end: compile BPF C with clang (or zig cc) against headers generated from the kernel's BTF,
and a BCC-style Python API (`BPF`) over the kernel layer.

    spec = bpfkit.cc.compile(Path("prog.c"))          # -> ObjectSpec (cached by content)
    b = bpfkit.BPF(text=src); b.attach_tracepoint(tp="syscalls:sys_enter_openat", fn_name="handler")

Submodules load on first use, so importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compile": "driver", "compile_to_file": "driver", "CompileResult": "driver",
    "find_compiler": "toolchain", "Compiler": "toolchain", "CompilerNotFoundError": "toolchain",
    "Diagnostic": "diagnostics", "BPF": "bcc", "vmlinux_include_dir": "headers", "cache_dir": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
