"""The printf conversions bpftrace recognises: one pattern for the compiler's checks (argument count and
types, pinned-iterator formats) and for the runtime's formatting (`bpfkit.trace.printf`).

Flags, width, precision, length modifier, conversion. As in bpftrace, a ``*`` width or precision is
not a conversion: ``%*d`` is printed as text (and an argument meant for it is one too many).
"""

from __future__ import annotations

import re

PRINTF_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?"
                         r"(?P<len>hh|h|ll|l|j|z|t)?(?P<conv>[diouxXcspr%])")


def printf_specs(fmt: str) -> list[re.Match[str]]:
    """The conversions of a printf format other than ``%%``."""
    return [m for m in PRINTF_SPEC.finditer(fmt) if m["conv"] != "%"]
