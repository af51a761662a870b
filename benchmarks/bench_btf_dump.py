"""vmlinux.h generation speed and memory: `bpfkit btf dump ... format c` vs `bpftool btf dump ... format c`.

Every figure is from a fresh process (best and median of --runs), its output sent to /dev/null:
wall time of the whole process (python start-up and imports included, for bpfkit), CPU time (user +
system, steadier than wall time on a busy machine) and peak RSS, all from wait4(2) on the child. For
bpfkit the time of the dump alone (load_btf + dump_c, after imports) and the peak of Python's own
allocations (one more run under tracemalloc, whose time is not used) are shown too.

    python benchmarks/bench_btf_dump.py [--runs 5] [--btf /sys/kernel/btf/vmlinux]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Children read byte-code caches, as an installed package does, kept out of the source tree.
_PYC_DIR = tempfile.mkdtemp(prefix="bench_btf_dump_pyc_")
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = _PYC_DIR


def child(path: str, trace: bool) -> None:
    """In a fresh process: load the BTF, write the header to /dev/null, print figures as JSON."""
    import tracemalloc

    if trace:
        tracemalloc.start()
    from bpfkit.btf import load_btf
    from bpfkit.btf.cdump import dump_c

    t0 = time.perf_counter()
    text = dump_c(load_btf(path))
    with open(os.devnull, "w") as out:
        out.write(text)
    step = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    print(json.dumps({"step_s": step, "py_peak": peak, "lines": text.count("\n")}))


def _measure(cmd: list[str], capture: bool = False) -> dict[str, float | str]:
    """Run `cmd` with stdout captured (small JSON) or sent to /dev/null; wall, CPU and peak RSS."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=_ENV)
    assert proc.stderr is not None
    out = proc.stdout.read() if proc.stdout is not None else b""
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss,
            "out": out.decode(errors="replace")}


def _ms(values: list[float]) -> str:
    return f"{min(values) * 1e3:8.0f} {statistics.median(values) * 1e3:8.0f}"


def _row(label: str, runs: list[dict[str, float | str]], extra: str = "") -> None:
    walls = [float(r["wall_s"]) for r in runs]
    cpus = [float(r["cpu_s"]) for r in runs]
    rss = min(float(r["rss_kib"]) for r in runs) / 1024
    print(f"{label:<44} {_ms(walls):>18} {_ms(cpus):>18} {rss:8.1f} {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.btf, args.trace)
        return
    if not os.access(args.btf, os.R_OK):
        sys.exit(f"cannot read {args.btf}")
    print(f"BTF: {args.btf} ({os.path.getsize(args.btf) / 1e6:.1f} MB), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {args.runs} runs each")
    ours_cmd = [sys.executable, __file__, "--child", "--btf", args.btf]
    _measure(ours_cmd, capture=True)  # warm the byte-code caches and the page cache
    print(f"{'command (output to /dev/null)':<44} {'wall ms best median':>18} {'CPU ms best median':>18} "
          f"{'RSS MB':>8}")
    runs = [_measure(ours_cmd, capture=True) for _ in range(args.runs)]
    steps = [json.loads(str(r["out"]))["step_s"] for r in runs]
    lines = json.loads(str(runs[0]["out"]))["lines"]
    traced = json.loads(str(_measure([*ours_cmd, "--trace"], capture=True)["out"]))
    peak_mb = traced["py_peak"] / 1e6
    note = f"dump alone {min(steps) * 1e3:.0f} ms, python peak {peak_mb:.1f} MB, {lines} lines"
    _row("bpfkit: load_btf + dump_c (python process)", runs, note)
    cli = [sys.executable, "-m", "bpfkit", "btf", "dump", "file", args.btf, "format", "c"]
    _measure(cli)
    _row("bpfkit btf dump file X format c", [_measure(cli) for _ in range(args.runs)])
    bpftool = shutil.which("bpftool") or next((p for p in ["/usr/sbin/bpftool"] if os.path.exists(p)), None)
    if bpftool is None:
        print("bpftool: not installed, no reference figure")
        return
    ref = [bpftool, "btf", "dump", "file", args.btf, "format", "c"]
    bt_lines = str(_measure(ref, capture=True)["out"]).count("\n")
    _row("bpftool btf dump file X format c", [_measure(ref) for _ in range(args.runs)], f"{bt_lines} lines")


if __name__ == "__main__":
    main()
