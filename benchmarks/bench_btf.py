"""BTF reading speed and memory: bpfkit.btf vs `bpftool btf dump ... format raw`.

Each figure comes from fresh child processes (best and median of --runs): wall time of the whole
process (python start-up and imports included) and time inside it for the step alone; then one more
child per step, run under tracemalloc (which slows it down, so its time is not used), gives the peak
memory Python allocated, and its peak RSS.

    python benchmarks/bench_btf.py [--runs 7] [--btf /sys/kernel/btf/vmlinux]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = {
    "baseline": "python start-up alone (no bpfkit)",
    "import": "import bpfkit.btf",
    "load": "load_btf(vmlinux): read + one indexing pass",
    "find": "load + find('task_struct') (one record decoded)",
    "find10": "load + 10 lookups (task_struct, sk_buff, ...)",
    "all": "load + decode all types",
    "raw": "load + dump_raw to /dev/null",
}
NAMES = ["task_struct", "sk_buff", "xdp_md", "bpf_prog", "file", "inode", "pt_regs", "mm_struct",
         "net_device", "sock"]


def child(step: str, path: str, trace: bool) -> None:
    """Run one step in this (fresh) process and print its figures as JSON."""
    import tracemalloc

    t0 = time.perf_counter()
    peak = 0
    if step == "baseline":
        t1 = t0
    else:
        if trace:
            tracemalloc.start()
        from bpfkit.btf import dump_raw, load_btf

        t1 = time.perf_counter()
        if step != "import":
            spec = load_btf(path)
            if step == "find":
                spec.find("task_struct")
            elif step == "find10":
                for name in NAMES:
                    spec.find(name)
            elif step == "all":
                spec.validate()
            elif step == "raw":
                with open(os.devnull, "w") as out:
                    for line in dump_raw(spec):
                        out.write(line)
                        out.write("\n")
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
    t2 = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"import_s": t1 - t0, "step_s": t2 - t1, "peak": peak, "rss_kib": rss_kib}))


# Children import from byte-code caches, as an installed package does: PYTHONDONTWRITEBYTECODE (set on
# some machines) would make every import compile its sources. The caches go to a temporary prefix, not
# into the source tree.
_PYC_DIR = tempfile.mkdtemp(prefix="bench_btf_pyc_")
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = _PYC_DIR


def _run_child(step: str, path: str, trace: bool = False) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", step, "--btf", path] + (["--trace"] if trace else [])
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_ENV).stdout
    wall = time.perf_counter() - t
    data: dict[str, float] = json.loads(out)
    data["wall_s"] = wall
    return data


def _ms(values: list[float]) -> str:
    return f"{min(values) * 1e3:8.1f} {statistics.median(values) * 1e3:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--child", choices=sorted(STEPS))
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.btf, args.trace)
        return
    if not os.access(args.btf, os.R_OK):
        sys.exit(f"cannot read {args.btf}")
    size = os.path.getsize(args.btf)
    print(f"BTF: {args.btf} ({size / 1e6:.1f} MB), python {sys.version.split()[0]}, {args.runs} runs each")
    _run_child("all", args.btf)  # warm the byte-code caches and the page cache
    print(f"{'step (each in a fresh process)':<52} {'wall ms best  median':>22} {'import ms':>9} "
          f"{'step ms best  median':>22} {'py peak MB':>10} {'RSS MB':>7}")
    for step, label in STEPS.items():
        runs = [_run_child(step, args.btf) for _ in range(args.runs)]
        traced = _run_child(step, args.btf, trace=True)
        imp = min(r["import_s"] for r in runs) * 1e3
        print(f"{label:<52} {_ms([r['wall_s'] for r in runs]):>22} {imp:9.1f} "
              f"{_ms([r['step_s'] for r in runs]):>22} {traced['peak'] / 1e6:10.1f} "
              f"{min(r['rss_kib'] for r in runs) / 1024:7.1f}")
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        print("bpftool: not installed, no reference figure")
        return
    walls = []
    for _ in range(args.runs):
        t = time.perf_counter()
        with open(os.devnull, "w") as out:
            cmd = [bpftool, "btf", "dump", "file", args.btf, "format", "raw"]
            subprocess.run(cmd, stdout=out, check=True)
        walls.append(time.perf_counter() - t)
    print(f"{'bpftool btf dump file X format raw > /dev/null':<52} {_ms(walls):>22}")
    print("wall: whole process incl. python start-up; step: time in the process after imports")


if __name__ == "__main__":
    main()
