"""Kernel ABI facts as Python constants: `IntEnum`/`IntFlag` classes named after the UAPI enums.

`enums` is generated from the kernel's BTF by `tools/gen_uapi.py`; `flags` holds the hand-written
`#define` flag groups of `linux/bpf.h` that BTF cannot carry.
"""

from __future__ import annotations

from ._cenum import CEnum, CFlag, CSource, c_names, source_of
from .enums import *  # noqa: F403
from .enums import __all__ as _enums_all
from .flags import *  # noqa: F403
from .flags import __all__ as _flags_all

__all__ = ["CEnum", "CFlag", "CSource", "c_names", "source_of", *_enums_all, *_flags_all]
