"""Global variable values of every C kind, laid out by clang: decode the initialisers, encode new
values, refuse what does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.errors import BtfError
from bpfkit.obj import ObjectSpec, load_object

from .oracle import compile_c

SOURCE = r"""
#include "bpfkit_helpers.h"
struct cfg {
	__u8 a;
	__s16 b : 5;
	__u16 c : 7;
	float f;
	double d;
	enum { RED = 1, BLUE = 2 } colour;
	_Bool on;
	char tag[4];
	int arr[3];
	void *ptr;
	struct { __s8 x; __u64 y; } inner;
};
const volatile struct cfg conf = {
	.a = 1, .b = -3, .c = 100, .f = 1.5, .d = -2.25, .colour = BLUE, .on = 1,
	.tag = "ab", .arr = {1, 2, 3}, .inner = { -1, 0xffffffffffULL } };
__s64 neg = -5;
static int hidden = 7;
SEC("socket") int p(void *ctx)
{
	return conf.a + conf.b + conf.c + conf.colour + conf.arr[1] + conf.inner.x + neg + hidden++;
}
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture
def obj(tmp_path: Path) -> ObjectSpec:
    return load_object(compile_c(SOURCE, tmp_path, "values"))


def test_initialisers_decode_as_written(obj: ObjectSpec) -> None:
    assert obj.get_global("conf") == {
        "a": 1, "b": -3, "c": 100, "f": 1.5, "d": -2.25, "colour": 2, "on": True, "tag": b"ab\0\0",
        "arr": [1, 2, 3], "ptr": 0, "inner": {"x": -1, "y": 0xFFFFFFFFFF}}
    assert obj.get_global("neg") == -5
    assert obj.get_global("hidden") == 7
    assert obj.variables["hidden"].static and not obj.variables["neg"].static


def test_partial_struct_updates_keep_the_rest(obj: ObjectSpec) -> None:
    before = obj.get_global("conf", raw=True)
    obj.set_global("conf", {"b": -16, "c": 127, "colour": "RED", "on": False, "inner": {"x": 5}})
    got = obj.get_global("conf")
    assert (got["b"], got["c"], got["colour"], got["on"], got["inner"]) == (-16, 127, 1, False,
                                                                             {"x": 5, "y": 0xFFFFFFFFFF})
    assert (got["a"], got["f"], got["tag"], got["arr"]) == (1, 1.5, b"ab\0\0", [1, 2, 3])
    obj.set_global("conf", before)  # raw bytes restore it exactly
    assert obj.get_global("conf", raw=True) == before
    obj.rodata["conf"] = {"f": 0.25, "d": 1e300, "ptr": 0xFFFF_8000_0000_0000, "tag": "wxyz"}
    got = obj.rodata["conf"]
    assert (got["f"], got["d"], got["ptr"], got["tag"]) == (0.25, 1e300, 0xFFFF_8000_0000_0000, b"wxyz")
    obj.data["neg"] = -(1 << 63)
    assert obj.get_global("neg") == -(1 << 63)


@pytest.mark.parametrize(("value", "message"), [
    ({"b": -17}, r"value\.b: -17 does not fit in a signed 5-bit field"),
    ({"c": 128}, r"value\.c: 128 does not fit in a unsigned 7-bit field"),
    ({"colour": "GREEN"}, r"'GREEN' is not an enumerator"),
    ({"nope": 1}, r"has no member 'nope'"),
    ({"arr": [1, 2, 3, 4]}, r"value\.arr: 4 elements do not fit in \[3\]"),
    ({"a": 1.5}, r"value\.a: expected an integer"),
    ({"f": "x"}, r"value\.f: expected a number"),
    ({"inner": {"x": 128}}, r"value\.inner\.x: 128 does not fit in a signed 1-byte integer"),
    (5, r"expected a dict of members"),
    (b"\0" * 3, r"3 bytes given for a 64-byte struct cfg"),
])
def test_values_that_do_not_fit(obj: ObjectSpec, value: object, message: str) -> None:
    before = obj.get_global("conf", raw=True)
    with pytest.raises(BtfError, match=message):
        obj.set_global("conf", value)
    assert obj.get_global("conf", raw=True) == before
