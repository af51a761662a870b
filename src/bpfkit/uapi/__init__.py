"""Kernel ABI facts as Python constants: `IntEnum`/`IntFlag` classes named after the UAPI enums.

`enums` is generated from the kernel's BTF by `tools/gen_uapi.py`; `flags` holds the hand-written
`#define` flag groups of `linux/bpf.h` that BTF cannot carry. Names are resolved lazily, so importing
one submodule (`bpfkit.uapi.insn`, `bpfkit.uapi.btf`) does not build every enum class.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._cenum import CEnum as CEnum
from ._cenum import CFlag as CFlag
from ._cenum import CSource as CSource
from ._cenum import c_names as c_names
from ._cenum import source_of as source_of

_LAZY_MODULES = ("enums", "flags")


def __getattr__(name: str) -> Any:
    if name == "__all__":  # `from bpfkit.uapi import *` asks for it; build it on demand
        value = _all()
        globals()[name] = value
        return value
    for module in _LAZY_MODULES:
        mod = importlib.import_module(f"{__name__}.{module}")
        if name in mod.__all__:
            value = getattr(mod, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_all()))


def _all() -> list[str]:
    from .enums import __all__ as enums_all
    from .flags import __all__ as flags_all

    return ["CEnum", "CFlag", "CSource", "c_names", "source_of", *enums_all, *flags_all]

