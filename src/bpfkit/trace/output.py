"""Printing script maps the way bpftrace 0.17 does: ``@name[key]: value``, histograms with bars.

Pure functions over decoded map entries, so they are tested without a kernel. Sorting follows bpftrace:
integer-valued maps (count, sum, min, max, plain integers) and avg/stats by value ascending; histograms
by their total count ascending; everything else by key. Ties are broken by key so output is stable.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from bpfkit.lang.types import Kind, Type

if TYPE_CHECKING:
    from bpfkit.lang.resources import MapInfo
    from bpfkit.lang.types import StructMember

_U64 = struct.Struct("<Q")
_Q2 = struct.Struct("<QQ")
BAR_WIDTH = 52
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")

Value = int | str | tuple["Value", ...]
class StackText(Protocol):
    """Turns (KSTACK or USTACK, stack id, pid) into the text bpftrace prints for the stack as a map key
    (``mode`` "perf": bpftrace's perf mode), and (KSYM or USYM, address, pid) into the symbol's name."""

    def __call__(self, kind: Kind, stack_id: int, pid: int, mode: str = "") -> str: ...


def _no_stacks(kind: Kind, stack_id: int, pid: int, mode: str = "") -> str:
    if kind in (Kind.KSYM, Kind.USYM):
        return hex_address(stack_id)
    return f"\n    <{kind.value} {stack_id}>\n"


def hex_address(addr: int) -> str:
    """An unresolved address as bpftrace prints it: C's ``%#lx`` (so 0 is ``0``)."""
    addr &= (1 << 64) - 1
    return f"{addr:#x}" if addr else "0"


def decode(t: Type, raw: bytes, stacks: StackText | None = None, *, key: bool = False) -> Value:
    """A stored value of type `t` as Python data (ints, strs, tuples; stacks as their text).

    bpftrace 0.17 prints 64-bit integers differently in map keys and values: a `key` integer is shown
    signed whatever its type and a pointer key in hex; a pointer value is shown signed.
    """
    if t.kind is Kind.STR:
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    if t.kind is Kind.TUPLE:
        return tuple(decode(e, raw[off:off + e.storage], stacks, key=key)
                     for e, off in zip(t.elems, t.offsets(), strict=True))
    if t.kind is Kind.INET:
        return format_inet(raw)
    if t.kind is Kind.BUF:
        return "".join(chr(c) if 32 <= c < 127 else f"\\x{c:02x}" for c in buffer_bytes(t, raw))
    if t.kind is Kind.TIMESTAMP:
        return format_timestamp(t.fmt, int(_U64.unpack_from(raw.ljust(8, b"\0"))[0]))
    if t.kind is Kind.ARRAY:  # bpftrace: [1,2,3]
        size, elem = t.limit, t.elems[0]
        data = raw.ljust(t.size * size, b"\0")
        signed = elem.signed or key  # in a key, bpftrace shows array elements signed like other integers
        return "[" + ",".join(str(int.from_bytes(data[i * size:(i + 1) * size], "little", signed=signed))
                              for i in range(t.size)) + "]"
    if t.kind is Kind.STRUCT:  # bpftrace: { .a = 1, .b = x } as a value, {.a=1,.b=x} as a key
        parts = [(m.name, _member(m, raw, stacks, key)) for m in t.members]
        if key:
            return "{" + ",".join(f".{n}={v}" for n, v in parts) + "}"
        return "{ " + ", ".join(f".{n} = {v}" for n, v in parts) + " }"
    if t.kind is Kind.CGROUP_PATH:
        from bpfkit.trace.cgroup import cgroup_path  # reads the cgroup file systems: only when asked

        return cgroup_path(int(_U64.unpack_from(raw.ljust(8, b"\0"))[0]), t.fmt)
    if t.kind in (Kind.KSTACK, Kind.USTACK):
        sid, pid = struct.unpack_from("<qq", raw.ljust(16, b"\0"))
        text = (stacks or _no_stacks)(t.kind, sid, pid, t.fmt)
        if t.limit:
            lines = text.split("\n")
            text = "\n".join(lines[:t.limit + 1]) + "\n" if len(lines) > t.limit + 2 else text
        return text
    if t.kind in (Kind.KSYM, Kind.USYM):
        sid, pid = struct.unpack_from("<qq", raw.ljust(16, b"\0"))
        return (stacks or _no_stacks)(t.kind, sid, pid)
    v = int(_U64.unpack_from(raw.ljust(8, b"\0"))[0])
    if key and t.is_pointer:
        return hex_address(v)
    if (t.signed or key or t.is_pointer) and v >= 1 << 63:
        v -= 1 << 64
    return v


def _member(m: StructMember, raw: bytes, stacks: StackText | None, key: bool) -> str:
    """One member of a struct value as text."""
    data = raw[m.offset:m.offset + m.size].ljust(m.size, b"\0")
    t = m.type
    if t.kind is Kind.INT:
        v = int.from_bytes(data, "little")
        if m.bit_size:
            v = (v >> m.bit_shift) & ((1 << m.bit_size) - 1)
            bits = m.bit_size
        else:
            bits = m.size * 8
        if (t.signed or key or t.is_pointer) and v >= 1 << (bits - 1):
            v -= 1 << bits
        return str(v)
    return show(decode(t, data, stacks, key=key))


def buffer_bytes(t: Type, raw: bytes) -> bytes:
    """The bytes of a buf() value (its recorded length, at most the type's)."""
    length = min(int(_U64.unpack_from(raw.ljust(8, b"\0"))[0]), t.size)
    return raw[8:8 + length]


def format_inet(raw: bytes) -> str:
    """An ntop() value ([u64 family][16 address bytes]) as text: dotted IPv4 or IPv6."""
    import socket  # here: rarely needed, and ~1.5 ms of start-up

    family = int(_U64.unpack_from(raw.ljust(24, b"\0"))[0])
    addr = raw[8:24].ljust(16, b"\0")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, addr[:4])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, addr)
    return f"<unknown address family {family}>"


_boot_realtime_ns: list[int] = []


def boot_realtime_ns() -> int:
    """CLOCK_REALTIME at boot (CLOCK_REALTIME - CLOCK_BOOTTIME now), measured once."""
    if not _boot_realtime_ns:
        _boot_realtime_ns.append(time.clock_gettime_ns(time.CLOCK_REALTIME)
                                 - time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    return _boot_realtime_ns[0]


def format_timestamp(fmt: str, nsecs: int, boot_ns: int | None = None) -> str:
    """strftime(fmt, nsecs) as bpftrace shows it: `nsecs` after boot as local time in C strftime
    format `fmt`, plus bpftrace's ``%f`` (microseconds, 6 digits)."""
    when = (boot_realtime_ns() if boot_ns is None else boot_ns) + nsecs
    secs, ns = divmod(when, 1_000_000_000)
    parts = re.split(r"(%%|%f)", fmt)
    micro = f"{ns // 1000:06d}"
    tm = time.localtime(secs)
    try:
        return "".join(micro if p == "%f" else "%" if p == "%%" else time.strftime(p, tm) if p else ""
                       for p in parts)
    except ValueError:
        return fmt


def value_stack(t: Type, text: str) -> str:
    """A bpftrace-mode stack shown as a value (printf, map value) rather than a map key: bpftrace
    indents its frames by 8 spaces there instead of 4."""
    if t.kind in (Kind.KSTACK, Kind.USTACK) and t.fmt != "perf":
        return text.replace("\n    ", "\n        ")
    return text


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


def merge_cpus(kind: Kind, value: bytes | list[bytes]) -> bytes:
    """One value from a per-CPU aggregation's copies (a plain map's value is returned as it is):
    counts, sums and histogram buckets add up, avg/stats add (count, total), min/max take the best
    of the CPUs that saw a sample."""
    if not isinstance(value, list):
        return bytes(value)
    copies = [bytes(v) for v in value]
    if kind in (Kind.MIN, Kind.MAX):
        seen = [struct.unpack_from("<qQ", v.ljust(16, b"\0")) for v in copies]
        got = [v for v, flag in seen if flag]
        if not got:
            return bytes(16)
        return struct.pack("<qQ", min(got) if kind is Kind.MIN else max(got), 1)
    width = 16 if kind in (Kind.AVG, Kind.STATS) else 8
    total = [0] * (width // 8)
    for v in copies:
        for i, (x,) in enumerate(struct.iter_unpack("<Q", v.ljust(width, b"\0")[:width])):
            total[i] = (total[i] + x) & ((1 << 64) - 1)
    return b"".join(_U64.pack(x) for x in total).ljust(len(copies[0]) if copies else width, b"\0")


def _merged(info: MapInfo, items: Iterable[tuple[bytes, bytes | list[bytes]]]) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), merge_cpus(info.value.kind, v)) for k, v in items]


def hist_label(power: int) -> str:
    """``2**power`` with bpftrace's binary suffixes (1K, 2M...)."""
    return f"{1 << (power % 10)}{_SUFFIXES[power // 10]}"


def lhist_label(n: int) -> str:
    if n != 0 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n != 0 and n % (1 << 10) == 0:
        return f"{n >> 10}K"
    return str(n)


def bar_line(label: str, count: int, peak: int, div: int = 0) -> str:
    """One histogram line; with `div` the count shown is divided but the bar is not (as bpftrace)."""
    width = count * BAR_WIDTH // peak if peak else 0
    return f"{label:<16}{divide(count, div):>8} |{'@' * width:<{BAR_WIDTH}}|"


def divide(v: int, div: int) -> int:
    """`v` / `div` rounded toward zero like C (0 `div`: `v` unchanged)."""
    if not div:
        return v
    q = abs(v) // div
    return -q if v < 0 else q


def _divide_value(v: Value, div: int) -> Value:
    if isinstance(v, int):
        return divide(v, div)
    if isinstance(v, tuple):
        return tuple(_divide_value(x, div) for x in v)
    return v


def format_hist(buckets: dict[int, int], div: int = 0) -> list[str]:
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
        lines.append(bar_line(label, buckets.get(i, 0), peak, div))
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


def format_map(info: MapInfo, items: Iterable[tuple[bytes, bytes]], stacks: StackText | None = None,
               top: int = 0, div: int = 0) -> str:
    """The text bpftrace prints for map `info` holding raw (key, value) `items`.

    `top` keeps only the last (greatest) `top` entries in print order; `div` divides the values shown
    (bpftrace ignores both for stats() maps).
    """
    items = _merged(info, items)
    kind = info.value.kind
    name = info.display
    key_size = info.key.storage if info.key is not None else 0
    if kind in (Kind.HIST, Kind.LHIST):
        groups: dict[bytes, dict[int, int]] = {}
        for k, v in items:
            bucket = int(_U64.unpack_from(k, key_size)[0])
            groups.setdefault(k[:key_size], {})[bucket] = int(_U64.unpack_from(v)[0])
        decoded = [(decode(info.key, k, stacks, key=True) if info.key is not None else None, b)
                   for k, b in groups.items()]
        decoded.sort(key=lambda kb: (sum(kb[1].values()), _sort_key(kb[0]) if kb[0] is not None else (0, 0)))
        if top:
            decoded = decoded[-top:]
        out = []
        for key, buckets in decoded:
            if kind is Kind.HIST:
                lines = format_hist(buckets, div)
            else:
                assert info.lhist is not None
                lines = format_lhist(buckets, *info.lhist)  # bpftrace 0.17 divides only hist()
            out.append(f"{name}{show_key(key)}: \n" + "".join(line + "\n" for line in lines) + "\n")
        return "".join(out) or "\n"
    if kind is Kind.STATS:
        top = div = 0
    rows: list[tuple[object, Value | None, str]] = []
    for k, v in items:
        key = decode(info.key, k, stacks, key=True) if info.key is not None else None
        ksort = _sort_key(key) if key is not None else (0, 0)
        if kind in (Kind.AVG, Kind.STATS):
            count, total = _Q2.unpack_from(v)
            total = total - (1 << 64) if total >= 1 << 63 else total
            avg = divide(int(total / count) if count else 0, div)
            text = str(avg) if kind is Kind.AVG else f"count {count}, average {avg}, total {total}"
            rows.append(((avg, ksort), key, text))
        elif kind in (Kind.COUNT, Kind.SUM, Kind.MIN, Kind.MAX, Kind.INT):
            value = divide(int(decode(info.value, v)), div)  # type: ignore[arg-type]
            rows.append(((value, ksort), key, str(value)))
        else:
            rows.append((ksort, key, value_stack(info.value, show(_divide_value(decode(info.value, v, stacks),
                                                                                  div)))))
    if not rows:  # bpftrace prints an empty map as a blank line
        return "\n\n" if kind in (Kind.AVG, Kind.STATS) else "\n"
    rows.sort(key=lambda r: r[0])  # type: ignore[arg-type, return-value]
    if top:
        rows = rows[-top:]
    text = "".join(f"{name}{show_key(key)}: {value}\n" for _, key, value in rows)
    if kind in (Kind.AVG, Kind.STATS):
        text += "\n"
    return text


# -- JSON (bpftrace -f json) -----------------------------------------------------------------------

def json_dumps(value: object) -> str:
    """`json.dumps`, its module imported on first use: only -f json needs it, and start-up is a hot path."""
    import json

    return json.dumps(value)


def _json_value(v: Value) -> str:
    if isinstance(v, tuple):  # bpftrace writes tuples as compact arrays: [1,"x"]
        return "[" + ",".join(_json_value(x) for x in v) + "]"
    return json_dumps(v)


def json_compound(t: Type, raw: bytes) -> str:
    """An array or struct value as bpftrace -f json writes it: ``[1,2]``, ``{ "a": 1, "b": "x" }``."""
    if t.kind is Kind.ARRAY:
        return str(decode(t, raw))  # already [1,2,3]
    parts = []
    for m in t.members:
        data = raw[m.offset:m.offset + m.size]
        if m.type.kind in (Kind.ARRAY, Kind.STRUCT):
            text = json_compound(m.type, data)
        elif m.type.kind is Kind.INT:
            text = _member(m, raw, None, False)
        else:
            text = _json_value(decode(m.type, data))
        parts.append(f"{json_dumps(m.name)}: {text}")
    return "{ " + ", ".join(parts) + " }"


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
    items = _merged(info, items)
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
            entries.append((decode(info.key, k, stacks, key=True) if info.key is not None else None,
                            _hist_json(b, info.lhist if kind is Kind.LHIST else None)))
    else:
        kind_name = "stats" if kind in (Kind.AVG, Kind.STATS) else "map"
        for k, v in items:
            key = decode(info.key, k, stacks, key=True) if info.key is not None else None
            if kind in (Kind.AVG, Kind.STATS):
                count, total = _Q2.unpack_from(v)
                total = total - (1 << 64) if total >= 1 << 63 else total
                avg = int(total / count) if count else 0
                text = str(avg) if kind is Kind.AVG else \
                    f'{{"count": {count}, "average": {avg}, "total": {total}}}'
            elif info.value.kind in (Kind.ARRAY, Kind.STRUCT):
                text = json_compound(info.value, v)
            else:
                text = _json_value(decode(info.value, v, stacks))
            entries.append((key, text))
    entries.sort(key=lambda e: _sort_key(e[0]) if e[0] is not None else (0, 0))
    if info.key is None:
        data = entries[0][1] if entries else "{}"
    else:
        data = "{" + ", ".join(f"{json_dumps(_json_key(k))}: {t}" for k, t in entries) + "}"
    return f'{{"type": "{kind_name}", "data": {{{json_dumps(info.display)}: {data}}}}}\n'
