#!/usr/bin/env python3
"""opensnoop: print PID, COMM and FILENAME of every openat(2), from a tracepoint through a ring buffer.

    sudo python examples/opensnoop.py [--duration SECONDS] [--pid PID]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bpfkit import BPF


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--pid", type=int, help="only this process")
    args = ap.parse_args()
    with BPF(src_file=Path(__file__).with_name("opensnoop.bpf.c")) as b:
        b.attach_tracepoint(tp="syscalls:sys_enter_openat", fn_name="trace_openat")
        decode = b.event_decoder("struct event")

        def show(_ctx: object, data: bytes, _size: int) -> None:
            e = decode(data)
            if args.pid is None or e["pid"] == args.pid:
                print(f"{e['pid']:<7} {e['comm'].decode(errors='replace'):<16} "
                      f"{e['filename'].decode(errors='replace')}", flush=True)

        b.open_ring_buffer("events", show)
        print(f"{'PID':<7} {'COMM':<16} FILENAME", flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while end is None or time.monotonic() < end:
                b.ring_buffer_poll(100)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
