"""`bpfkit trace` vs bpftrace: start-up latency and peak memory (run as root).

Two measurements, each the median of --runs runs, side by side with bpftrace when it is installed:

- first event: wall time from exec of the tracer to the first output line of
  ``tracepoint:syscalls:sys_enter_openat /comm == "cat"/ { printf("%s\\n", str(args->filename)); exit(); }``,
  with ``cat /etc/hostname`` run every 20 ms until that line arrives;
- BEGIN/exit: total wall time of ``BEGIN { exit(); }``.

Peak memory is the tracer process's maximum resident set size (wait4's ru_maxrss).

bpfkit runs as an installed package would: with cached bytecode (PYTHONDONTWRITEBYTECODE is dropped and
the cache goes to a private PYTHONPYCACHEPREFIX, warmed by one untimed run). `--cold` keeps the
caller's environment instead (with PYTHONDONTWRITEBYTECODE=1 every run recompiles every module).

    sudo python benchmarks/bench_trace.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

OPENAT = ('tracepoint:syscalls:sys_enter_openat /comm == "cat"/ '
          '{ printf("%s\\n", str(args->filename)); exit(); }')
BEGIN_EXIT = "BEGIN { exit(); }"


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Reap `proc`; its peak RSS in KiB."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return int(usage.ru_maxrss)


ENV: dict[str, str] = dict(os.environ)


def first_event(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "-e", OPENAT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=ENV)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    elapsed = None
    deadline = t0 + 60
    while elapsed is None and time.perf_counter() < deadline:
        subprocess.run(["cat", "/etc/hostname"], stdout=subprocess.DEVNULL, check=False)
        if sel.select(timeout=0.02):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            # The event is the line after "Attaching 1 probe..." (it may be empty when the string read
            # faults: the file name's page was not in memory yet).
            if buf.count(b"\n") >= 2:
                elapsed = time.perf_counter() - t0
    sel.close()
    proc.stdout.read()
    rss = _wait(proc)
    if elapsed is None:
        raise RuntimeError(f"{cmd[0]}: no event within 60 s (output: {buf!r})")
    return elapsed, rss


def begin_exit(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "-e", BEGIN_EXIT], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    rss = _wait(proc)
    return time.perf_counter() - t0, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="keep the environment (no bytecode cache)")
    args = ap.parse_args()
    if not args.cold:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "bpfkit-bench-pycache")
    if os.geteuid() != 0:
        print("bench_trace: needs root", file=sys.stderr)
        return 2
    tools = {"bpfkit": [sys.executable, "-m", "bpfkit", "trace"]}
    bt = shutil.which("bpftrace")
    if bt:
        tools["bpftrace"] = [bt]
    print(f"{'measurement':<24}{'tool':<10}{'median s':>10}{'min s':>9}{'peak RSS MiB':>14}")
    begin_exit(tools["bpfkit"])  # warm the bytecode cache (and the page cache) untimed
    for label, fn in (("first openat event", first_event), ("BEGIN { exit(); }", begin_exit)):
        for name, cmd in tools.items():
            runs = [fn(cmd) for _ in range(args.runs)]
            times = [t for t, _ in runs]
            rss = max(r for _, r in runs) / 1024
            print(f"{label:<24}{name:<10}{statistics.median(times):>10.3f}{min(times):>9.3f}{rss:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
