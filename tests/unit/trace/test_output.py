"""Map output formatting: histogram labels and bars, value decoding, empty maps."""

from __future__ import annotations

import struct

from bpfkit.lang.resources import MapInfo
from bpfkit.lang.types import INT64, STRING, Kind, agg, tuple_type
from bpfkit.obj.spec import MapSpec
from bpfkit.trace.output import decode, format_hist, format_lhist, format_map, hist_label
from bpfkit.uapi.enums import MapType

SPEC = MapSpec(MapType.HASH, 8, 8, 1)


def q(*values: int) -> bytes:
    return b"".join(struct.pack("<q", v) for v in values)


def test_hist_labels_use_binary_suffixes() -> None:
    assert [hist_label(p) for p in (0, 9, 10, 19, 20, 30, 40, 63)] == [
        "1", "512", "1K", "512K", "1M", "1G", "1T", "8E"]


def test_hist_shows_the_range_between_the_first_and_last_used_bucket() -> None:
    lines = format_hist({3: 2, 5: 1})
    assert lines == [
        "[2, 4)                 2 |" + "@" * 52 + "|",
        "[4, 8)                 0 |" + " " * 52 + "|",
        "[8, 16)                1 |" + "@" * 26 + " " * 26 + "|",
    ]


def test_lhist_edges() -> None:
    lines = format_lhist({0: 1, 11: 1}, 0, 10240, 1024)
    assert lines[0].startswith("(..., 0)") and lines[1].startswith("[0, 1K)")
    assert lines[-2].startswith("[9K, 10K)") and lines[-1].startswith("[10K, ...)")


def test_decode_signed_strings_tuples() -> None:
    assert decode(INT64, q(-5)) == -5
    assert decode(STRING, b"abc\0zz".ljust(64, b"\0")) == "abc"
    t = tuple_type((INT64, STRING))
    assert decode(t, q(7) + b"x".ljust(64, b"\0")) == (7, "x")


def test_count_map_sorted_by_value_then_key() -> None:
    info = MapInfo("c", INT64, agg(Kind.COUNT), SPEC)
    items = [(q(1), q(5)), (q(2), q(1)), (q(3), q(5))]
    assert format_map(info, items) == "@c[2]: 1\n@c[1]: 5\n@c[3]: 5\n"


def test_empty_maps_print_a_blank_line() -> None:
    assert format_map(MapInfo("c", INT64, agg(Kind.COUNT), SPEC), []) == "\n"
    assert format_map(MapInfo("a", None, agg(Kind.AVG), SPEC), []) == "\n\n"
    assert format_map(MapInfo("h", None, agg(Kind.HIST), SPEC), []) == "\n"


def test_avg_rounds_toward_zero_like_c() -> None:
    info = MapInfo("a", None, agg(Kind.AVG), SPEC)
    assert format_map(info, [(q(0), q(2, -3))]) == "@a: -1\n\n"


def _frames(kind: Kind, stack_id: int, pid: int, mode: str = "") -> str:
    """A stand-in symbolizer: three frames, in bpftrace's or perf's layout."""
    if mode == "perf":
        return "".join(f"\n\tffffffff8100000{i} f{i}+{i}" for i in range(3)) + "\n"
    return "".join(f"\n    f{i}+{i}" for i in range(3)) + "\n"


def test_stack_limits_and_value_indentation() -> None:
    from bpfkit._records import replace
    from bpfkit.lang.types import KSTACK
    from bpfkit.trace.output import value_stack

    two = replace(KSTACK, limit=2)
    assert decode(two, q(5), _frames) == "\n    f0+0\n    f1+1\n"
    assert decode(replace(KSTACK, limit=9), q(5), _frames) == _frames(Kind.KSTACK, 5, 0)
    perf = replace(KSTACK, fmt="perf", limit=1)
    assert decode(perf, q(5), _frames) == "\n\tffffffff81000000 f0+0\n"
    assert value_stack(two, "\n    f0+0\n") == "\n        f0+0\n"  # printf and map values: 8 spaces
    assert value_stack(perf, "\n\tx f\n") == "\n\tx f\n"
    info = MapInfo("k", INT64, two, SPEC)
    assert format_map(info, [(q(1), q(5))], _frames) == "@k[1]: \n        f0+0\n        f1+1\n\n"


def test_print_top_and_div_on_plain_maps() -> None:
    info = MapInfo("a", INT64, INT64, SPEC)
    items = [(q(k), q(v)) for k, v in ((1, 10), (2, 25), (3, -7), (4, 100))]
    assert format_map(info, items, top=2) == "@a[2]: 25\n@a[4]: 100\n"
    assert format_map(info, items, div=10) == "@a[3]: 0\n@a[1]: 1\n@a[2]: 2\n@a[4]: 10\n"
    stats = MapInfo("s", None, agg(Kind.STATS), SPEC)
    assert format_map(stats, [(q(0), q(2, 10))], top=1, div=3) == "@s: count 2, average 5, total 10\n\n"
