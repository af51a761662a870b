"""Finding binaries (`find_binary`) and auto-attach's reading of section names (ELF reading itself is
tested in tests/unit/elf/test_symbols.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.elf.symbols import read_image
from bpfkit.errors import ElfError
from bpfkit.kernel.attach import auto
from bpfkit.kernel.attach.auto import AutoAttachError, attach_all, attach_program, why_not_auto
from bpfkit.kernel.attach.base import AttachedLink
from bpfkit.kernel.attach.elfsyms import find_binary
from bpfkit.obj.sections import SectionInfo


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
