"""printf in a pinned iter probe: formats for the kernel's bpf_seq_printf.

A pinned iterator runs whenever its pin is read (``cat /sys/fs/bpf/NAME``), long after bpfkit exited,
so its printf cannot go through the event ring buffer: it writes to the iterator's seq_file with
bpf_seq_printf, which formats in the kernel. The kernel accepts a subset of C's conversions
(kernel/bpf/helpers.c, bpf_bprintf_prepare): flags ``0 + - space``, a width, ``l``/``ll``, and
``d i u x X c s`` (plus ``%%``); at most 12 arguments, each passed as a u64 (a string as its address).
The format itself must live in a read-only map (a frozen array map with BPF_F_RDONLY_PROG).
"""

from __future__ import annotations

from bpfkit.lang.printf_format import PRINTF_SPEC

#: MAX_BPRINTF_VARARGS (include/linux/bpf.h): arguments one bpf_seq_printf call takes.
MAX_ARGS = 12
#: The map holding every format of the script, NUL-terminated, one after the other (key 0).
FORMAT_MAP = "__seq_fmt"

# C's 64-bit length modifiers: the kernel knows only l and ll (the same width on x86-64).
_LONG = {"j": "ll", "z": "l", "t": "l", "l": "l", "ll": "ll", None: ""}


def kernel_format(fmt: str) -> tuple[str, list[str]]:
    """`fmt` as bpf_seq_printf takes it, and the conversion of each argument (``d``, ``s``...).

    Raises ValueError naming the first conversion the kernel cannot format.
    """
    out: list[str] = []
    convs: list[str] = []
    pos = 0
    for m in PRINTF_SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()].replace("%", "%%"))  # text, such as "%*d", stays text
        pos = m.end()
        conv = m["conv"]
        if conv == "%":
            out.append("%%")
            continue
        text = m[0]
        if "#" in m["flags"] or m["prec"] is not None:
            raise ValueError(f"'{text}': the kernel's bpf_seq_printf takes no '#' flag or precision")
        if conv not in "diuxXcs":
            raise ValueError(f"'{text}': the kernel's bpf_seq_printf cannot format %{conv}")
        if m["len"] in ("h", "hh"):
            raise ValueError(f"'{text}': the kernel's bpf_seq_printf has no h/hh length modifier")
        if m["len"] is not None and conv in "cs":
            raise ValueError(f"'{text}': a length modifier does not apply to %{conv}")
        out.append(f"%{m['flags']}{m['width'] or ''}{_LONG[m['len']]}{conv}")
        convs.append(conv)
    out.append(fmt[pos:].replace("%", "%%"))
    return "".join(out), convs


def formats_blob(formats: list[bytes]) -> bytes:
    """The value of `FORMAT_MAP`: each format NUL-terminated and 8-byte aligned, in order."""
    blob = bytearray()
    for f in formats:
        blob += f + b"\0"
        blob += bytes(-len(blob) % 8)
    return bytes(blob)


def add_format(formats: list[bytes], fmt: bytes) -> int:
    """Append `fmt` to the script's `formats`; return its offset in their `formats_blob`."""
    offset = len(formats_blob(formats))
    formats.append(fmt)
    return offset
