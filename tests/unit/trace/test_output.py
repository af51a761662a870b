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
