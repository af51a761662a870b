"""`bpfkit obj show` / `bpfkit objdump`: the summary data, its text, the listing, and the CLI."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from bpfkit.cli.main import main
from bpfkit.obj import load_object
from bpfkit.obj.show import format_summary, objdump, summarize

from .oracle import C_DIR, LLVM_OBJDUMP, OBJ_DIR, OBJECTS, entry


def test_summary_of_maps_btf() -> None:
    s = summarize(load_object(OBJ_DIR / "maps_btf.o"))
    json.dumps(s)  # JSON-able
    assert s["license"] == "GPL"
    assert [p["name"] for p in s["programs"]] == ["maps_btf"]
    assert s["programs"][0]["type"] == "socket_filter"
    maps = {m["name"]: m for m in s["maps"]}
    assert maps["hash_map"] == {"name": "hash_map", "type": "hash", "key_size": 4, "value_size": 8,
                                "max_entries": 128, "flags": 1, "key_type": "__u32",
                                "value_type": "__u64", "section": ".maps"}
    assert maps["outer_map"]["inner_map"]["type"] == "array"
    assert maps["outer_map"]["init"] == [{"slot": 0, "value": "inner_a"}, {"slot": 1, "value": "inner_b"}]
    assert maps["bpfkit_fixture_pinned"]["pinning"] == "by_name"
    relocs = s["relocations"]
    assert len(relocs) == 23 and {r["kind"] for r in relocs} == {"map"}
    assert relocs[0] == {"program": "maps_btf", "insn": 11, "kind": "map", "target": "hash_map", "offset": 0,
                         "symbol": "hash_map"}


@pytest.mark.parametrize("name", [o["object"] for o in OBJECTS])
def test_summary_and_text_for_every_fixture(name: str) -> None:
    obj = load_object(OBJ_DIR / name)
    s = summarize(obj)
    assert json.loads(json.dumps(s)) == s
    text = format_summary(s)
    for p in obj.programs.values():
        assert re.search(rf"^  {re.escape(p.name)}\s+{re.escape(p.section)}\s", text, re.M)
    for m in obj.maps:
        assert re.search(rf"^  {re.escape(m)}\s", text, re.M)
    for v in obj.variables:
        assert re.search(rf"^  {re.escape(v)}\s", text, re.M)


def _normalise(text: str) -> str:
    text = re.sub(r" <[^>]+>", "", text)  # jump labels
    return re.sub(r"call \w+#(\d+)", r"call \1", text)  # helper names


@pytest.mark.parametrize("name", ["socket_filter.o", "alu64.v3.o", "jumps.v1.o", "bswap.v2.o", "atomics.o"])
def test_objdump_text_matches_llvm_objdump(name: str) -> None:
    if LLVM_OBJDUMP is None:
        pytest.skip("llvm-objdump is not installed")
    obj = load_object(OBJ_DIR / name)
    alu32 = "--mattr=+alu32" in entry(name)["objdump_args"]
    ours = objdump(obj, alu32=alu32)
    theirs = subprocess.run([LLVM_OBJDUMP, *entry(name)["objdump_args"], str(OBJ_DIR / name)],
                            capture_output=True, text=True, check=True).stdout
    insn = re.compile(r"^\s*(\d+):\t([0-9a-f ]+)\t(.*)$")
    theirs_by_slot = {}
    section = None
    for line in theirs.splitlines():
        m = re.match(r"^Disassembly of section (.+):$", line)
        if m:
            section = m.group(1)
        m = insn.match(line)
        if m and section is not None:
            theirs_by_slot[(section, int(m.group(1)))] = (m.group(2), _normalise(m.group(3)))
    compared = 0
    for p in obj.programs.values():
        own = next(s for s in p.subprograms if s.index == 0)
        size = p.subprograms[1].index if len(p.subprograms) > 1 else len(p.insns) // 8
        listing = objdump(obj, alu32=alu32, program=p.name)
        for line in listing.splitlines():
            m = insn.match(line)
            if not m or int(m.group(1)) >= size:
                continue
            slot = int(m.group(1))
            raw, text = theirs_by_slot[(p.section, slot)]
            if text.startswith("call ") and m.group(3).startswith("call +"):
                continue  # a relocated local call: ours points at the appended copy
            assert (m.group(2), _normalise(m.group(3))) == (raw, text), (own.name, slot)
            compared += 1
    assert compared > 10
    assert ours.count("program ") == len(obj.programs)


def test_objdump_source_lines_come_from_the_source() -> None:
    obj = load_object(OBJ_DIR / "subprogs.v3.o")
    text = objdump(obj)
    source = {line.strip() for line in (C_DIR / "subprogs.c").read_text().splitlines()}
    comments = [line[2:] for line in text.splitlines() if line.startswith("; ")]
    assert comments and all(c in source for c in comments)
    assert "<level3>:" in text and "call +" in text
    assert re.search(r"call \+\d+ <level1>", text)


def test_cli_obj_show_and_objdump(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(OBJ_DIR / "tail_call.o")
    assert main(["obj", "show", path]) == 0
    out = capsys.readouterr().out
    assert "jump_table" in out and "init [0]=tail_target" in out
    assert main(["obj", "show", "-j", path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["programs"]] == ["tail_target", "tail_caller"]
    assert main(["objdump", path, "-p", "tail_caller"]) == 0
    out = capsys.readouterr().out
    assert "program tail_caller" in out and "program tail_target" not in out
    assert "; map jump_table" in out


def test_cli_reports_bad_objects(capsys: pytest.CaptureFixture[str]) -> None:
    bad = OBJ_DIR / "MANIFEST.json"
    assert main(["obj", "show", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfkit: error: ") and "not an ELF file" in err and "MANIFEST.json" in err
