"""`bpfkit map ...` against a fake kernel: bpftool's JSON keys, element formats, command-line errors."""

from __future__ import annotations

import ctypes
import errno
import io
import json
import struct

import pytest

from bpfkit.cli import map_cmds
from bpfkit.cli.main import main
from bpfkit.kernel.fake import read_user
from bpfkit.uapi.attr import BpfMapInfo, MapCreateAttr, MapElemAttr
from bpfkit.uapi.enums import Cmd, MapType, UpdateFlags

from .conftest import FakeObjects


def _map(objs: FakeObjects, map_id: int, name: str, mtype: MapType = MapType.HASH, key: int = 4,
         value: int = 8, btf_id: int = 0) -> None:
    objs.maps[map_id] = BpfMapInfo(type=mtype, id=map_id, key_size=key, value_size=value, max_entries=16,
                                   map_flags=1, name=name.encode(), btf_id=btf_id)


def test_map_list_json_has_bpftool_keys(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _map(objs, 3, "counts")
    _map(objs, 5, "", MapType.PERCPU_ARRAY, btf_id=9)
    objs.vanished.add(("map", 4))
    assert main(["map", "list", "-j"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"id": 3, "type": "hash", "name": "counts", "flags": 1, "bytes_key": 4, "bytes_value": 8,
         "max_entries": 16, "bytes_memlock": 0, "frozen": 0},
        {"id": 5, "type": "percpu_array", "flags": 1, "bytes_key": 4, "bytes_value": 8, "max_entries": 16,
         "bytes_memlock": 0, "frozen": 0, "btf_id": 9},
    ]


def test_map_show_table_and_single_json(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _map(objs, 3, "counts")
    assert main(["map", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "NAME", "FLAGS", "KEY", "VALUE", "MAX_ENTRIES", "MEMLOCK",
                                "FROZEN", "BTF_ID"]
    assert lines[1].split() == ["3", "hash", "counts", "0x1", "4", "8", "16", "0", "no", "-"]
    assert main(["map", "show", "name", "counts", "-j"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == 3


def test_map_by_ambiguous_name_is_refused(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _map(objs, 3, "dup")
    _map(objs, 4, "dup")
    assert main(["map", "dump", "name", "dup"]) == 1
    assert "2 maps are named 'dup': name one by id" in capsys.readouterr().err


def test_lookup_of_a_missing_key_names_it(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _map(objs, 3, "counts")
    seen: list[bytes] = []

    def lookup(a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        seen.append(read_user(a.key, 4))
        return -errno.ENOENT

    objs.fake.on(Cmd.MAP_LOOKUP_ELEM, lookup)
    assert main(["map", "lookup", "id", "3", "key", "hex", "0a", "00", "00", "00"]) == 1
    assert seen == [b"\x0a\0\0\0"]
    assert "key 0a 00 00 00 is not in map counts" in capsys.readouterr().err


def test_update_packs_key_value_and_flag(objs: FakeObjects) -> None:
    _map(objs, 3, "counts")
    seen: list[tuple[bytes, bytes, int]] = []

    def update(a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        seen.append((read_user(a.key, 4), read_user(a.value, 8), a.flags))
        return 0

    objs.fake.on(Cmd.MAP_UPDATE_ELEM, update)
    assert main(["map", "update", "id", "3", "key", "1", "0", "0", "0", "value", "hex", "01", "02", "03",
                 "04", "05", "06", "07", "08", "exist"]) == 0
    assert seen == [(b"\1\0\0\0", bytes(range(1, 9)), UpdateFlags.EXIST)]


@pytest.mark.parametrize(("words", "message"), [
    (["key", "1", "0", "0", "0"], "value BYTES"),
    (["key", "1", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0", "any", "exist"],
     "at most one of any|exist|noexist"),
    (["key", "1", "0", "0", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0", "any", "1"], "come last"),
    (["key", "1", "0", "value", "1", "0", "0", "0", "0", "0", "0", "0"], "key must be 4 bytes, got 2"),
])
def test_update_usage_errors(objs: FakeObjects, capsys: pytest.CaptureFixture[str], words: list[str],
                             message: str) -> None:
    _map(objs, 3, "counts")
    assert main(["map", "update", "id", "3", *words]) == 1
    assert message in capsys.readouterr().err
    assert not objs.fake.bpf_calls(Cmd.MAP_UPDATE_ELEM)


def test_create_packs_the_spec_and_pins(objs: FakeObjects) -> None:
    made: list[tuple[int, int, int, int, int, bytes]] = []

    def create(a: ctypes.Structure) -> int:
        assert isinstance(a, MapCreateAttr)
        made.append((a.map_type, a.key_size, a.value_size, a.max_entries, a.map_flags, bytes(a.map_name)))
        return objs.fake.new_fd()

    objs.fake.on(Cmd.MAP_CREATE, create)
    assert main(["map", "create", "/sys/fs/bpf/m", "type", "lru_hash", "key", "8", "value", "16",
                 "entries", "100", "name", "lru", "flags", "0x40"]) == 0
    assert made == [(MapType.LRU_HASH, 8, 16, 100, 0x40, b"lru")]  # a c_char array reads up to NUL
    assert list(objs.pins) == ["/sys/fs/bpf/m"]


@pytest.mark.parametrize(("words", "message"), [
    ([], "bpfkit map create PATH type TYPE"),
    (["/sys/fs/bpf/m", "type", "hash", "key", "4"], "missing value, entries, name"),
    (["/sys/fs/bpf/m", "type", "hashy", "key", "4", "value", "4", "entries", "1", "name", "x"],
     "unknown map type 'hashy'"),
    (["/sys/fs/bpf/m", "type", "hash", "key", "four", "value", "4", "entries", "1", "name", "x"],
     "key size must be a number, got 'four'"),
])
def test_create_usage_errors(objs: FakeObjects, capsys: pytest.CaptureFixture[str], words: list[str],
                             message: str) -> None:
    assert main(["map", "create", *words]) == 1
    assert message in capsys.readouterr().err
    assert not objs.fake.bpf_calls(Cmd.MAP_CREATE)


def test_fast_json_writer_matches_the_record_form() -> None:
    key, value = bytes([1, 0, 0xFF, 0x10]), bytes(range(8))
    assert json.loads(map_cmds._json_element(key, value)) == map_cmds.element_record(key, value) == {
        "key": ["0x01", "0x00", "0xff", "0x10"], "value": [f"0x{i:02x}" for i in range(8)]}
    per_cpu = [b"\x01\x00", b"\x02\x00"]
    assert json.loads(map_cmds._json_element(key, per_cpu)) == map_cmds.element_record(key, per_cpu) == {
        "key": ["0x01", "0x00", "0xff", "0x10"],
        "values": [{"cpu": 0, "value": ["0x01", "0x00"]}, {"cpu": 1, "value": ["0x02", "0x00"]}]}


def test_text_elements_as_bpftool_prints_them() -> None:
    out = io.StringIO()
    map_cmds._text_element(struct.pack("<I", 1), struct.pack("<Q", 2), out)
    map_cmds._text_element(b"\0\0\0\0", [b"\1\0\0\0", b"\2\0\0\0"], out)
    assert out.getvalue() == ("key: 01 00 00 00  value: 02 00 00 00 00 00 00 00\n"
                              "key:\n00 00 00 00\nvalue (CPU 00): 01 00 00 00\nvalue (CPU 01): 02 00 00 00\n")


def test_dump_of_a_keyless_map_says_why(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _map(objs, 3, "q", MapType.QUEUE, key=0, value=4)
    for extra in ([], ["-j"]):
        assert main(["map", "dump", "id", "3", *extra]) == 1
        out = capsys.readouterr()
        assert "a queue map has no keys to dump" in out.err and out.out == ""
