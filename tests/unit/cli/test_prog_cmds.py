"""`bpfkit prog ...` against a fake kernel: bpftool's JSON keys, tables, xlated dumps, errors."""

from __future__ import annotations

import json
import struct

import pytest

from bpfkit.cli import prog_cmds
from bpfkit.cli.main import main
from bpfkit.kernel import introspect
from bpfkit.uapi.attr import BpfProgInfo
from bpfkit.uapi.enums import Cmd, ProgType

from .conftest import FakeObjects


def _prog(objs: FakeObjects, prog_id: int, name: str, maps: list[int], code: bytes = b"") -> None:
    info = BpfProgInfo(type=ProgType.XDP, id=prog_id, name=name.encode(), created_by_uid=0,
                       jited_prog_len=70, load_time=5_000_000_000, verified_insns=8)
    info.tag[:] = list(bytes.fromhex("0bd0168676c7c779"))
    info.gpl_compatible = 1
    objs.progs[prog_id] = info
    objs.prog_maps[prog_id] = maps
    objs.prog_code[prog_id] = code


def test_prog_list_json_has_bpftool_keys(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, 7, "myxdp", [3, 4], b"\0" * 32)
    assert main(["prog", "list", "-j"]) == 0
    [rec] = json.loads(capsys.readouterr().out)
    epoch = int(introspect.boot_ns_to_epoch(5_000_000_000))
    assert rec.pop("loaded_at") in (epoch, epoch - 1, epoch + 1)
    assert rec == {"id": 7, "type": "xdp", "name": "myxdp", "tag": "0bd0168676c7c779", "gpl_compatible": True,
                   "uid": 0, "bytes_xlated": 32, "jited": True, "bytes_jited": 70, "bytes_memlock": 0,
                   "map_ids": [3, 4], "verified_insns": 8}


def test_prog_list_skips_a_program_that_vanished(objs: FakeObjects,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, 7, "a", [])
    _prog(objs, 9, "b", [])
    objs.vanished.add(("prog", 8))  # listed by GET_NEXT_ID, gone by GET_FD_BY_ID (ENOENT)
    assert main(["prog", "list", "-j"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [7, 9]
    assert len(objs.fake.bpf_calls(Cmd.PROG_GET_FD_BY_ID)) == 3


def test_prog_show_by_id_prints_one_object_and_table(objs: FakeObjects,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, 7, "a", [1])
    _prog(objs, 12, "bb", [])
    assert main(["prog", "show", "id", "12", "-p"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["id"] == 12 and out.startswith("{\n    ")
    assert main(["prog", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "NAME", "TAG", "GPL", "LOADED_AT", "UID", "XLATED", "JITED",
                                "MEMLOCK", "MAP_IDS"]
    assert lines[1].split()[:3] == ["7", "xdp", "a"] and lines[1].split()[-1] == "1"
    assert lines[2].split()[:3] == ["12", "xdp", "bb"] and lines[2].split()[-1] == "-"


def test_prog_show_by_name_and_unknown_id(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, 7, "a", [])
    assert main(["prog", "show", "name", "a", "-j"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == 7
    assert main(["prog", "show", "id", "99"]) == 1
    assert "no program has id 99" in capsys.readouterr().err
    assert main(["prog", "show", "name", "zz"]) == 1
    assert "no program has name 'zz'" in capsys.readouterr().err


def test_dump_xlated_names_maps_and_helpers(objs: FakeObjects, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    slot = struct.Struct("<BBhi")
    code = (slot.pack(0x18, 0x11, 0, 5) + slot.pack(0, 0, 0, 0)       # r1 = map[id:5]
            + slot.pack(0x85, 0, 0, 0x100)                           # call (offset from __bpf_call_base)
            + slot.pack(0x15, 0, 1, 0)                               # if r0 == 0 goto +1
            + slot.pack(0xB7, 0, 0, 2) + slot.pack(0x95, 0, 0, 0))
    _prog(objs, 7, "a", [5], code)
    monkeypatch.setattr(introspect, "call_base", lambda: 0x1000)
    monkeypatch.setattr(introspect, "kernel_symbols",
                        lambda addrs: {a: "bpf_map_lookup_elem" for a in addrs if a == 0x1100})
    assert main(["prog", "dump", "xlated", "id", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "   0: (18) r1 = map[id:5]",
        "   2: (85) call bpf_map_lookup_elem#256",
        "   3: (15) if r0 == 0 goto +1",
        "   4: (b7) r0 = 2",
        "   5: (95) exit",
    ]
    assert main(["prog", "dump", "xlated", "id", "7", "opcodes", "-j"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0] == {"disasm": "(18) r1 = map[id:5]",
                       "opcodes": ["0x18", "0x11", "0x00", "0x00", "0x05"] + ["0x00"] * 11}
    assert len(recs) == 5


def test_xlated_map_value_and_unknown_insns() -> None:
    slot = struct.Struct("<BBhi")
    code = slot.pack(0x18, 0x21, 0, 9) + slot.pack(0, 0, 0, 16) + slot.pack(0xFF, 0, 0, 0)
    lines = prog_cmds.xlated_lines(code)
    assert [t for _, t, _ in lines] == ["(18) r1 = map[id:9][0]+16",
                                        "(ff) <kernel-internal insn ff00000000000000>"]


def test_dump_needs_xlated(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prog", "dump", "jited", "id", "1"]) == 1
    assert "supports: xlated" in capsys.readouterr().err


def test_prog_pin(objs: FakeObjects) -> None:
    _prog(objs, 7, "a", [])
    assert main(["prog", "pin", "id", "7", "/sys/fs/bpf/x"]) == 0
    assert objs.pins == {"/sys/fs/bpf/x": ("prog", 7)}


def test_prog_run_needs_input(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, 7, "a", [])
    assert main(["prog", "run", "id", "7"]) == 1
    assert "needs data_in FILE" in capsys.readouterr().err
    assert main(["prog", "run", "id", "7", "data_in", "a", "b"]) == 1
    assert "data_in takes one value, got 2" in capsys.readouterr().err
