"""Loading whole objects: `bpfkit prog loadall` vs `bpftool prog loadall` (libbpf) on every fixture of
tests/data/obj that libbpf loads.

For each tool, each object is loaded by a child process pinning its programs under a fresh directory
of /sys/fs/bpf (removed afterwards); the table shows the best wall time of --runs runs and the
child's peak resident memory (GNU time's %M). bpfkit's CLI time includes Python start-up, measured
alone (`python -c pass`, and building the CLI's parser) and shown on the last line, and the in-process
column is `Collection.load` + close in this process (BTF of vmlinux cached after the first object,
as a long-running program would have it). Needs root and bpftool.

    python benchmarks/bench_load.py [--runs 3] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bpfkit.kernel.collection import Collection
from bpfkit.obj import load_object

ROOT = Path(__file__).resolve().parents[1]
OBJ = ROOT / "tests" / "data" / "obj"
BPFFS = Path("/sys/fs/bpf")
TIME = "/usr/bin/time"


def child(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one run of `cmd`."""
    # posix_spawn (vfork-like) rather than fork: a forked child's peak RSS starts at this process's.
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        os.close(null)
    del usage  # its ru_maxrss starts at this process's peak (kept across exec): see peak_kib
    return wall, peak_kib(cmd), os.waitstatus_to_exitcode(status)


def peak_kib(cmd: list[str]) -> int:
    """Peak RSS of `cmd` in KiB, measured by GNU time from its own small process (a child of this
    process would inherit this process's peak); 0 when /usr/bin/time is missing."""
    if not os.path.exists(TIME):
        return 0
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run([TIME, "-f", "%M", "-o", out.name, *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        text = out.read().strip().splitlines()
    return int(text[-1]) if text and text[-1].isdigit() else 0


def clean(path: Path) -> None:
    if path.is_dir():
        for p in path.iterdir():
            p.unlink()
        path.rmdir()
    elif path.exists():
        path.unlink()


def best(cmd_of: list[str], pin: Path, runs: int, by_name: list[Path]) -> tuple[float, int, int]:
    results = []
    for _ in range(runs):
        try:
            results.append(child([*cmd_of, str(pin)]))
        finally:
            clean(pin)
            for p in by_name:
                clean(p)
    return min(r[0] for r in results), max(r[1] for r in results), results[0][2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="only objects whose name contains this")
    args = ap.parse_args()
    bpftool = shutil.which("bpftool")
    if os.geteuid() != 0 or bpftool is None:
        print("needs root and bpftool", file=sys.stderr)
        return 1
    manifest = json.loads((OBJ / "MANIFEST.json").read_text())
    names = [o["object"] for o in manifest["objects"]
             if o["expect_load"] and not o["never_load"] and (not args.only or args.only in o["object"])]
    tag = uuid.uuid4().hex[:6]
    print(f"{'object':22} {'bpftool ms':>10} {'KiB':>7} | {'bpfkit ms':>9} {'KiB':>7} | "
          f"{'in-proc ms':>10}  ok")
    tot = [0.0, 0.0, 0.0]
    mem = [0, 0]
    for name in names:
        path = OBJ / name
        by_name = [BPFFS / n for n, m in load_object(path).maps.items() if m.pinning]
        pin = BPFFS / f"bench_load_{tag}"
        t_tool, m_tool, rc_tool = best([bpftool, "prog", "loadall", str(path)], pin, args.runs, by_name)
        t_kit, m_kit, rc_kit = best([sys.executable, "-m", "bpfkit", "prog", "loadall", str(path)], pin,
                                    args.runs, by_name)
        in_proc = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            spec = load_object(path)
            Collection.load(spec, pin_root=str(BPFFS)).close(unpin=True)
            in_proc.append(time.perf_counter() - t0)
        t_in = min(in_proc)
        tot[0] += t_tool
        tot[1] += t_kit
        tot[2] += t_in
        mem = [max(mem[0], m_tool), max(mem[1], m_kit)]
        agree = "yes" if (rc_tool == 0) == (rc_kit == 0) else "NO"
        print(f"{name:22} {t_tool * 1e3:10.1f} {m_tool:7d} | {t_kit * 1e3:9.1f} {m_kit:7d} | "
              f"{t_in * 1e3:10.1f}  {agree}")
    print(f"{'total (' + str(len(names)) + ')':22} {tot[0] * 1e3:10.1f} {mem[0]:7d} | {tot[1] * 1e3:9.1f} "
          f"{mem[1]:7d} | {tot[2] * 1e3:10.1f}   (KiB: peak of any run)")
    t_py, m_py, _ = min(child([sys.executable, "-c", "pass"]) for _ in range(args.runs))
    t_cli, m_cli, _ = min(child([sys.executable, "-c", "from bpfkit.cli.main import build_parser; "
                                 "build_parser()"]) for _ in range(args.runs))
    print(f"python start-up: {t_py * 1e3:.1f} ms ({m_py} KiB); python + building the bpfkit CLI parser "
          f"(imports every command module): {t_cli * 1e3:.1f} ms ({m_cli} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
