"""Probe providers and the splitting of attach point text into `AttachPoint` nodes.

The lexer hands over an attach point as raw text (``u:/bin/bash:readline``); here it is split on the
colons that are not inside double quotes, the provider alias is resolved (``u`` is ``uprobe``), and the
parts are checked and given their meaning per provider (target binary, function, offset, frequency...).
Provider names and shapes are those of bpftrace's reference (man bpftrace, PROBES).

An attach point that contains a positional parameter (``uprobe:$1:main``) is kept unresolved: its numeric
fields stay None until the caller substitutes the parameters and calls `parse_attach_point` again.
"""

from __future__ import annotations

import re

from bpfkit._records import record
from bpfkit.lang.ast import AttachPoint
from bpfkit.lang.diagnostics import Diagnostic, did_you_mean, error
from bpfkit.lang.source import Span


@record
class Provider:
    """A probe type: its canonical name, short aliases, and how many colon parts it takes."""

    name: str
    aliases: tuple[str, ...]
    min_parts: int
    max_parts: int


PROVIDERS: tuple[Provider, ...] = (
    Provider("BEGIN", ("begin",), 0, 0),
    Provider("END", ("end",), 0, 0),
    Provider("kprobe", ("k",), 1, 2),
    Provider("kretprobe", ("kr",), 1, 2),
    Provider("uprobe", ("u",), 1, 3),
    Provider("uretprobe", ("ur",), 1, 3),
    Provider("usdt", ("U",), 1, 3),
    Provider("tracepoint", ("t",), 2, 2),
    Provider("rawtracepoint", ("rt",), 1, 2),
    Provider("profile", ("p",), 1, 2),
    Provider("interval", ("i",), 1, 2),
    Provider("software", ("s",), 1, 2),
    Provider("hardware", ("h",), 1, 2),
    Provider("fentry", ("f", "kfunc"), 1, 2),
    Provider("fexit", ("fr", "kretfunc"), 1, 2),
    Provider("iter", ("it",), 1, 2),
    Provider("watchpoint", ("w",), 3, 3),
    Provider("asyncwatchpoint", ("aw",), 3, 3),
)

_BY_NAME: dict[str, Provider] = {}
for _p in PROVIDERS:
    _BY_NAME[_p.name] = _p
    for _alias in _p.aliases:
        _BY_NAME[_alias] = _p

#: Time units of profile/interval probes and nanoseconds per unit (``hz`` is a rate, not a period).
TIME_UNITS = {"hz": 0, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9](?:[0-9_]*[0-9])?(?:[eE][0-9]+)?)\Z")
_RATE = re.compile(r"([0-9][0-9_]*)(hz|s|ms|us|ns)\Z")


def find_provider(name: str) -> Provider | None:
    """The provider for a name or alias (``t``, ``tracepoint``), or None."""
    return _BY_NAME.get(name)


def split_parts(raw: str) -> list[str]:
    """Split attach point text on the colons outside double quotes, and unquote each part."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if quoted and c == "\\" and i + 1 < n:
            current.append(raw[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ":" and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current).strip())
    return parts


def parse_int(text: str) -> int | None:
    """An integer in attach point syntax (``99``, ``1e6``, ``0x10``, ``1_000``), or None."""
    if not _INT.match(text):
        return None
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    mantissa, _, exponent = text.replace("_", "").lower().partition("e")
    if len(mantissa) > 1 and mantissa.startswith("0") and not exponent:
        return int(mantissa, 8) if set(mantissa) <= set("01234567") else None
    value: int = int(mantissa) * 10 ** int(exponent or "0")
    return value


class _Builder:
    """Accumulates the fields of one attach point and the errors found on the way."""

    def __init__(self, provider: Provider, raw: str, span: Span) -> None:
        self.provider = provider
        self.raw = raw
        self.span = span
        self.fields: dict[str, object] = {}
        self.errors: list[Diagnostic] = []
        self.deferred = "$" in raw  # positional parameters are substituted later

    def fail(self, message: str) -> None:
        self.errors.append(error(message, self.span))

    def number(self, text: str, what: str) -> int | None:
        value = parse_int(text)
        if value is None and not self.deferred:
            self.fail(f"invalid {what} '{text}' in {self.provider.name} probe")
        return value

    def func_offset(self, text: str, allow_offset: bool) -> None:
        """``func`` or ``func+offset``."""
        func, plus, off = text.partition("+")
        self.fields["func"] = func
        if plus:
            if not allow_offset:
                self.fail(f"{self.provider.name} probes cannot be attached at an offset")
            else:
                self.fields["offset"] = self.number(off, "offset")
        if not func and not self.deferred:
            self.fail(f"{self.provider.name} probe needs a function name")


def parse_attach_point(raw: str, span: Span) -> tuple[AttachPoint | None, list[Diagnostic]]:
    """Split and check one attach point; returns the node (None if unusable) and any errors."""
    parts = split_parts(raw)
    name = parts[0]
    provider = find_provider(name)
    if provider is None:
        names = [p.name for p in PROVIDERS] + [a for p in PROVIDERS for a in p.aliases]
        return None, [error(f"unknown probe type '{name}'", span, did_you_mean(name, names))]
    args = parts[1:]
    if provider.name in ("uprobe", "uretprobe") and len(args) > 3 and args[1] == "cpp":
        args = [*args[:2], ":".join(args[2:])]  # an unquoted C++ name: uprobe:bin:cpp:ns::f
    b = _Builder(provider, raw, span)
    if not provider.min_parts <= len(args) <= provider.max_parts:
        if provider.max_parts == 0:
            b.fail(f"{provider.name} probe type takes no arguments")
        elif provider.min_parts == provider.max_parts:
            plural = "s" if provider.min_parts != 1 else ""
            b.fail(f"{provider.name} probe type requires {provider.min_parts} argument{plural}")
        else:
            b.fail(f"{provider.name} probe type requires {provider.min_parts} to {provider.max_parts} "
                   "arguments")
        return None, b.errors
    _SHAPES[provider.name](b, args)
    if b.errors:
        return None, b.errors
    return AttachPoint(provider.name, raw, span=span, **b.fields), []  # type: ignore[arg-type]


def _none(b: _Builder, args: list[str]) -> None:
    pass


def _kernel_func(b: _Builder, args: list[str]) -> None:
    """kprobe/kretprobe/fentry/fexit/rawtracepoint: ``[module:]func[+offset]``."""
    if len(args) == 2:
        b.fields["target"] = args[0]
    b.func_offset(args[-1], allow_offset=b.provider.name == "kprobe")


def _uprobe(b: _Builder, args: list[str]) -> None:
    """uprobe/uretprobe: ``binary:func``, ``binary:lang:func``, ``binary:func+off``, ``binary:0xaddr``."""
    if len(args) == 1:
        func = args[0]
    else:
        b.fields["target"] = args[0]
        if len(args) == 3:
            b.fields["lang"] = args[1]
        func = args[-1]
    address = parse_int(func) if func[:1].isdigit() else None
    if address is not None:
        b.fields["address"] = address
        if b.provider.name == "uretprobe":
            b.fail("uretprobe probes cannot be attached to an address")
    else:
        b.func_offset(func, allow_offset=b.provider.name == "uprobe")


def _usdt(b: _Builder, args: list[str]) -> None:
    """usdt: ``binary:probe`` or ``binary:provider:probe``."""
    if len(args) >= 2:
        b.fields["target"] = args[0]
    if len(args) == 3:
        b.fields["ns"] = args[1]
    b.fields["func"] = args[-1]
    if not args[-1] and not b.deferred:
        b.fail("usdt probe needs a probe name")


def _tracepoint(b: _Builder, args: list[str]) -> None:
    """tracepoint: ``category:event``."""
    b.fields["target"], b.fields["func"] = args
    if not (args[0] and args[1]):
        b.fail("tracepoint probe needs a category and an event name")


def _timer(b: _Builder, args: list[str]) -> None:
    """profile/interval: ``unit:count`` or ``<count><unit>``."""
    if len(args) == 1:
        m = _RATE.match(args[0])
        if m is None:
            if not b.deferred:
                b.fail(f"{b.provider.name} probe needs a unit and a count, such as '{b.provider.name}:hz:99'")
            return
        unit, count = m.group(2), m.group(1)
    else:
        unit, count = args
    if unit not in TIME_UNITS:
        b.fail(f"invalid {b.provider.name} unit '{unit}' (expected one of {', '.join(TIME_UNITS)})")
        return
    b.fields["unit"] = unit
    b.fields["freq"] = b.number(count, "count")


def _event(b: _Builder, args: list[str]) -> None:
    """software/hardware: ``event[:count]``."""
    b.fields["target"] = args[0]
    if not args[0]:
        b.fail(f"{b.provider.name} probe needs an event name")
    if len(args) == 2 and args[1]:
        b.fields["freq"] = b.number(args[1], "count")


def _iter(b: _Builder, args: list[str]) -> None:
    """iter: ``name[:pin]``."""
    b.fields["target"] = args[0]
    if len(args) == 2:
        b.fields["pin"] = args[1]


def _watchpoint(b: _Builder, args: list[str]) -> None:
    """watchpoint: ``address:length:mode`` or ``func+argN:length:mode``."""
    where, length, mode = args
    address = parse_int(where)
    if address is not None:
        b.fields["address"] = address
    else:
        func, plus, arg = where.partition("+")
        if not plus or not re.fullmatch(r"arg[0-9]+", arg):
            if not b.deferred:
                b.fail(f"invalid watchpoint location '{where}' (expected an address or func+argN)")
            return
        b.fields["func"], b.fields["target"] = func, arg
    b.fields["length"] = b.number(length, "length")
    if not mode or set(mode) - set("rwx"):
        b.fail(f"invalid watchpoint mode '{mode}' (expected a combination of r, w and x)")
    b.fields["mode"] = mode


_SHAPES = {
    "BEGIN": _none, "END": _none,
    "kprobe": _kernel_func, "kretprobe": _kernel_func, "fentry": _kernel_func, "fexit": _kernel_func,
    "rawtracepoint": _kernel_func,
    "uprobe": _uprobe, "uretprobe": _uprobe, "usdt": _usdt, "tracepoint": _tracepoint,
    "profile": _timer, "interval": _timer, "software": _event, "hardware": _event,
    "iter": _iter, "watchpoint": _watchpoint, "asyncwatchpoint": _watchpoint,
}


def canonical_name(ap: AttachPoint) -> str:
    """The attach point with its provider's full name, e.g. ``tracepoint:syscalls:sys_enter_read``.

    This is the value of the ``probe`` builtin.
    """
    parts = split_parts(ap.raw)
    return ":".join([ap.provider, *parts[1:]])
