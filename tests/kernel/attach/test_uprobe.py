"""Uprobes, uretprobes, uprobe_multi and USDT probes on programs the test compiles with gcc.

Each test runs the target a known number of times and compares the counter with it exactly: a uprobe
fires once per call in that file, whatever the process (or only in `pid`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfkit.elf.symbols import read_image
from bpfkit.errors import ElfError, KernelError
from bpfkit.kernel.attach.elfsyms import find_binary
from bpfkit.kernel.attach.uprobe import (
    attach_uprobe,
    attach_uprobe_multi,
    legacy_probe_names,
    resolve,
)
from bpfkit.kernel.attach.usdt import attach_usdt, find_usdt, read_usdt_probes
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType

pytestmark = pytest.mark.kernel

SDT_HEADER = Path("/usr/include/x86_64-linux-gnu/sys/sdt.h")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#ifdef WITH_SDT
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
unsigned short bpfkit_test_hit_semaphore __attribute__((unused)) __attribute__((section(".probes")));
#define HIT(i, s) \
    do { if (bpfkit_test_hit_semaphore) { seen++; STAP_PROBE2(bpfkit_test, hit, i, s); } } while (0)
#else
#define HIT(i, s) do { } while (0)
#endif
int bpfkit_lib_func(int x);
__attribute__((noinline)) int bpfkit_target(int x) { __asm__ volatile(""); return x * 2 + 1; }
__attribute__((noinline)) int bpfkit_other(int x) { __asm__ volatile(""); return x + 7; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]), seen = 0;
    long s = 0;
    if (argc > 2) { char line[8]; if (!fgets(line, sizeof line, stdin)) return 2; }
    for (int i = 0; i < n; i++) {
        s += bpfkit_target(i) + bpfkit_other(i);
#ifdef WITH_LIB
        s += bpfkit_lib_func(i);
#endif
        HIT(i, s);
    }
    printf("%ld %d\n", s, seen);
    return 0;
}
"""

LIBRARY = r"""
__attribute__((noinline)) int bpfkit_lib_func(int x) { __asm__ volatile(""); return x ^ 5; }
"""


@dataclass(frozen=True)
class Targets:
    pie: Path
    nopie: Path
    with_lib: Path
    lib: Path
    sdt: Path | None


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Targets:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the probe targets)")
    d = tmp_path_factory.mktemp("uprobe")
    (d / "t.c").write_text(PROGRAM)
    (d / "lib.c").write_text(LIBRARY)

    def cc(*args: str) -> None:
        subprocess.run(["gcc", "-O1", *args], cwd=d, check=True, capture_output=True)

    cc("-fPIE", "-pie", "-o", "pie", "t.c")
    cc("-fno-pie", "-no-pie", "-o", "nopie", "t.c")
    cc("-shared", "-fPIC", "-o", "libbpfkitt.so", "lib.c")
    cc("-DWITH_LIB", "-o", "withlib", "t.c", f"-L{d}", "-lbpfkitt", f"-Wl,-rpath,{d}")
    sdt = None
    if SDT_HEADER.exists():
        cc("-DWITH_SDT", "-o", "sdt", "t.c")
        sdt = d / "sdt"
    return Targets(d / "pie", d / "nopie", d / "withlib", d / "libbpfkitt.so", sdt)


def run(exe: Path, n: int) -> str:
    return subprocess.run([str(exe), str(n)], check=True, capture_output=True, text=True).stdout


def nm_address(path: Path, symbol: str) -> int:
    """The symbol's value as binutils' nm reports it (the oracle for our ELF reading)."""
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16)
    raise AssertionError(f"nm: no {symbol} in {path}")


@pytest.fixture
def uprobe_counter(counter_program):
    def make(key: int = 0, attach: AttachType | None = None):
        return counter_program(ProgType.KPROBE, key=key, attach=attach)
    return make


@pytest.fixture(autouse=True)
def _no_probe_left(no_new_links: None) -> Iterator[None]:
    yield
    assert legacy_probe_names() == []


def test_symbol_offsets_match_nm(targets: Targets) -> None:
    for exe in (targets.pie, targets.nopie):
        image = read_image(exe)
        addr = nm_address(exe, "bpfkit_target")
        assert image.symbol("bpfkit_target").address == addr
        off = image.symbol_offset("bpfkit_target")
        seg = next(s for s in image.segments if s.vaddr <= addr < s.vaddr + s.memsz)
        assert off == addr - seg.vaddr + seg.offset
        assert image.address_of(off) == addr
        assert image.symbol_offset("bpfkit_target+4") == off + 4
    assert read_image(targets.pie).pie and not read_image(targets.nopie).pie
    with pytest.raises(ElfError, match="no symbol 'no_such_function'"):
        read_image(targets.pie).symbol("no_such_function")


@pytest.mark.parametrize("which", ["pie", "nopie"])
def test_uprobe_by_symbol_counts_calls(targets: Targets, counts: Map, uprobe_counter, which: str) -> None:
    exe = getattr(targets, which)
    with attach_uprobe(uprobe_counter(0), str(exe), "bpfkit_target") as link:
        run(exe, 200)
        assert counts[0] == 200
        info = link.info()
        assert info.type == LinkType.PERF_EVENT and info.target["event_type"] == "uprobe"
        assert info.target["file"] == str(exe) and info.target["offset"] == resolve(
            str(exe), "bpfkit_target").offset
    run(exe, 50)
    assert counts[0] == 200


def test_uretprobe_and_address_and_offset(targets: Targets, counts: Map, uprobe_counter) -> None:
    exe = targets.nopie
    addr = nm_address(exe, "bpfkit_other")
    off = read_image(exe).offset_of(addr)
    with attach_uprobe(uprobe_counter(0), str(exe), "bpfkit_target", retprobe=True) as r, \
            attach_uprobe(uprobe_counter(1), str(exe), address=addr) as a, \
            attach_uprobe(uprobe_counter(2), str(exe), offset=off):
        assert r.info().target["event_type"] == "uretprobe" and a.kind == "uprobe"
        run(exe, 30)
    assert (counts[0], counts[1], counts[2]) == (30, 30, 30)


def test_uprobe_in_shared_library(targets: Targets, counts: Map, uprobe_counter) -> None:
    with attach_uprobe(uprobe_counter(3), str(targets.lib), "bpfkit_lib_func"):
        run(targets.with_lib, 25)
        run(targets.pie, 25)  # does not load the library
    assert counts[3] == 25


def test_uprobe_in_libc_by_name(targets: Targets, counts: Map, uprobe_counter) -> None:
    """A bare library name is found in the process's mappings; the pid filter keeps other processes'
    printf calls out, so the target's single printf is counted exactly once."""
    libc = find_binary("libc", os.getpid())
    assert os.path.basename(libc).startswith("libc.so") and read_image(libc).symbol("printf").address
    child = subprocess.Popen([str(targets.pie), "3", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        with attach_uprobe(uprobe_counter(4), "libc", "printf", pid=child.pid) as link:
            assert link.info().target["file"] == libc
            out, _ = child.communicate("go\n", timeout=30)
            assert out.split()[0] == "33"  # sum of (2i+1) + (i+7) for i < 3
            assert counts[4] == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_pid_filter(targets: Targets, counts: Map, uprobe_counter) -> None:
    exe = targets.pie
    child = subprocess.Popen([str(exe), "40", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        with attach_uprobe(uprobe_counter(5), str(exe), "bpfkit_target", pid=child.pid):
            run(exe, 100)  # another process: not counted
            child.communicate("go\n", timeout=30)
            assert counts[5] == 40
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_legacy_tracefs_uprobe(targets: Targets, counts: Map, uprobe_counter) -> None:
    with attach_uprobe(uprobe_counter(6), str(targets.pie), "bpfkit_target", legacy=True) as link:
        assert len(legacy_probe_names()) == 1
        run(targets.pie, 15)
        target = link.info().target  # the kernel reports a tracefs uprobe as a uprobe too
        assert target["event_type"] == "uprobe" and target["file"] == str(targets.pie)
    assert counts[6] == 15
    assert legacy_probe_names() == []  # the probe event went with the attachment


def test_uprobe_multi(targets: Targets, counts: Map, uprobe_counter) -> None:
    prog = uprobe_counter(7, attach=AttachType.TRACE_UPROBE_MULTI)
    exe = str(targets.pie)
    try:
        link = attach_uprobe_multi(prog, exe, ["bpfkit_target", "bpfkit_other"])
    except KernelError as e:
        pytest.skip(f"uprobe_multi links are not available here: {e}")
    with link:
        run(targets.pie, 10)
        info = link.info()
        assert info.type == LinkType.UPROBE_MULTI and info.target["func_cnt"] == 2
        assert info.target["path"] == exe
    assert counts[7] == 20


def test_uprobe_on_missing_symbol_names_file(targets: Targets, uprobe_counter) -> None:
    with pytest.raises(ElfError, match=r"pie: no symbol 'nope'"):
        attach_uprobe(uprobe_counter(0), str(targets.pie), "nope")
    with pytest.raises(ElfError, match="no such file"):
        attach_uprobe(uprobe_counter(0), "/nonexistent/bin", "main")


def _readelf_notes(path: Path) -> list[tuple[str, str, int, int, str]]:
    out = subprocess.run(["readelf", "-n", str(path)], check=True, capture_output=True, text=True).stdout
    found = []
    for m in re.finditer(r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, "
                         r"Semaphore: (0x[0-9a-f]+)\s+Arguments: ([^\n]*)", out):
        found.append((m[1], m[2], int(m[3], 16), int(m[4], 16), m[5].strip()))
    return found


def test_usdt_notes_match_readelf(targets: Targets) -> None:
    if targets.sdt is None:
        pytest.skip(f"{SDT_HEADER} is missing (apt install systemtap-sdt-dev)")
    probes = read_usdt_probes(str(targets.sdt))
    assert [(p.provider, p.name, p.address, p.semaphore, p.arg_spec) for p in probes] == \
        _readelf_notes(targets.sdt)
    (p,) = probes
    assert len(p.args) == 2 and p.args[0].size == 4 and p.args[0].signed
    assert p.semaphore_offset == read_image(targets.sdt).offset_of(p.semaphore)
    with pytest.raises(ElfError, match=r"no USDT probe bpfkit_test:nope.*has bpfkit_test:hit"):
        find_usdt(str(targets.sdt), "bpfkit_test", "nope")
    assert read_usdt_probes(str(targets.pie)) == []


def test_usdt_with_semaphore(targets: Targets, counts: Map, uprobe_counter) -> None:
    if targets.sdt is None:
        pytest.skip(f"{SDT_HEADER} is missing (apt install systemtap-sdt-dev)")
    assert run(targets.sdt, 10).split()[1] == "0"  # semaphore off: probe skipped
    with attach_usdt(uprobe_counter(0), str(targets.sdt), "bpfkit_test", "hit") as group:
        assert len(group) == 1 and group[0].kind == "usdt"
        out = run(targets.sdt, 33)
    assert out.split()[1] == "33"  # the kernel raised the semaphore while attached
    assert counts[0] == 33
    assert run(targets.sdt, 10).split()[1] == "0"


def test_auto_attach_uprobe_sections(targets: Targets, counts: Map, uprobe_counter) -> None:
    """uprobe/, uretprobe/, uprobe.multi/ (glob) and usdt/ section names, attached by `attach_all`."""
    from bpfkit.kernel.attach.auto import attach_all

    exe = str(targets.sdt or targets.pie)
    pairs = [(f"uprobe/{exe}:bpfkit_target", uprobe_counter(0)),
             (f"uretprobe/{exe}:bpfkit_other", uprobe_counter(1)),
             (f"uprobe.multi/{exe}:bpfkit_*", uprobe_counter(2, attach=AttachType.TRACE_UPROBE_MULTI))]
    if targets.sdt is not None:
        pairs.append((f"usdt/{exe}:bpfkit_test:hit", uprobe_counter(3)))
    with attach_all(pairs) as links:
        assert [link.kind for link in links] == ["uprobe", "uretprobe", "uprobe_multi", "usdt"][:len(pairs)]
        run(Path(exe), 12)
    assert (counts[0], counts[1], counts[2]) == (12, 12, 24)
    if targets.sdt is not None:
        assert counts[3] == 12
