"""`bpfkit trace` vs bpftrace: start-up latency and peak memory (run as root).

Two measurements, each the median of --runs runs, side by side with bpftrace when it is installed (the
tools take turns, run by run, so a change in the machine's load affects them alike):

- first event: wall time from exec of the tracer to the first output line of
  ``tracepoint:syscalls:sys_enter_openat /comm == "cat"/ { printf("%s\\n", str(args->filename)); exit(); }``,
  triggered the same way for every tool, by one of (--trigger):
  ``opener`` (default): one process named ``cat`` (prctl PR_SET_NAME, started before the timing) that
  opens /etc/hostname every --period ms (default 1): a tracer waits period/2 on average after attaching,
  and the trigger costs almost no CPU (the tracers start on a 2-core machine);
  ``cat``: ``cat /etc/hostname`` started every --period ms by a thread (a fork and exec each time: at
  short periods it takes CPU from the tracer being measured);
- BEGIN/exit: total wall time of ``BEGIN { exit(); }``.

Peak memory is the tracer process's maximum resident set size (wait4's ru_maxrss).

bpfkit rows:
- ``bpfkit``: the installed console script, its compiled-script cache warm (bpfkit.trace.cache; the
  bench uses a private cache directory, filled by one untimed run per script);
- ``bpfkit nc``: the same with ``--no-cache`` (the compiler runs every time);
- ``bpfkit -S`` / ``bpfkit -S nc``: ``python -S -m bpfkit``, without the site module, so without any
  .pth file of site-packages (this sandbox has one importing certifi at every start, ~20 ms); bpfkit and
  site-packages are put on PYTHONPATH instead. ``--no-site`` adds these rows.

bpfkit runs as an installed package would: with cached bytecode (PYTHONDONTWRITEBYTECODE is dropped and
the cache goes to a private PYTHONPYCACHEPREFIX, warmed by the untimed runs). `--cold` keeps the
caller's environment instead (with PYTHONDONTWRITEBYTECODE=1 every run recompiles every module).

    sudo python benchmarks/bench_trace.py [--runs 7] [--trigger opener|cat] [--period MS] [--no-site]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable

OPENAT = ('tracepoint:syscalls:sys_enter_openat /comm == "cat"/ '
          '{ printf("%s\\n", str(args->filename)); exit(); }')
BEGIN_EXIT = "BEGIN { exit(); }"


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Reap `proc`; its peak RSS in KiB."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return int(usage.ru_maxrss)


ENV: dict[str, str] = dict(os.environ)
PERIOD = 0.001
TRIGGER = "opener"
OPENER = """
import ctypes, os, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(15, b"cat", 0, 0, 0) != 0:  # PR_SET_NAME
    sys.exit("prctl failed")
print("ready", flush=True)
while True:
    os.close(os.open("/etc/hostname", os.O_RDONLY))
    time.sleep(float(sys.argv[1]))
"""


def _trigger(stop: threading.Event) -> None:
    """Start ``cat /etc/hostname`` every PERIOD seconds until `stop` is set."""
    while not stop.is_set():
        subprocess.run(["cat", "/etc/hostname"], stdout=subprocess.DEVNULL, check=False)
        stop.wait(PERIOD)


class Opener:
    """A process called ``cat`` opening /etc/hostname every PERIOD seconds, while in the `with` block."""

    def __enter__(self) -> Opener:
        self.proc = subprocess.Popen([sys.executable, "-c", OPENER, str(PERIOD)], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the opener did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def first_event(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    stop = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "-e", OPENAT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    trigger = threading.Thread(target=_trigger, args=(stop,), daemon=True)
    if TRIGGER == "cat":
        trigger.start()
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    elapsed = None
    deadline = t0 + 60
    try:
        while elapsed is None and time.perf_counter() < deadline:
            if not sel.select(timeout=1):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            # The event is the line after "Attaching 1 probe..." (it may be empty when the string read
            # faults: the file name's page was not in memory yet).
            if buf.count(b"\n") >= 2:
                elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        if trigger.is_alive():
            trigger.join()
        sel.close()
    proc.stdout.read()
    rss = _wait(proc)
    if elapsed is None:
        raise RuntimeError(f"{cmd[0]}: no event within 60 s (output: {buf!r})")
    return elapsed, rss


def begin_exit(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "-e", BEGIN_EXIT], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    rss = _wait(proc)
    return time.perf_counter() - t0, rss


def _bpfkit_script() -> list[str]:
    """The installed console script (not a pyenv shim: that is a shell script running pyenv first)."""
    script = os.path.join(sysconfig.get_path("scripts"), "bpfkit")
    if os.access(script, os.X_OK):
        return [script, "trace"]
    return [sys.executable, "-m", "bpfkit", "trace"]


def _no_site_env() -> dict[str, str]:
    """ENV plus a PYTHONPATH that finds bpfkit and site-packages without the site module."""
    import bpfkit

    src = os.path.dirname(os.path.dirname(os.path.abspath(bpfkit.__file__)))
    paths = [src, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    env = dict(ENV)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def main() -> int:
    global PERIOD, TRIGGER
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--trigger", choices=("opener", "cat"), default="opener",
                    help="what makes the openat events (see above)")
    ap.add_argument("--period", type=float, help="ms between two openat triggers (default: opener 1, cat 5)")
    ap.add_argument("--no-site", action="store_true", help="add rows for bpfkit run by python -S")
    ap.add_argument("--cold", action="store_true", help="keep the environment (no bytecode cache)")
    args = ap.parse_args()
    TRIGGER = args.trigger
    period = args.period if args.period is not None else (1.0 if TRIGGER == "opener" else 5.0)
    PERIOD = period / 1000
    if os.geteuid() != 0:
        print("bench_trace: needs root", file=sys.stderr)
        return 2
    if not args.cold:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "bpfkit-bench-pycache")
    cache = tempfile.mkdtemp(prefix="bpfkit-bench-cache-")
    ENV["BPFKIT_CACHE_DIR"] = cache
    script = _bpfkit_script()
    no_site = [sys.executable, "-S", "-m", "bpfkit", "trace"]
    tools: dict[str, tuple[list[str], dict[str, str]]] = {
        "bpfkit": (script, ENV),
        "bpfkit nc": ([*script, "--no-cache"], ENV),
    }
    if args.no_site:
        tools["bpfkit -S"] = (no_site, _no_site_env())
        tools["bpfkit -S nc"] = ([*no_site, "--no-cache"], _no_site_env())
    bt = shutil.which("bpftrace")
    if bt:
        tools["bpftrace"] = ([bt], ENV)
    print(f"trigger: {TRIGGER} every {period:g} ms; bpfkit: {' '.join(script)}; cache {cache}")
    print(f"{'measurement':<24}{'tool':<14}{'median s':>10}{'min s':>9}{'peak RSS MiB':>14}")
    # Untimed: fill the bytecode cache, the page cache and the compiled-script cache.
    for cmd, env in (tools["bpfkit"], tools.get("bpfkit -S", tools["bpfkit"])):
        begin_exit(cmd, env)
        with Opener() if TRIGGER == "opener" else contextlib.nullcontext():
            first_event(cmd, env)
    measures: tuple[tuple[str, Callable[[list[str], dict[str, str]], tuple[float, int]]], ...] = (
        ("first openat event", first_event), ("BEGIN { exit(); }", begin_exit))
    try:
        for label, fn in measures:
            # Round-robin over the tools, so a change in the machine's load hits them all alike.
            runs: dict[str, list[tuple[float, int]]] = {name: [] for name in tools}
            with Opener() if TRIGGER == "opener" and fn is first_event else contextlib.nullcontext():
                for _ in range(args.runs):
                    for name, (cmd, env) in tools.items():
                        runs[name].append(fn(cmd, env))
            for name, results in runs.items():
                times = [t for t, _ in results]
                rss = max(r for _, r in results) / 1024
                print(f"{label:<24}{name:<14}{statistics.median(times):>10.3f}{min(times):>9.3f}{rss:>14.1f}",
                      flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
