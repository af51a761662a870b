"""Preparing BCC-dialect C for a plain compiler (pure text work; no kernel access).

BCC programs include kernel headers, declare maps with macros and name functions instead of sections.
`prepare` turns such a source into one that compiles against ``vmlinux.h`` and ``bpfkit_bcc.h``:

- ``#include <linux/...>``, ``<uapi/...>``, ``<net/...>``, ``<bcc/...>`` lines are dropped (vmlinux.h has
  the types);
- each ``TRACEPOINT_PROBE(cat, event)`` gets its ``struct tracepoint__cat__event`` generated from the
  tracepoint's format file, laid out at the recorded offsets;
- a function whose first parameter is a known context type (``struct pt_regs *``, ``struct xdp_md *``,
  ...) and has no ``SEC()`` gets the section of that program type, so it becomes a loadable program;
- the license is GPL (as in BCC) unless the source declares one.

The body keeps the user's line numbers (every change stays on its line); what goes before it (the
headers and the tracepoint structures) is returned apart, for the compiler's ``-include``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bpfkit._records import record
from bpfkit.errors import CompileError, ParseError
from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format

PRELUDE = '#include "vmlinux.h"\n#include "bpfkit_helpers.h"\n#include "bpfkit_bcc.h"\n'
BCC_MACROS = re.compile(r"\b(BPF_HASH|BPF_ARRAY|BPF_PERCPU_ARRAY|BPF_PERCPU_HASH|BPF_LRU_HASH|BPF_HISTOGRAM|"
                        r"BPF_PERF_OUTPUT|BPF_RINGBUF_OUTPUT|TRACEPOINT_PROBE|RAW_TRACEPOINT_PROBE)\s*\(")
_KERNEL_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include[ \t]*<(uapi|linux|net|bcc|asm)/[^>]*>.*$", re.M)
_TP_PROBE = re.compile(r"\bTRACEPOINT_PROBE\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)")
_CTX_FUNC = re.compile(r"^(?P<head>[ \t]*(?:int|u32|u64|long|__u32|__u64|unsigned int)\s+(?P<name>\w+)"
                       r"\s*\(\s*struct\s+(?P<ctx>\w+)\s*\*)", re.M)
CTX_SECTIONS = {"pt_regs": "kprobe", "xdp_md": "xdp", "__sk_buff": "socket",
                "bpf_perf_event_data": "perf_event", "bpf_raw_tracepoint_args": "raw_tracepoint"}
"""First-parameter type -> the section (program type) a section-less BCC function gets."""

FormatReader = Callable[[str, str], str]
"""``read_format(category, event)`` -> the text of the tracepoint's format file."""


def is_bcc_dialect(text: str) -> bool:
    """True for BCC-style sources: BCC map/probe macros, or no ``SEC(`` at all."""
    return bool(BCC_MACROS.search(text)) or "SEC(" not in text


def _scalar(size: int, signed: bool) -> str:
    return {1: "s8", 2: "s16", 4: "s32", 8: "s64"}[size] if signed else \
        {1: "u8", 2: "u16", 4: "u32", 8: "u64"}[size]


def tracepoint_struct(fmt: TracepointFormat, cat: str, event: str) -> str:
    """``struct tracepoint__<cat>__<event>`` with every field of `fmt` at its recorded offset."""
    lines = [f"struct tracepoint__{cat}__{event} {{"]
    pos = pad = 0
    for f in sorted(fmt.fields, key=lambda f: f.offset):
        if f.offset < pos:
            continue  # overlapping fields (unions) keep the first
        if f.offset > pos:
            lines.append(f"\tchar __pad{pad}[{f.offset - pos}];")
            pad += 1
        if f.data_loc:
            decl = f"u32 {f.name}; /* __data_loc: offset | length << 16 */"
        elif f.array is not None and f.array > 0:
            elem = f.size // f.array
            base = "char" if f.is_string else _scalar(elem, f.signed) if elem in (1, 2, 4, 8) else "u8"
            n = f.array if elem in (1, 2, 4, 8) else f.size
            decl = f"{base} {f.name}[{n}];"
        elif f.is_pointer and f.size == 8:
            decl = f"{f.ctype.strip()} {f.name};" if re.fullmatch(r"[\w\s\*]+", f.ctype) else f"u64 {f.name};"
        elif f.size in (1, 2, 4, 8):
            decl = f"{_scalar(f.size, f.signed)} {f.name};"
        else:
            decl = f"u8 {f.name}[{f.size}];"
        lines.append(f"\t{decl}")
        pos = f.offset + f.size
    lines.append("};")
    return "\n".join(lines) + "\n"


@record
class Prepared:
    """`body`: the source to compile, line for line the user's; `header`: text to ``-include`` first."""

    body: str
    header: str


def prepare(text: str, read_format: FormatReader, name: str = "<text>") -> Prepared:
    """The compilable form of BCC-dialect `text` (see the module docstring). Raises `CompileError`
    naming a TRACEPOINT_PROBE whose tracepoint does not exist."""
    parts = [PRELUDE]
    seen: set[tuple[str, str]] = set()
    for m in _TP_PROBE.finditer(text):
        cat, event = m.group(1), m.group(2)
        if (cat, event) in seen:
            continue
        seen.add((cat, event))
        line = text.count("\n", 0, m.start()) + 1
        try:
            fmt = parse_format(read_format(cat, event), cat, event)
        except (OSError, ParseError) as e:
            msg = e.strerror if isinstance(e, OSError) else str(e)
            raise CompileError(f"{name}:{line}: TRACEPOINT_PROBE({cat}, {event}): no tracepoint "
                               f"{cat}:{event} ({msg})") from None
        parts.append(tracepoint_struct(fmt, cat, event))
    body = _KERNEL_INCLUDE.sub(lambda m: "/* " + m.group(0).strip() + " (bpfkit: from vmlinux.h) */", text)

    def add_section(m: re.Match[str]) -> str:
        before = body[max(0, m.start() - 80): m.start()]
        section = CTX_SECTIONS.get(m.group("ctx"))
        if section is None or "SEC(" in before.rsplit("\n", 2)[-1] or "static" in m.group("head"):
            return m.group(0)
        return f'SEC("{section}") ' + m.group("head")

    body = _CTX_FUNC.sub(add_section, body)
    if "BPF_LICENSE" not in text and '"license"' not in text:
        body += '\nBPF_LICENSE("GPL"); /* BCC programs are GPL unless they say otherwise */\n'
    return Prepared(body, "".join(parts))


__all__ = ["BCC_MACROS", "CTX_SECTIONS", "PRELUDE", "Prepared", "is_bcc_dialect", "prepare",
           "tracepoint_struct"]
