#!/usr/bin/env python3
"""Start-to-attached time of a small tracepoint program: bpfkit (cold cache, cached; clang and zig cc)
against BCC, each in a fresh Python process, measured from spawn to the "attached" line (wall clock).

The program is the same BCC-dialect source for both (BPF_HASH + TRACEPOINT_PROBE). BCC needs kernel
headers for the running kernel at /lib/modules/$(uname -r)/build; with ``--bcc-headers BUILD:SOURCE``
this script links them there for the run (and removes the links after); without headers BCC is n/a.

    sudo python benchmarks/bench_cc.py [--runs 3] \
        [--bcc-headers /usr/src/linux-headers-X-amd64:/usr/src/linux-headers-X-common]
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
from pathlib import Path

PROGRAM = r"""
BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    return 0;
}
"""

CHILD = """
import os, sys
from {module} import BPF
b = BPF(text={program!r}{extra})
os.getppid()
assert {lookup} >= 1
print("attached", flush=True)
"""


LOOKUP = {"bpfkit": 'b["counts"][os.getpid()]', "bcc": 'b["counts"][b["counts"].Key(os.getpid())].value'}


def run_child(python: str, module: str, env: dict[str, str], extra: str = "", tag: str = "") -> float:
    program = PROGRAM + (f"// {tag}\n" if tag else "")  # a new tag: a program the cache has not seen
    code = CHILD.format(module=module, program=program, extra=extra, lookup=LOOKUP[module])
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    _out, err = proc.communicate()
    if "attached" not in line or proc.returncode != 0:
        raise RuntimeError(f"{module} run failed: {err.strip().splitlines()[-1:] or proc.returncode}")
    return elapsed


def bpfkit_times(runs: int, compiler: str | None) -> tuple[list[float], list[float], list[float]]:
    """(empty cache, vmlinux.h cached but a new program, program cached) start-to-attached times."""
    cold, new, cached = [], [], []
    extra = f", compiler={compiler!r}" if compiler else ""
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-cc-") as cache:
            env = {**os.environ, "BPFKIT_CACHE_DIR": cache}
            cold.append(run_child(sys.executable, "bpfkit", env, extra))
            new.append(run_child(sys.executable, "bpfkit", env, extra, tag=f"new {i}"))
            cached.append(run_child(sys.executable, "bpfkit", env, extra))
    return cold, new, cached


def bcc_times(runs: int, headers: str | None) -> tuple[list[float], str]:
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import bcc"], capture_output=True)
    if probe.returncode != 0:
        return [], "n/a: python3-bpfcc is not installed"
    moddir = Path("/lib/modules") / os.uname().release
    made: list[Path] = []
    try:
        if not (moddir / "build").exists():
            if not headers:
                return [], (f"n/a: BCC needs kernel headers at {moddir}/build (this kernel has none; "
                            "pass --bcc-headers BUILD:SOURCE to link a distribution's headers there)")
            build, _, source = headers.partition(":")
            if not moddir.exists():
                moddir.mkdir(parents=True)
                made.append(moddir)
            for name, target in (("build", build), ("source", source or build)):
                (moddir / name).symlink_to(target)
                made.insert(0, moddir / name)
        times = [run_child(python, "bcc", dict(os.environ)) for _ in range(runs)]
        note = "headers linked from " + headers if made else "headers from " + str(moddir / "build")
        return times, note
    except RuntimeError as e:
        return [], f"failed: {e}"
    finally:
        for p in made:
            if p.is_symlink():
                p.unlink()
            elif p.is_dir():
                p.rmdir()


def fmt(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"{statistics.median(xs) * 1000:8.0f} ms  (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bcc-headers", help="BUILD[:SOURCE] kernel header dirs to link for BCC")
    ap.add_argument("--no-zig", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    cold, new, cached = bpfkit_times(args.runs, None)
    rows += [("bpfkit clang, empty cache (makes vmlinux.h)", fmt(cold)),
             ("bpfkit clang, new program (vmlinux.h cached)", fmt(new)),
             ("bpfkit clang, program cached", fmt(cached))]
    if not args.no_zig:
        try:
            import ziglang  # noqa: F401

            zcold, znew, zcached = bpfkit_times(args.runs, "zig")
            rows += [("bpfkit zig cc, empty cache", fmt(zcold)), ("bpfkit zig cc, new program", fmt(znew)),
                     ("bpfkit zig cc, program cached", fmt(zcached))]
        except ImportError:
            rows.append(("bpfkit zig cc", "n/a: ziglang not installed"))
    btimes, note = bcc_times(args.runs, args.bcc_headers)
    rows.append((f"BCC ({note})", fmt(btimes)))
    print(f"start -> attached, small tracepoint program, median of {args.runs} fresh processes")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    if shutil.which("clang") is None and os.environ.get("BPFKIT_CLANG") is None:
        print("note: no system clang; bpfkit falls back to zig cc if installed", file=sys.stderr)
    raise SystemExit(main())
