"""The shared output helpers: bpftool's byte notations, word parsing, tables and JSON."""

from __future__ import annotations

import argparse
import io
import json
import re

import pytest

from bpfkit.cli.output import (
    UsageError,
    emit_json,
    hex_bytes,
    json_bytes,
    parse_bytes,
    split_words,
    table,
    take_ref,
)


def test_parse_bytes_reads_c_numbers_and_hex_mode() -> None:
    assert parse_bytes(["1", "0x1f", "010", "255"], 4, "key") == bytes([1, 0x1F, 8, 255])
    assert parse_bytes(["hex", "de", "ad", "BE", "ef"], 4, "value") == bytes.fromhex("deadbeef")


@pytest.mark.parametrize(("words", "message"), [
    (["1", "2", "3"], "key must be 4 bytes, got 3"),
    (["1", "2", "3", "256"], "'256' does not fit in a byte"),
    (["1", "2", "3", "x"], "'x' is not a byte value"),
    (["hex", "zz", "0", "0", "0"], "'zz' is not a byte value"),
])
def test_parse_bytes_errors_name_the_bad_word(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_bytes(words, 4, "key")


def test_bytes_print_as_bpftool_does() -> None:
    assert hex_bytes(b"\x01\x00\xff") == "01 00 ff"
    assert json_bytes(b"\x01\xab") == ["0x01", "0xab"]


def test_split_words_groups_by_keyword_and_rejects_leading_words() -> None:
    got = split_words(["key", "1", "0", "value", "hex", "ff", "any"], ["key", "value", "any"])
    assert got == {"key": ["1", "0"], "value": ["hex", "ff"], "any": []}
    with pytest.raises(UsageError, match="unexpected word '7'"):
        split_words(["7", "key", "1"], ["key"])


def test_take_ref_splits_the_object_reference() -> None:
    assert take_ref(["id", "42", "key", "1"], "map") == (("id", "42"), ["key", "1"])
    expected = "expected a map: id ... | pinned ... | name ..., got tag x"
    with pytest.raises(UsageError, match=re.escape(expected)):
        take_ref(["tag", "x"], "map")
    with pytest.raises(UsageError, match="got nothing"):
        take_ref([], "map")


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = table([[1, "hash", "counts"], [1234, "percpu_array", "-"]], ["ID", "TYPE", "NAME"])
    assert text.splitlines() == [
        "  ID  TYPE          NAME",
        "   1  hash          counts",
        "1234  percpu_array  -",
    ]


def test_emit_json_compact_and_pretty() -> None:
    out = io.StringIO()
    emit_json(argparse.Namespace(json=True, pretty=False), {"a": [1, 2]}, out)
    assert out.getvalue() == '{"a":[1,2]}\n'
    out = io.StringIO()
    emit_json(argparse.Namespace(json=False, pretty=True), {"a": 1}, out)
    assert out.getvalue() == '{\n    "a": 1\n}\n' and json.loads(out.getvalue()) == {"a": 1}
