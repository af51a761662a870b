"""Printing script maps the way bpftrace 0.17 does: ``@name[key]: value``, histograms with bars.

Pure functions over decoded map entries, so they are tested without a kernel. Sorting follows bpftrace:
integer-valued maps (count, sum, min, max, plain integers) and avg/stats by value ascending; histograms
by their total count ascending; everything else by key. Ties are broken by key so output is stable.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bpfkit.lang.resources import MapInfo
from bpfkit.lang.types import Kind, Type

_U64 = struct.Struct("<Q")
_Q2 = struct.Struct("<QQ")
BAR_WIDTH = 52
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")

Value = int | str | tuple["Value", ...]
StackText = Callable[[Kind, int, int], str]
"""Turns (KSTACK or USTACK, stack id, pid) into the text bpftrace prints for the stack, and
(KSYM or USYM, address, pid) into the symbol's name."""


def _no_stacks(kind: Kind, stack_id: int, pid: int) -> str:
    if kind in (Kind.KSYM, Kind.USYM):
        return hex_address(stack_id)
    return f"\n    <{kind.value} {stack_id}>\n"


def hex_address(addr: int) -> str:
    """An unresolved address as bpftrace prints it: C's ``%#lx`` (so 0 is ``0``)."""
    addr &= (1 << 64) - 1
    return f"{addr:#x}" if addr else "0"


def decode(t: Type, raw: bytes, stacks: StackText | None = None) -> Value:
    """A stored value of type `t` as Python data (ints, strs, tuples; stacks as their text)."""
    if t.kind is Kind.STR:
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    if t.kind is Kind.TUPLE:
        return tuple(decode(e, raw[off:off + e.storage], stacks)
                     for e, off in zip(t.elems, t.offsets(), strict=True))
    if t.kind in (Kind.KSTACK, Kind.USTACK, Kind.KSYM, Kind.USYM):
        sid, pid = struct.unpack_from("<qq", raw.ljust(16, b"\0"))
        return (stacks or _no_stacks)(t.kind, sid, pid)
    v = int(_U64.unpack_from(raw.ljust(8, b"\0"))[0])
    if t.signed and v >= 1 << 63:
        v -= 1 << 64
    return v


def show(v: Value) -> str:
    """A value as bpftrace prints it inside map output (strings bare, tuples in parentheses)."""
    if isinstance(v, tuple):
        return "(" + ", ".join(show(x) for x in v) + ")"
    return str(v)


def show_key(key: Value | None) -> str:
    if key is None:
        return ""
    if isinstance(key, tuple):
        return "[" + ", ".join(show(x) for x in key) + "]"
    return f"[{show(key)}]"


def _sort_key(v: Value) -> tuple[int, object]:
    """An ordering over mixed values that never compares int with str."""
    if isinstance(v, int):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    return (2, tuple(_sort_key(x) for x in v))


@dataclass(frozen=True, slots=True)
class Entry:
    key: Value | None
    raw: bytes


def hist_label(power: int) -> str:
    """``2**power`` with bpftrace's binary suffixes (1K, 2M...)."""
    return f"{1 << (power % 10)}{_SUFFIXES[power // 10]}"


def lhist_label(n: int) -> str:
    if n != 0 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n != 0 and n % (1 << 10) == 0:
        return f"{n >> 10}K"
    return str(n)


def bar_line(label: str, count: int, peak: int) -> str:
    width = count * BAR_WIDTH // peak if peak else 0
    return f"{label:<16}{count:>8} |{'@' * width:<{BAR_WIDTH}}|"


def format_hist(buckets: dict[int, int]) -> list[str]:
    """Lines of a log2 histogram (bucket 0: negative, 1: zero, i >= 2: [2**(i-2), 2**(i-1)))."""
    shown = [i for i, c in buckets.items() if c]
    if not shown:
        return []
    peak = max(buckets.values())
    lines = []
    for i in range(min(shown), max(shown) + 1):
        if i == 0:
            label = "(..., 0)"
        elif i == 1:
            label = "[0]"
        elif i == 2:
            label = "[1]"
        else:
            label = f"[{hist_label(i - 2)}, {hist_label(i - 1)})"
        lines.append(bar_line(label, buckets.get(i, 0), peak))
    return lines


def format_lhist(buckets: dict[int, int], lo: int, hi: int, step: int) -> list[str]:
    """Lines of a linear histogram (bucket 0: below `lo`, n+1: at or above `hi`)."""
    shown = [i for i, c in buckets.items() if c]
    if not shown:
        return []
    n = (hi - lo) // step
    peak = max(buckets.values())
    lines = []
    for i in range(min(shown), max(shown) + 1):
        if i == 0:
            label = f"(..., {lhist_label(lo)})"
        elif i == n + 1:
            label = f"[{lhist_label(hi)}, ...)"
        else:
            start = lo + (i - 1) * step
            label = f"[{lhist_label(start)}, {lhist_label(start + step)})"
        lines.append(bar_line(label, buckets.get(i, 0), peak))
    return lines


def format_map(info: MapInfo, items: Iterable[tuple[bytes, bytes]], stacks: StackText | None = None) -> str:
    """The text bpftrace prints for map `info` holding raw (key, value) `items`."""
    kind = info.value.kind
    name = info.display
    key_size = info.key.storage if info.key is not None else 0
    if kind in (Kind.HIST, Kind.LHIST):
        groups: dict[bytes, dict[int, int]] = {}
        for k, v in items:
            bucket = int(_U64.unpack_from(k, key_size)[0])
            groups.setdefault(k[:key_size], {})[bucket] = int(_U64.unpack_from(v)[0])
        decoded = [(decode(info.key, k, stacks) if info.key is not None else None, b)
                   for k, b in groups.items()]
        decoded.sort(key=lambda kb: (sum(kb[1].values()), _sort_key(kb[0]) if kb[0] is not None else (0, 0)))
        out = []
        for key, buckets in decoded:
            if kind is Kind.HIST:
                lines = format_hist(buckets)
            else:
                assert info.lhist is not None
                lines = format_lhist(buckets, *info.lhist)
            out.append(f"{name}{show_key(key)}: \n" + "".join(line + "\n" for line in lines) + "\n")
        return "".join(out) or "\n"
    rows: list[tuple[object, Value | None, str]] = []
    for k, v in items:
        key = decode(info.key, k, stacks) if info.key is not None else None
        ksort = _sort_key(key) if key is not None else (0, 0)
        if kind in (Kind.AVG, Kind.STATS):
            count, total = _Q2.unpack_from(v)
            total = total - (1 << 64) if total >= 1 << 63 else total
            avg = int(total / count) if count else 0
            text = str(avg) if kind is Kind.AVG else f"count {count}, average {avg}, total {total}"
            rows.append(((avg, ksort), key, text))
        elif kind in (Kind.COUNT, Kind.SUM, Kind.MIN, Kind.MAX, Kind.INT):
            value = decode(info.value, v)
            rows.append(((value, ksort), key, str(value)))
        else:
            rows.append((ksort, key, show(decode(info.value, v, stacks))))
    if not rows:  # bpftrace prints an empty map as a blank line
        return "\n\n" if kind in (Kind.AVG, Kind.STATS) else "\n"
    rows.sort(key=lambda r: r[0])  # type: ignore[arg-type, return-value]
    text = "".join(f"{name}{show_key(key)}: {value}\n" for _, key, value in rows)
    if kind in (Kind.AVG, Kind.STATS):
        text += "\n"
    return text


# -- JSON (bpftrace -f json) -----------------------------------------------------------------------

def _json_value(v: Value) -> str:
    if isinstance(v, tuple):  # bpftrace writes tuples as compact arrays: [1,"x"]
        return "[" + ",".join(_json_value(x) for x in v) + "]"
    return json.dumps(v)


def _json_key(key: Value | None) -> str:
    if isinstance(key, tuple):
        return ",".join(show(x) for x in key)
    return show(key) if key is not None else ""


def _hist_json(buckets: dict[int, int], lhist: tuple[int, int, int] | None) -> str:
    shown = [i for i, c in buckets.items() if c]
    parts = []
    for i in range(min(shown), max(shown) + 1) if shown else ():
        count = buckets.get(i, 0)
        if lhist is None:
            lo, hi = (None, -1) if i == 0 else (0, 0) if i == 1 else (1 << (i - 2), (1 << (i - 1)) - 1)
        else:
            start, end, step = lhist
            n = (end - start) // step
            if i == 0:
                lo, hi = None, start - 1
            elif i == n + 1:
                lo, hi = end, None
            else:
                lo = start + (i - 1) * step
                hi = lo + step - 1
        fields = ([f'"min": {lo}'] if lo is not None else []) + ([f'"max": {hi}'] if hi is not None else [])
        parts.append("{" + ", ".join([*fields, f'"count": {count}']) + "}")
    return "[" + ", ".join(parts) + "]"


def json_map(info: MapInfo, items: Iterable[tuple[bytes, bytes]], stacks: StackText | None = None) -> str:
    """The line bpftrace -f json prints for a map."""
    kind = info.value.kind
    key_size = info.key.storage if info.key is not None else 0
    entries: list[tuple[Value | None, str]] = []
    if kind in (Kind.HIST, Kind.LHIST):
        kind_name = "hist"
        groups: dict[bytes, dict[int, int]] = {}
        for k, v in items:
            groups.setdefault(k[:key_size], {})[int(_U64.unpack_from(k, key_size)[0])] = \
                int(_U64.unpack_from(v)[0])
        for k, b in groups.items():
            entries.append((decode(info.key, k, stacks) if info.key is not None else None,
                            _hist_json(b, info.lhist if kind is Kind.LHIST else None)))
    else:
        kind_name = "stats" if kind in (Kind.AVG, Kind.STATS) else "map"
        for k, v in items:
            key = decode(info.key, k, stacks) if info.key is not None else None
            if kind in (Kind.AVG, Kind.STATS):
                count, total = _Q2.unpack_from(v)
                total = total - (1 << 64) if total >= 1 << 63 else total
                avg = int(total / count) if count else 0
                text = str(avg) if kind is Kind.AVG else \
                    f'{{"count": {count}, "average": {avg}, "total": {total}}}'
            else:
                text = _json_value(decode(info.value, v, stacks))
            entries.append((key, text))
    entries.sort(key=lambda e: _sort_key(e[0]) if e[0] is not None else (0, 0))
    if info.key is None:
        data = entries[0][1] if entries else "{}"
    else:
        data = "{" + ", ".join(f"{json.dumps(_json_key(k))}: {t}" for k, t in entries) + "}"
    return f'{{"type": "{kind_name}", "data": {{{json.dumps(info.display)}: {data}}}}}\n'
