"""Attach speed: attach and detach times per kind (detach is close(2), where the kernel waits for an
RCU grace period: tens of milliseconds on a small VM, whoever closes), uprobe symbol resolution, and the
cost of a uprobe hit. Reference tools: bpftool's cgroup attach/detach (a whole bpftool process per
operation, as a shell script would pay it) and pyelftools for symbol lookup.

    python benchmarks/bench_attach.py [--runs 200]

Needs root. Prints best and median microseconds per operation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bpfkit.kernel.attach import (
    attach_cgroup,
    attach_raw_tracepoint,
    attach_tracepoint,
    attach_uprobe,
)
from bpfkit.kernel.attach.cgroup import find_cgroup2
from bpfkit.kernel.attach.elfsyms import _read, read_image
from bpfkit.kernel.programs import Program
from bpfkit.uapi.enums import AttachType, ProgType

RET0 = bytes.fromhex("b7000000000000009500000000000000")
RET1 = bytes.fromhex("b7000000010000009500000000000000")

TARGET = r"""
#include <stdlib.h>
__attribute__((noinline)) int hit(int x) { __asm__ volatile(""); return x + 1; }
int main(int argc, char **argv) { long s = 0; int n = atoi(argv[1]); for (int i = 0; i < n; i++) s += hit(i);
  return (int)(s & 1); }
"""


def timeit(fn: Callable[[], None], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return min(times), statistics.median(times)


def attach_detach(attach: Callable[[], object], runs: int, label: str) -> None:
    """Time the attach call and the close(2) of what it made separately."""
    made: list[object] = []

    def do_attach() -> None:
        made.append(attach())

    def do_close() -> None:
        made.pop().close()  # type: ignore[attr-defined]

    at: list[float] = []
    de: list[float] = []
    for _ in range(runs):
        at.append(timeit(do_attach, 1)[0])
        de.append(timeit(do_close, 1)[0])
    row(f"{label}: attach", min(at), statistics.median(at))
    row(f"{label}: detach", min(de), statistics.median(de))


def row(label: str, best: float, median: float, unit: str = "us") -> None:
    print(f"{label:<52} {best:>10.1f} {median:>10.1f} {unit}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    runs = args.runs
    print(f"{'operation':<52} {'best':>10} {'median':>10}")
    tp = Program.load(RET0, ProgType.TRACEPOINT)
    raw = Program.load(RET0, ProgType.RAW_TRACEPOINT)
    kp = Program.load(RET0, ProgType.KPROBE)
    cg = Program.load(RET1, ProgType.CGROUP_SKB, expected_attach_type=AttachType.CGROUP_INET_EGRESS)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "t.c"
        src.write_text(TARGET)
        exe = Path(d) / "t"
        subprocess.run(["gcc", "-O1", "-o", str(exe), str(src)], check=True)

        attach_detach(lambda: attach_tracepoint(tp, "syscalls:sys_enter_getpid"), runs, "tracepoint")
        attach_detach(lambda: attach_raw_tracepoint(raw, "sys_enter"), runs, "raw tracepoint")
        attach_detach(lambda: attach_uprobe(kp, str(exe), "hit"), runs, "uprobe by symbol (ELF cached)")

        libc = "/lib/x86_64-linux-gnu/libc.so.6"

        def cold() -> None:
            _read.cache_clear()
            read_image(libc).symbol_offset("malloc")

        row("resolve libc.so.6:malloc, cold (bpfkit)", *timeit(cold, runs))

        def with_pyelftools() -> None:
            from elftools.elf.elffile import ELFFile

            with open(libc, "rb") as f:
                sec = ELFFile(f).get_section_by_name(".dynsym")
                next(s for s in sec.iter_symbols() if s.name == "malloc")  # type: ignore[union-attr]

        row("resolve libc.so.6:malloc, cold (pyelftools)", *timeit(with_pyelftools, max(3, runs // 20)))

        n = 20000
        base = timeit(lambda: subprocess.run([str(exe), str(n)]), 5)
        with attach_uprobe(kp, str(exe), "hit"):
            probed = timeit(lambda: subprocess.run([str(exe), str(n)]), 5)
        row(f"uprobe hit cost ({n} hits, run time difference / hits)", (probed[0] - base[0]) / n,
            (probed[1] - base[1]) / n)

        cgdir = find_cgroup2() / f"bpfkit-bench-{os.getpid()}"
        cgdir.mkdir()
        try:
            attach_detach(lambda: attach_cgroup(cg, cgdir), runs, "cgroup link")
            row("cgroup link attach+detach (bpfkit)", *timeit(lambda: attach_cgroup(cg, cgdir).close(), runs))
            if shutil.which("bpftool"):
                pin = f"/sys/fs/bpf/bpfkit_bench_{os.getpid()}"
                cg.pin(pin)
                try:
                    def tool() -> None:
                        subprocess.run(["bpftool", "cgroup", "attach", str(cgdir), "egress", "pinned", pin],
                                       check=True)
                        subprocess.run(["bpftool", "cgroup", "detach", str(cgdir), "egress", "pinned", pin],
                                       check=True)
                    row("cgroup attach+detach (2 bpftool processes)", *timeit(tool, max(5, runs // 20)))
                finally:
                    os.unlink(pin)
        finally:
            cgdir.rmdir()
    for p in (tp, raw, kp, cg):
        p.close()


if __name__ == "__main__":
    main()
