"""ELF address/offset mapping and symbol choice, and auto-attach's reading of section names."""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.errors import ElfError
from bpfkit.kernel.attach import auto
from bpfkit.kernel.attach.auto import AutoAttachError, attach_all, attach_program, why_not_auto
from bpfkit.kernel.attach.base import AttachedLink
from bpfkit.kernel.attach.elfsyms import ElfImage, Segment, SymbolTable, find_binary, read_image
from bpfkit.obj.sections import SectionInfo


def symtab(*syms: tuple[str, int, int, int]) -> SymbolTable:
    """A symbol table of (name, value, STT type, STB binding); names share a tail-merged string table."""
    strings = b"\0x_dup\0f\0g\0f@@LIB_1.0\0"
    entries = bytes(24)
    for name, value, stype, bind in syms:
        off = strings.find(name.encode() + b"\0")
        entries += struct.pack("<IBBHQQ", off, bind << 4 | stype, 0, 1, value, 4)
    return SymbolTable(entries, strings)


def image() -> ElfImage:
    segs = (Segment(0x0, 0x800, 0x0, 0x800, False), Segment(0x1000, 0x500, 0x1000, 0x500, True),
            Segment(0x3DF0, 0x300, 0x2DF0, 0x220, False))
    table = symtab(("f@@LIB_1.0", 0x1139, 2, 1), ("dup", 0x1100, 2, 0), ("dup", 0x1200, 2, 0),
                   ("g", 0x1300, 2, 0), ("g", 0x1310, 10, 1), ("x_dup", 0x1400, 1, 1))  # x_dup: an object
    return ElfImage("/x/bin", "ET_DYN", segs, (table,), {})


def test_offsets_follow_segments() -> None:
    im = image()
    assert im.offset_of(0x1139) == 0x1139
    assert im.offset_of(0x3E00) == 0x2E00  # data segment: vaddr and offset differ by a page
    assert im.address_of(0x2E00) == 0x3E00
    with pytest.raises(ElfError, match=r"/x/bin: address 0x9000 is in no loadable segment"):
        im.offset_of(0x9000)


def test_symbol_choice() -> None:
    im = image()
    assert im.symbol_offset("f") == 0x1139 and im.symbol_offset("f+0x8") == 0x1141
    assert im.symbol("f@@LIB_1.0").address == 0x1139
    assert im.symbol("g").address == 0x1310  # the global definition wins
    with pytest.raises(ElfError, match=r"'dup' is ambiguous \(at 0x1100, 0x1200\)"):
        im.symbol("dup")
    with pytest.raises(ElfError, match="no symbol 'nope'"):
        im.symbol("nope")
    with pytest.raises(ElfError, match="no symbol 'x_dup'"):
        im.symbol("x_dup")  # not code
    assert im.symbol("g").type == "STT_GNU_IFUNC"
    assert im.symbol_names() == {"f", "dup", "g"}


def _pyelftools_functions(path: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and sym["st_shndx"] != "SHN_UNDEF" \
                            and sym.name:
                        out.setdefault(sym.name.split("@")[0], set()).add(sym["st_value"])
    return out


@pytest.mark.parametrize("binary", [sys.executable, "libc"])
def test_read_image_agrees_with_pyelftools(binary: str) -> None:
    path = find_binary(binary, os.getpid())
    im = read_image(path)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert [(s.vaddr, s.offset, s.memsz) for s in im.segments] == \
            [(s["p_vaddr"], s["p_offset"], s["p_memsz"]) for s in loads]
        assert im.elf_type == elf["e_type"]
        assert {s.name for s in elf.iter_sections()} == set(im.sections)
    oracle = _pyelftools_functions(path)
    assert im.symbol_names() == set(oracle)
    for name in sorted(oracle)[:: max(1, len(oracle) // 300)]:  # a few hundred, spread out
        assert {s.address for s in im.lookup(name)} == oracle[name], name
    assert read_image(path) is im  # cached


@given(st.binary(min_size=0, max_size=400))
@settings(max_examples=200, deadline=None)
def test_fuzz_only_elf_errors(data: bytes) -> None:
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"\x7fELF\x02\x01" + data if data[:1] != b"!" else data)
        f.flush()
        try:
            im = read_image(f.name)
            im.symbol_names()
            im.lookup("main")
        except ElfError:
            pass


def test_find_binary_errors(tmp_path: Path) -> None:
    with pytest.raises(ElfError, match="no such file"):
        find_binary(str(tmp_path / "none"))
    with pytest.raises(ElfError, match="cannot find 'bpfkit-no-such-lib'"):
        find_binary("bpfkit-no-such-lib")
    (tmp_path / "notelf").write_text("x")
    with pytest.raises(ElfError, match="not a usable ELF file"):
        read_image(tmp_path / "notelf")


@pytest.mark.parametrize(("section", "reason"), [
    ("tracepoint/syscalls/sys_enter_getpid", None),
    ("raw_tp/sched_switch", None),
    ("uprobe//usr/bin/bash:readline", None),
    ("usdt/libc.so.6:libc:setjmp", None),
    ("fentry/do_unlinkat", None),
    ("iter/task", None),
    ("xdp", "needs an interface"),
    ("tc/ingress", "needs an interface"),
    ("cgroup_skb/egress", "needs a cgroup"),
    ("socket", "needs a socket"),
    ("perf_event", "needs a perf event"),
    ("kprobe", "names no target"),
    ("weird_section", "no known convention"),
])
def test_why_not_auto(section: str, reason: str | None) -> None:
    got = why_not_auto(section)
    assert (got is None) if reason is None else (got is not None and reason in got)


def test_dispatch_by_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def fake(kind: str):  # type: ignore[no-untyped-def]
        def attach(program: object, info: SectionInfo) -> AttachedLink:
            seen.append((kind, info.target))
            return AttachedLink(kind, info.target)
        return attach

    for kind in ("tracepoint", "uprobe", "usdt", "kprobe"):
        monkeypatch.setitem(auto.ATTACHERS, kind, fake(kind))
    pairs = [("tp/sched/sched_switch", object()), ("uprobe/libc:malloc", object()),
             ("kprobe/do_sys_open", object()), ("xdp", object())]
    with attach_all(pairs) as links:
        assert seen == [("tracepoint", "sched/sched_switch"), ("uprobe", "libc:malloc"),
                        ("kprobe", "do_sys_open")]
        assert len(links) == 3 and list(links.skipped) == ["xdp"]
    assert links.closed


def test_failure_detaches_what_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[AttachedLink] = []

    def ok(program: object, info: SectionInfo) -> AttachedLink:
        made.append(AttachedLink("tracepoint", info.target))
        return made[-1]

    def fail(program: object, info: SectionInfo) -> AttachedLink:
        raise AutoAttachError("boom")

    monkeypatch.setitem(auto.ATTACHERS, "tracepoint", ok)
    monkeypatch.setitem(auto.ATTACHERS, "raw_tracepoint", fail)
    with pytest.raises(AutoAttachError, match="boom"):
        attach_all([("tp/a/b", object()), ("raw_tp/x", object())])
    assert made and all(link.closed for link in made)


def test_mapping_needs_sections() -> None:
    with pytest.raises(AutoAttachError, match="no section name for program 'p'"):
        attach_all({"p": object()})
    with pytest.raises(AutoAttachError, match="expected <binary>:<function>"):
        attach_program(object(), "uprobe/justaname")
