"""Malformed BTF: every fault is a BtfError naming what is wrong and the byte offset; fuzzing proves
that nothing else (struct.error, IndexError, UnicodeError...) ever escapes."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit._records import replace
from bpfkit.btf import Composite, Datasec, FuncProto, Kind, Spec, Type, dump_raw, load_btf
from bpfkit.btf.marshal import marshal
from bpfkit.errors import BtfError

from .blobs import Strings, all_kinds, blob, info, vmlinux_bytes

GOOD, _ = all_kinds()


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _one_int(words_after: list[int] | None = None) -> tuple[list[int], bytes]:
    s = Strings()
    n = s.add("int")
    return [n, info(1), 4, 1 << 24 | 32, *(words_after or [])], bytes(s.data)


STR_START = 24 + struct.unpack_from("<I", GOOD, 12)[0]

CASES = [
    ("truncated header", GOOD[:10], "truncated header: 10 bytes", 0),
    ("empty", b"", "truncated header: 0 bytes", 0),
    ("bad magic", b"\x12\x34" + GOOD[2:], "bad magic 0x1234", 0),
    ("version", _patch(GOOD, 2, "<B", 2), "unsupported BTF version 2", 2),
    ("flags", _patch(GOOD, 3, "<B", 1), "unsupported header flags 0x1", 3),
    ("short hdr_len", _patch(GOOD, 4, "<I", 16), "header length 16 out of range", 4),
    ("long hdr_len", _patch(GOOD, 4, "<I", 1 << 30), "header length 1073741824 out of range", 4),
    ("header tail", blob(*_one_int(), hdr_len=32)[:28] + b"\1" + blob(*_one_int(), hdr_len=32)[29:],
     "unknown non-zero fields in the header tail", 24),
    ("type_off unaligned", _patch(GOOD, 8, "<I", 2), "not 4-byte aligned", 8),
    ("type_len overruns", _patch(GOOD, 12, "<I", 1 << 20), "type section (off 0, len 1048576) overruns", 8),
    ("str_len overruns", _patch(GOOD, 20, "<I", 1 << 20), "string section (off", 16),
    ("overlap", _patch(GOOD, 16, "<I", 8), "type and string sections overlap", 8),
    ("no leading NUL", _patch(GOOD, STR_START, "<B", 65), "must start with the empty string", STR_START),
    ("no trailing NUL", _patch(GOOD, len(GOOD) - 1, "<B", 65), "not NUL-terminated", len(GOOD) - 1),
]


@pytest.mark.parametrize(("label", "data", "message", "offset"), CASES, ids=[c[0] for c in CASES])
def test_malformed_headers(label: str, data: bytes, message: str, offset: int) -> None:
    with pytest.raises(BtfError, match=re.escape(message)) as e:
        load_btf(data)
    assert e.value.offset == offset, str(e.value)
    assert f"at offset {offset}" in str(e.value)


def _load_words(words: list[int], strings: bytes) -> Spec:
    spec = load_btf(blob(words, strings))
    spec.validate()
    return spec


def test_unknown_kind_names_the_type_and_info_word() -> None:
    words, strs = _one_int([0, info(25), 0])
    with pytest.raises(BtfError, match=r"type \[2\]: unknown kind 25") as e:
        _load_words(words, strs)
    assert e.value.offset == 24 + 16 + 4
    words, strs = _one_int([0, info(0), 0])
    with pytest.raises(BtfError, match=r"type \[2\]: unknown kind 0"):
        _load_words(words, strs)


def test_vlen_overflowing_the_type_section() -> None:
    words, strs = _one_int([0, info(4, 5), 8, 1, 1, 0])
    with pytest.raises(BtfError, match=r"type \[2\] STRUCT: vlen 5 needs 72 bytes, only 24 left") as e:
        _load_words(words, strs)
    assert e.value.offset == 24 + 16


def test_truncated_record() -> None:
    words, strs = _one_int([0, info(2)])
    with pytest.raises(BtfError, match=r"type \[2\]: truncated record header \(8 of 12 bytes\)") as e:
        _load_words(words, strs)
    assert e.value.offset == 24 + 16
    words, strs = _one_int([0, info(1), 4])  # INT lacks its encoding word
    with pytest.raises(BtfError, match="needs 16 bytes, only 12 left"):
        _load_words(words, strs)


def test_member_type_out_of_range_names_the_member_word() -> None:
    words, strs = _one_int([0, info(4, 1), 4, 0, 7, 0])
    with pytest.raises(BtfError, match=r"type \[2\]: member type id 7 out of range \(last id 2\)") as e:
        _load_words(words, strs)
    assert e.value.offset == 24 + 16 + 12 + 4


@pytest.mark.parametrize(
    ("extra", "message", "field"),
    [
        ([0, info(2), 9], r"type \[2\]: target type id 9 out of range", 8),
        ([0, info(3), 0, 1, 99, 4], r"type \[2\]: index type id 99 out of range", 16),
        ([0, info(13, 1), 1, 0, 50], r"type \[2\]: parameter type id 50 out of range", 16),
        ([0, info(12, 3), 1], r"type \[2\] FUNC '': unknown linkage 3", 4),
        ([0, info(14), 1, 5], r"type \[2\] VAR '': unknown linkage 5", 12),
        ([0, info(15, 1), 0, 44, 0, 0], r"type \[2\]: variable type id 44 out of range", 12),
        ([10_000, info(2), 1], "string offset 10000 out of range", 0),
        ([0, info(6, 1), 4, 10_000, 1], "string offset 10000 out of range", 12),
    ],
)
def test_bad_fields_are_reported_at_their_offset(extra: list[int], message: str, field: int) -> None:
    words, strs = _one_int(extra)
    with pytest.raises(BtfError, match=message) as e:
        _load_words(words, strs)
    assert e.value.offset == 24 + 16 + field


def test_errors_from_a_file_name_the_file(tmp_path: object) -> None:
    import pathlib

    p = pathlib.Path(str(tmp_path)) / "bad.btf"
    p.write_bytes(b"\x9f\xeb\x01")
    with pytest.raises(BtfError, match=r"bad\.btf: offset 0: truncated header"):
        load_btf(p)


def _exercise(data: bytes) -> None:
    """Load and use a possibly corrupt blob the way callers do; only BtfError may come out."""
    try:
        spec = load_btf(data)
        spec.validate()
        for line in dump_raw(spec):
            assert line
        for t in spec.types():
            str(t)
            spec.describe(t)
            try:
                spec.sizeof(t)
                spec.alignof(t)
            except BtfError:
                pass
            if isinstance(t, Composite):
                for m in t.members:
                    if m.name:
                        try:
                            spec.member(t, m.name)
                        except BtfError:
                            pass
            name = getattr(t, "name", "")
            if name:
                assert t.id in spec.find_ids(name)
        marshal(spec.types(), strings=spec.raw_strings)
    except BtfError as e:
        assert e.offset is None or 0 <= e.offset <= len(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD)))
def test_fuzz_truncated_small_blob(cut: int) -> None:
    _exercise(GOOD[:cut])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_flipped_small_blob(flips: list[tuple[int, int]]) -> None:
    data = bytearray(GOOD)
    for pos, mask in flips:
        data[pos] ^= mask
    _exercise(bytes(data))


VM = vmlinux_bytes()


def _clamp(t: Type, last: int) -> Type:
    """`t` with references past `last` redirected to type 1, so a prefix of vmlinux stands alone."""

    def fix(tid: int) -> int:
        return tid if tid <= last else 1

    changes: dict[str, object] = {}
    for f in ("type_id", "index_type_id", "return_type_id"):
        if hasattr(t, f):
            changes[f] = fix(getattr(t, f))
    if isinstance(t, Composite):
        changes["members"] = tuple(replace(m, type_id=fix(m.type_id)) for m in t.members)
    if isinstance(t, FuncProto):
        changes["params"] = tuple(replace(p, type_id=fix(p.type_id)) for p in t.params)
    if isinstance(t, Datasec):
        changes["vars"] = tuple(replace(v, type_id=fix(v.type_id)) for v in t.vars)
    return replace(t, **changes)  # type: ignore[arg-type]


def _vmlinux_head(limit: int = 8192) -> bytes:
    """The types in vmlinux's first `limit` bytes of type records, re-encoded as a standalone blob."""
    assert VM is not None
    spec = load_btf(VM)
    last = max(i for i, o in enumerate(spec._offs, 1) if int(o) * 4 < limit) - 1
    return marshal(_clamp(spec.type_by_id(i), last) for i in range(1, last + 1))


@pytest.mark.skipif(VM is None, reason="no readable /sys/kernel/btf/vmlinux")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_vmlinux_head(data: st.DataObject) -> None:
    head = _VMLINUX_HEAD_CACHE.get("head") or _VMLINUX_HEAD_CACHE.setdefault("head", _vmlinux_head())
    body = len(head)
    if data.draw(st.booleans(), label="truncate"):
        _exercise(head[: data.draw(st.integers(0, body), label="cut")])
    else:
        buf = bytearray(head)
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            pos = data.draw(st.integers(0, body - 1), label="pos")
            buf[pos] ^= data.draw(st.integers(1, 255), label="mask")
        _exercise(bytes(buf))


_VMLINUX_HEAD_CACHE: dict[str, bytes] = {}


@pytest.mark.skipif(VM is None, reason="no readable /sys/kernel/btf/vmlinux")
def test_vmlinux_head_is_itself_valid() -> None:
    head = _vmlinux_head()
    spec = load_btf(head)
    spec.validate()
    assert len(spec) > 100 and len(head) > 4096
    assert spec.find("task_struct").size > 1000
    assert {t.kind for t in spec.types()} >= {Kind.INT, Kind.STRUCT, Kind.PTR, Kind.FUNC_PROTO}
