"""printf formatting with C semantics, as bpftrace's output goes through the C library's printf.

Each event's arguments arrive as 8-byte integers or NUL-terminated strings. As in C varargs, a
conversion without a length modifier reads 32 bits (``%d`` of 2**32+5 prints 5, ``%u`` of -1 prints
4294967295), ``h`` 16, ``hh`` 8, and ``l``/``ll``/``j``/``z``/``t`` 64.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfkit.lang.printf_format import PRINTF_SPEC

_BITS = {None: 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}

Arg = int | bytes


def _as_bits(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _pad(text: str, flags: str, width: int | None, numeric: bool) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        prefix = text[len(sign):len(sign) + 2] if text[len(sign):len(sign) + 2] in ("0x", "0X") else ""
        body = text[len(sign) + len(prefix):]
        return sign + prefix + body.rjust(width - len(sign) - len(prefix), "0")
    return text.rjust(width)


def _integer(value: int, conv: str, flags: str, prec: int | None, bits: int) -> str:
    if conv in "di":
        v = _as_bits(value, bits, True)
        digits = str(abs(v))
        sign = "-" if v < 0 else "+" if "+" in flags else " " if " " in flags else ""
    else:
        v = _as_bits(value, bits, False)
        sign = ""
        digits = {"u": str(v), "o": format(v, "o"), "x": format(v, "x"), "X": format(v, "X")}[conv]
    if prec is not None:
        digits = "" if prec == 0 and v == 0 else digits.rjust(prec, "0")
    if "#" in flags and conv == "o" and not digits.startswith("0"):
        digits = "0" + digits  # C: '#' makes the first octal digit a zero, even for 0 with precision 0
    elif "#" in flags and v != 0:
        if conv == "x":
            digits = "0x" + digits
        elif conv == "X":
            digits = "0X" + digits
    return sign + digits


def _text(value: Arg) -> str:
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(value)


def hex_escape(data: bytes) -> str:
    """``%r``: printable ASCII as is, other bytes as ``\\xNN`` (bpftrace's buf() output)."""
    return "".join(chr(c) if 32 <= c < 127 else f"\\x{c:02x}" for c in data)


def format_printf(fmt: str, args: Sequence[Arg]) -> str:
    """Format `args` with the C printf format `fmt`."""
    out: list[str] = []
    pos = 0
    it = iter(args)
    for m in PRINTF_SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        conv = m["conv"]
        if conv == "%":
            out.append("%")
            continue
        flags = m["flags"]
        width = int(m["width"]) if m["width"] else None
        prec = int(m["prec"]) if m["prec"] is not None else None
        value = next(it, 0)
        if conv == "s":
            text = _text(value)
            if prec is not None:
                text = text[:prec]
            out.append(_pad(text, flags, width, False))
        elif conv == "r":
            raw = value if isinstance(value, bytes) else str(value).encode()
            out.append(_pad(hex_escape(raw), flags, width, False))
        elif conv == "c":
            if isinstance(value, bytes):
                code = value[0] if value else 0
            else:
                code = int(value)
            out.append(_pad(chr(code & 0xFF), flags, width, False))
        elif conv == "p":
            v = int(value) if isinstance(value, int) else 0
            out.append(_pad("(nil)" if v == 0 else f"0x{v & (1 << 64) - 1:x}", flags, width, False))
        else:
            v = int(value) if isinstance(value, int) else 0
            text = _integer(v, conv, flags, prec, _BITS[m["len"]])
            out.append(_pad(text, flags if prec is None else flags.replace("0", ""), width, True))
    out.append(fmt[pos:])
    return "".join(out)
