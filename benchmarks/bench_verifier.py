"""bpfkit's verifier beside the kernel's, on every fixture program of tests/data/obj the kernel loads.

    python benchmarks/bench_verifier.py [--runs N] [--only NAME] [--no-kernel]

Per program (MANIFEST.json, `expect_load`): bpfkit's verdict and the instructions it processed over all
paths, beside the kernel's `verified_insns` (bpf_prog_info, 5.16+); the best of --runs of bpfkit's
`verify_program` (the object parsed and CO-RE-relocated against the running kernel's BTF once, outside
the timing; kfuncs and BTF-typed contexts checked against that BTF), and the best of --runs of the kernel's
BPF_PROG_LOAD for the same program (the wall time of the syscall: verifier, fixups and JIT, measured
around the one bpf(2) call inside `Collection.load`, with the maps already made) with, beside it, the
verifier's own share as the kernel reports it (`verification time N usec`, BPF_LOG_STATS). Kernel
columns need root and bpf(2); they say "n/a" otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpfkit.btf import Spec, load_btf
from bpfkit.errors import BpfkitError, VerificationError
from bpfkit.obj import ObjectSpec, load_object
from bpfkit.uapi.enums import Cmd
from bpfkit.vm.objects import resolve_object
from bpfkit.vm.verifier import verify_program

ROOT = Path(__file__).resolve().parents[1]
VMLINUX = "/sys/kernel/btf/vmlinux"
OBJ = ROOT / "tests" / "data" / "obj"
LOG_STATS = 4
"""BPF_LOG_STATS: the kernel's log holds only the verification time and counts."""
_VERIFY_TIME = re.compile(r"verification time (\d+) usec")


@dataclass
class Row:
    obj: str
    name: str
    ours_insns: int | None = None
    ours_note: str = ""
    ours_s: float | None = None
    kernel_insns: int | None = None
    kernel_s: float | None = None
    kernel_verify_s: float | None = None
    kernel_note: str = ""
    loads: list[float] = field(default_factory=list)


def fixture_programs(only: str | None) -> list[tuple[str, list[str]]]:
    """(object, [program names the kernel loads]) from MANIFEST.json."""
    manifest = json.loads((OBJ / "MANIFEST.json").read_text())
    out = []
    for o in manifest["objects"]:
        if not o["expect_load"]:
            continue
        names = [p["name"] for p in o["programs"] if p["expect_load"]]
        if only and only not in o["object"] and only not in names:
            continue
        out.append((o["object"], names))
    return out


def time_ours(spec: ObjectSpec, row: Row, runs: int, btf: Spec | None) -> None:
    programs, maps = spec.programs, spec.maps
    if btf is not None:  # as a loader hands programs over: CO-RE applied against the target BTF
        resolved = resolve_object(spec, target_btf=btf)
        programs, maps = resolved.programs, resolved.maps
    prog = programs[row.name]
    best = float("inf")
    for _ in range(runs):
        gc.collect()  # a collection inside the timing is another program's garbage
        t0 = time.perf_counter()
        try:
            result = verify_program(prog, maps, btf=btf)
        except VerificationError as err:
            row.ours_note = "refused: " + err.report.message
            return
        best = min(best, time.perf_counter() - t0)
        row.ours_insns = result.processed_insns
    row.ours_s = best


def kernel_available() -> str | None:
    """Why the kernel columns cannot be filled, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    from bpfkit.kernel.features import probe_prog_type
    from bpfkit.uapi.enums import ProgType

    try:
        return None if probe_prog_type(ProgType.SOCKET_FILTER) else "bpf(2) cannot load programs"
    except BpfkitError as err:
        return f"bpf(2) unavailable: {err}"


def time_kernel(obj: str, spec: ObjectSpec, rows: dict[str, Row], runs: int) -> None:
    """Load the object `runs` times; per program keep the fastest BPF_PROG_LOAD and its stats."""
    from bpfkit.kernel.collection import Collection
    from bpfkit.kernel.objects import kernel_name
    from bpfkit.kernel.syscall import LinuxSyscalls, override

    class Timed(LinuxSyscalls):
        """The real syscalls, timing each BPF_PROG_LOAD by program name."""

        def __init__(self) -> None:
            super().__init__()
            self.loads: dict[bytes, float] = {}

        def bpf(self, cmd: int, attr: ctypes.Structure, size: int | None = None) -> int:
            if cmd != Cmd.PROG_LOAD:
                return super().bpf(cmd, attr, size)
            t0 = time.perf_counter()
            try:
                return super().bpf(cmd, attr, size)
            finally:
                self.loads[bytes(attr.prog_name)] = time.perf_counter() - t0

    for _ in range(runs):
        timed = Timed()
        try:
            with override(timed), Collection.load(spec, log_level=LOG_STATS) as coll:
                for name, row in rows.items():
                    prog = coll.programs[name]
                    row.loads.append(timed.loads[kernel_name(name)])
                    row.kernel_insns = prog.info().verified_insns
                    m = _VERIFY_TIME.search(prog.verifier_log or "")
                    if m:
                        took = int(m.group(1)) / 1e6
                        row.kernel_verify_s = min(row.kernel_verify_s or took, took)
        except BpfkitError as err:
            for row in rows.values():
                row.kernel_note = f"failed: {str(err).splitlines()[0][:60]}"
            return
    for row in rows.values():
        row.kernel_s = min(row.loads)


def ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1e3:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="best of N (default 5)")
    ap.add_argument("--only", help="only objects or programs whose name contains this")
    ap.add_argument("--no-kernel", action="store_true", help="bpfkit's figures only")
    args = ap.parse_args()
    why_not = "--no-kernel" if args.no_kernel else kernel_available()
    btf = load_btf(VMLINUX) if os.access(VMLINUX, os.R_OK) else None  # kfuncs, BTF-typed contexts
    rows: list[Row] = []
    for obj, names in fixture_programs(args.only):
        spec = load_object(OBJ / obj)
        by_name = {n: Row(obj, n) for n in names}
        for row in by_name.values():
            time_ours(spec, row, args.runs, btf)
        if why_not is None:
            time_kernel(obj, spec, by_name, args.runs)
        rows.extend(by_name.values())

    head = (f"{'object':<20} {'program':<18} {'insns bpfkit':>12} {'insns kernel':>12} "
            f"{'bpfkit ms':>10} {'kernel load ms':>14} {'kernel verify ms':>16}  note")
    print(head)
    print("-" * len(head))
    for r in rows:
        note = "; ".join(x for x in (r.ours_note, r.kernel_note) if x)
        print(f"{r.obj:<20} {r.name:<18} {r.ours_insns if r.ours_insns is not None else '-':>12} "
              f"{r.kernel_insns if r.kernel_insns is not None else 'n/a':>12} {ms(r.ours_s):>10} "
              f"{ms(r.kernel_s):>14} {ms(r.kernel_verify_s):>16}  {note}")
    both = [r for r in rows if r.ours_s is not None and r.kernel_s is not None]
    accepted = [r for r in rows if r.ours_s is not None]
    print("-" * len(head))
    print(f"bpfkit accepted {len(accepted)} of {len(rows)} programs; "
          f"{sum(r.ours_insns or 0 for r in accepted)} insns processed in "
          f"{sum(r.ours_s or 0 for r in accepted) * 1e3:.1f} ms")
    if why_not is not None:
        print(f"kernel: n/a ({why_not})")
    elif both:
        ours = sum(r.ours_s or 0 for r in both)
        kern = sum(r.kernel_s or 0 for r in both)
        kver = sum(r.kernel_verify_s or 0 for r in both)
        print(f"on the {len(both)} programs both accept: bpfkit {ours * 1e3:.1f} ms "
              f"({sum(r.ours_insns or 0 for r in both)} insns), kernel load {kern * 1e3:.1f} ms, kernel "
              f"verification {kver * 1e3:.1f} ms ({sum(r.kernel_insns or 0 for r in both)} insns); "
              f"bpfkit / kernel load = {ours / kern:.1f}x")
    print(f"(best of {args.runs} runs each)")


if __name__ == "__main__":
    main()
