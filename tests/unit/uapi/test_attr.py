"""The ctypes layouts in bpfkit.uapi.attr against the running kernel's BTF, read by bpftool (the oracle)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from bpfkit.uapi import attr

BTF = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def btf_types() -> dict[int, dict[str, Any]]:
    if not shutil.which("bpftool") or not os.access(BTF, os.R_OK):
        pytest.skip("needs bpftool and a readable /sys/kernel/btf/vmlinux")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", BTF], check=True, capture_output=True)
    return {t["id"]: t for t in json.loads(out.stdout)["types"]}


def _resolve(types: dict[int, dict[str, Any]], tid: int) -> dict[str, Any]:
    t = types[tid]
    while t["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "TYPE_TAG"):
        t = types[t["type_id"]]
    return t


def _by_name(types: dict[int, dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(t for t in types.values() if t["kind"] == kind and t.get("name") == name)


def _check(types: dict[int, dict[str, Any]], t: dict[str, Any], cls: Any, path: str) -> int:
    """Compare every member of BTF type `t` with ctypes class `cls`; returns the number checked."""
    assert ctypes.sizeof(cls) == t["size"], f"{path}: size"
    names = [f[0] for f in cls._fields_]
    anon = [m for m in t["members"] if m["name"] == "(anon)"]
    named = [m["name"] for m in t["members"] if m["name"] != "(anon)"]
    assert [n for n in names if not n.startswith("_anon")] == named, f"{path}: member names"
    assert len([n for n in names if n.startswith("_anon")]) == len(anon)
    checked = 0
    for m, (fname, ftype, *bits) in zip(t["members"], cls._fields_, strict=True):
        where = f"{path}.{fname}"
        if m.get("bitfield_size"):
            assert bits == [m["bitfield_size"]], where
            obj = cls()
            setattr(obj, fname, 1)
            raw = int.from_bytes(bytes(obj), "little")
            assert raw == 1 << m["bits_offset"], f"{where}: bit position"
            checked += 1
            continue
        assert getattr(cls, fname).offset * 8 == m["bits_offset"], f"{where}: offset"
        mt = _resolve(types, m["type_id"])
        assert ctypes.sizeof(ftype) == mt.get("size", ctypes.sizeof(ftype)) or mt["kind"] == "ARRAY", where
        if mt["kind"] in ("STRUCT", "UNION"):
            checked += _check(types, mt, ftype, where)
        elif mt["kind"] == "ARRAY":
            elem = _resolve(types, mt["type_id"])
            assert ctypes.sizeof(ftype) == mt["nr_elems"] * elem["size"], where
        checked += 1
    return checked


def test_every_bpf_attr_member_matches_btf(btf_types: dict[int, dict[str, Any]]) -> None:
    union = _by_name(btf_types, "UNION", "bpf_attr")
    assert ctypes.sizeof(attr.BpfAttr) == union["size"]
    members = union["members"]
    assert len(attr.BpfAttr._fields_) == len(members)
    total = 0
    for m, (_name, cls) in zip(members, attr.BpfAttr._fields_, strict=True):
        total += _check(btf_types, _resolve(btf_types, m["type_id"]), cls, cls.__name__)
    assert total > 150


@pytest.mark.parametrize(
    ("cname", "cls"),
    [
        ("bpf_prog_info", attr.BpfProgInfo),
        ("bpf_map_info", attr.BpfMapInfo),
        ("bpf_btf_info", attr.BpfBtfInfo),
        ("bpf_link_info", attr.BpfLinkInfo),
        ("perf_event_attr", attr.PerfEventAttr),
    ],
)
def test_info_structs_match_btf(btf_types: dict[int, dict[str, Any]], cname: str, cls: Any) -> None:
    assert _check(btf_types, _by_name(btf_types, "STRUCT", cname), cls, cname) >= 4


def test_layouts_are_independent_of_btf() -> None:
    """Facts from the UAPI header that hold on every kernel since the fields were added."""
    assert attr.MapCreateAttr.map_name.offset == 28
    assert attr.MapElemAttr.key.offset == 8 and attr.MapElemAttr.value.offset == 16
    assert attr.MapElemAttr.next_key.offset == 16 and attr.MapElemAttr.flags.offset == 24
    assert attr.ProgLoadAttr.insns.offset == 8 and attr.ProgLoadAttr.log_buf.offset == 32
    assert attr.ProgLoadAttr.prog_name.offset == 48
    assert attr.ProgTestRunAttr.duration.offset == 36
    assert attr.PerfEventAttr.sample_period.offset == 16
    assert attr.BpfProgInfo.tag.offset == 8 and attr.BpfProgInfo.name.offset == 64
