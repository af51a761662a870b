"""Attach point splitting: providers, aliases, per-provider fields and errors."""

from __future__ import annotations

import pytest

from bpfkit.lang.ast import AttachPoint
from bpfkit.lang.probes import PROVIDERS, canonical_name, find_provider, parse_int, split_parts
from bpfkit.lang.source import Source


def ap(raw: str) -> AttachPoint:
    point, errors = parse_ap(raw)
    assert errors == [], errors
    assert point is not None
    return point


def parse_ap(raw: str) -> tuple[AttachPoint | None, list[str]]:
    from bpfkit.lang.probes import parse_attach_point

    src = Source("p.bt", raw + " {}")
    point, diags = parse_attach_point(raw, src.span(0, len(raw)))
    return point, [str(d) for d in diags]


def fields(point: AttachPoint) -> dict[str, object]:
    """The fields that differ from their defaults."""
    out: dict[str, object] = {"provider": point.provider}
    for name in ("target", "func", "ns", "lang", "unit", "pin", "mode"):
        if getattr(point, name):
            out[name] = getattr(point, name)
    for name in ("offset", "address", "freq", "length"):
        if getattr(point, name) is not None:
            out[name] = getattr(point, name)
    return out


@pytest.mark.parametrize(("raw", "expected"), [
    ("BEGIN", {"provider": "BEGIN"}),
    ("end", {"provider": "END"}),
    ("kprobe:vfs_read", {"provider": "kprobe", "func": "vfs_read"}),
    ("k:vfs_*", {"provider": "kprobe", "func": "vfs_*"}),
    ("kprobe:do_sys_open+0x10", {"provider": "kprobe", "func": "do_sys_open", "offset": 16}),
    ("kprobe:nf_tables:nft_do_chain", {"provider": "kprobe", "target": "nf_tables", "func": "nft_do_chain"}),
    ("kr:vfs_read", {"provider": "kretprobe", "func": "vfs_read"}),
    ("uprobe:/bin/bash:readline", {"provider": "uprobe", "target": "/bin/bash", "func": "readline"}),
    ("u:libc:malloc", {"provider": "uprobe", "target": "libc", "func": "malloc"}),
    ("uprobe:/bin/bash:0x4a0", {"provider": "uprobe", "target": "/bin/bash", "address": 0x4A0}),
    ("uprobe:/bin/bash:main+8", {"provider": "uprobe", "target": "/bin/bash", "func": "main", "offset": 8}),
    ("uprobe:./app:cpp:ns::f", {"provider": "uprobe", "target": "./app", "lang": "cpp", "func": "ns::f"}),
    ('uprobe:./app:cpp:"ns::f"', {"provider": "uprobe", "target": "./app", "lang": "cpp", "func": "ns::f"}),
    ('u:"/my dir/a b":"f(char const*)"', {"provider": "uprobe", "target": "/my dir/a b",
                                          "func": "f(char const*)"}),
    ("uprobe:malloc", {"provider": "uprobe", "func": "malloc"}),
    ("ur:/bin/bash:readline", {"provider": "uretprobe", "target": "/bin/bash", "func": "readline"}),
    ("usdt:/usr/bin/python3:python:function__entry",
     {"provider": "usdt", "target": "/usr/bin/python3", "ns": "python", "func": "function__entry"}),
    ("U:/bin/app:probe", {"provider": "usdt", "target": "/bin/app", "func": "probe"}),
    ("tracepoint:syscalls:sys_enter_openat",
     {"provider": "tracepoint", "target": "syscalls", "func": "sys_enter_openat"}),
    ("t:sched:*", {"provider": "tracepoint", "target": "sched", "func": "*"}),
    ("rawtracepoint:sched_switch", {"provider": "rawtracepoint", "func": "sched_switch"}),
    ("rt:vmlinux:sched_switch", {"provider": "rawtracepoint", "target": "vmlinux", "func": "sched_switch"}),
    ("profile:hz:99", {"provider": "profile", "unit": "hz", "freq": 99}),
    ("p:ms:10", {"provider": "profile", "unit": "ms", "freq": 10}),
    ("interval:s:1", {"provider": "interval", "unit": "s", "freq": 1}),
    ("i:1_500us", {"provider": "interval", "unit": "us", "freq": 1500}),
    ("software:page-faults:100", {"provider": "software", "target": "page-faults", "freq": 100}),
    ("s:cs", {"provider": "software", "target": "cs"}),
    ("s:cpu-clock:", {"provider": "software", "target": "cpu-clock"}),
    ("hardware:cache-misses:1e6", {"provider": "hardware", "target": "cache-misses", "freq": 1_000_000}),
    ("fentry:vfs_read", {"provider": "fentry", "func": "vfs_read"}),
    ("kfunc:vmlinux:vfs_read", {"provider": "fentry", "target": "vmlinux", "func": "vfs_read"}),
    ("fr:vfs_read", {"provider": "fexit", "func": "vfs_read"}),
    ("kretfunc:vfs_read", {"provider": "fexit", "func": "vfs_read"}),
    ("iter:task", {"provider": "iter", "target": "task"}),
    ("it:task_file:/sys/fs/bpf/files",
     {"provider": "iter", "target": "task_file", "pin": "/sys/fs/bpf/files"}),
    ("watchpoint:0x10000000:8:rw", {"provider": "watchpoint", "address": 0x10000000, "length": 8,
                                    "mode": "rw"}),
    ("w:increment+arg1:4:w", {"provider": "watchpoint", "func": "increment", "target": "arg1",
                              "length": 4, "mode": "w"}),
    ("aw:0x1000:1:x", {"provider": "asyncwatchpoint", "address": 0x1000, "length": 1, "mode": "x"}),
])
def test_attach_point_fields(raw: str, expected: dict[str, object]) -> None:
    point = ap(raw)
    assert fields(point) == expected
    assert point.raw == raw


def test_positional_parameters_defer_numeric_checks() -> None:
    assert fields(ap("profile:hz:$1")) == {"provider": "profile", "unit": "hz"}
    assert fields(ap("uprobe:$1:$2")) == {"provider": "uprobe", "target": "$1", "func": "$2"}


@pytest.mark.parametrize(("raw", "message"), [
    ("kprobee:foo", "unknown probe type 'kprobee'"),
    ("BEGIN:x", "BEGIN probe type takes no arguments"),
    ("kprobe", "kprobe probe type requires 1 to 2 arguments"),
    ("kprobe:a:b:c", "kprobe probe type requires 1 to 2 arguments"),
    ("tracepoint:syscalls", "tracepoint probe type requires 2 arguments"),
    ("tracepoint:syscalls:", "tracepoint probe needs a category and an event name"),
    ("kprobe:", "kprobe probe needs a function name"),
    ("kretprobe:f+8", "kretprobe probes cannot be attached at an offset"),
    ("kprobe:f+x", "invalid offset 'x' in kprobe probe"),
    ("uretprobe:/bin/sh:0x10", "uretprobe probes cannot be attached to an address"),
    ("profile:hz:fast", "invalid count 'fast' in profile probe"),
    ("profile:minutes:1", "invalid profile unit 'minutes' (expected one of hz, s, ms, us, ns)"),
    ("interval:99", "interval probe needs a unit and a count, such as 'interval:hz:99'"),
    ("software::1", "software probe needs an event name"),
    ("watchpoint:foo:8:rw", "invalid watchpoint location 'foo' (expected an address or func+argN)"),
    ("watchpoint:0x10:8:q", "invalid watchpoint mode 'q' (expected a combination of r, w and x)"),
    ("usdt:/bin/x:", "usdt probe needs a probe name"),
])
def test_attach_point_errors(raw: str, message: str) -> None:
    point, errors = parse_ap(raw)
    assert point is None
    assert errors[0].split("\n")[0] == f"p.bt:1:1-{len(raw) + 1}: ERROR: {message}"


def test_unknown_provider_hint() -> None:
    errors = parse_ap("tracepiont:a:b")[1]
    assert errors[0].endswith("HINT: did you mean 'tracepoint'?")
    assert not parse_ap("zzz:a")[1][0].count("HINT")


def test_split_parts_respects_quotes_and_escapes() -> None:
    assert split_parts('u:"a:b":"c\\"d":e') == ["u", "a:b", 'c"d', "e"]
    assert split_parts("kprobe : foo") == ["kprobe", "foo"]
    assert split_parts("BEGIN") == ["BEGIN"]


@pytest.mark.parametrize(("text", "value"), [
    ("99", 99), ("0x10", 16), ("1_000", 1000), ("1e6", 10**6), ("017", 15), ("08", None), ("x", None),
    ("", None), ("1_", None),
])
def test_parse_int(text: str, value: int | None) -> None:
    assert parse_int(text) == value


def test_canonical_names_and_aliases() -> None:
    assert canonical_name(ap("t:syscalls:sys_enter_read")) == "tracepoint:syscalls:sys_enter_read"
    assert canonical_name(ap('u:"/my dir/x":f')) == "uprobe:/my dir/x:f"
    assert canonical_name(ap("begin")) == "BEGIN"
    assert canonical_name(ap("kfunc:vfs_read")) == "fentry:vfs_read"
    for p in PROVIDERS:
        assert find_provider(p.name) is p
        for alias in p.aliases:
            assert find_provider(alias) is p
    assert find_provider("nope") is None
