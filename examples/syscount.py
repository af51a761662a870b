#!/usr/bin/env python3
"""syscount: system calls per process (raw_syscalls:sys_enter), printed every second. BCC's C dialect.

    sudo python examples/syscount.py [--interval SECONDS] [--duration SECONDS] [--top N]
"""

from __future__ import annotations

import argparse
import time

from bpfkit import BPF

PROGRAM = r"""
struct key_t { u32 pid; char comm[16]; };
BPF_HASH(counts, struct key_t, u64, 10240);

TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
    struct key_t key = {};
    key.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(key.comm, sizeof(key.comm));
    counts.increment(key);
    return 0;
}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    with BPF(text=PROGRAM) as b:
        counts = b["counts"]
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while end is None or time.monotonic() < end:
                time.sleep(args.interval)
                rows = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[: args.top]
                print(time.strftime("%H:%M:%S"), flush=True)
                print(f"{'PID':<7} {'COMM':<16} {'COUNT':>10}")
                for key, n in rows:
                    print(f"{key['pid']:<7} {key['comm'].decode(errors='replace'):<16} {n:>10}", flush=True)
                for key in list(counts.keys()):
                    try:
                        del counts[key]
                    except KeyError:
                        pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
