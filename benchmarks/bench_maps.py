"""Map operation speed: bpfkit's Map, one element per bpf(2) call vs batches, and `bpfkit map dump` vs
`bpftool map dump` on the same map.

A hash map (u32 keys, u64 values) of --entries elements (default 1M) is filled, read and dumped:
  * update ops/s: Map.update per element, vs Map.update_batch (--batch elements per call);
  * lookup ops/s: Map.lookup per element, vs Map.lookup_batch of the whole map;
  * wall time of `bpfkit map dump id N` and `bpftool map dump id N`, text and JSON, output to /dev/null
    (each the best of --runs child processes; bpfkit's includes Python start-up, shown separately).
Needs root and, for the reference column, bpftool.

    python benchmarks/bench_maps.py [--entries 1000000] [--batch 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from bpfkit.kernel.maps import Map
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapFlags, MapType


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:.2f} M/s" if n / seconds >= 1e6 else f"{n / seconds / 1e3:.0f} k/s"


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_wall(cmd: list[str], runs: int) -> float:
    """Best wall time of `runs` runs of `cmd`, its output thrown away."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n = args.entries
    keys = [struct.pack("<I", i) for i in range(n)]
    values = [struct.pack("<Q", i * 3) for i in range(n)]
    rows: list[tuple[str, str, str, str]] = []

    spec = MapSpec(MapType.HASH, 4, 8, n, MapFlags(0), name="bench_hash")
    with Map.create(spec) as m:
        def single_update() -> None:
            update = m.update
            for k, v in zip(keys, values, strict=True):
                update(k, v)

        def batch_update() -> None:
            for i in range(0, n, args.batch):
                m.update_batch(zip(keys[i:i + args.batch], values[i:i + args.batch], strict=True))

        t_single = timed(single_update)
        t_batch = timed(batch_update)
        rows.append(("update", f"{rate(n, t_single)} ({t_single:.2f} s)",
                     f"{rate(n, t_batch)} ({t_batch:.2f} s)", f"batch {args.batch}"))

        def single_lookup() -> None:
            lookup = m.lookup
            for k in keys:
                lookup(k)

        got: list[tuple[bytes, bytes]] = []
        t_single = timed(single_lookup)
        t_batch = timed(lambda: got.extend(m.lookup_batch(args.batch)))
        assert len(got) == n and dict(got)[keys[12345 % n]] == values[12345 % n]
        rows.append(("lookup", f"{rate(n, t_single)} ({t_single:.2f} s)",
                     f"{rate(n, t_batch)} ({t_batch:.2f} s)", f"batch {args.batch}"))

        print(f"\nhash map, u32 key, u64 value, {n} entries (python {sys.version.split()[0]})\n")
        print(f"{'op':<8}{'single (1 elem/call)':<28}{'batch':<28}note")
        for op, a, b, note in rows:
            print(f"{op:<8}{a:<28}{b:<28}{note}")

        bpftool = shutil.which("bpftool")
        bpfkit = [sys.executable, "-m", "bpfkit"]
        start = best_wall([sys.executable, "-c", "import bpfkit.cli.main"], args.runs)
        print(f"\nmap dump of the same {n} entries, wall time, best of {args.runs} "
              f"(bpfkit includes {start * 1000:.0f} ms python start-up + imports)\n")
        print(f"{'format':<8}{'bpfkit map dump':<20}{'bpftool map dump':<20}ratio")
        for fmt, flag in (("text", []), ("json", ["-j"])):
            ours = best_wall([*bpfkit, "map", "dump", "id", str(m.id), *flag], args.runs)
            theirs = (best_wall([bpftool, *flag, "map", "dump", "id", str(m.id)], args.runs)
                      if bpftool else 0.0)
            ratio = f"{ours / theirs:.2f}x" if theirs else "-"
            ref = f"{theirs:.2f} s" if bpftool else "(no bpftool)"
            print(f"{fmt:<8}{f'{ours:.2f} s':<20}{ref:<20}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
