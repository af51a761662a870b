#!/usr/bin/env python3
"""xdp_count: count the packets and bytes an interface receives, with an XDP program (generic mode).

    sudo python examples/xdp_count.py IFACE [--interval SECONDS] [--duration SECONDS]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bpfkit import BPF


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("iface")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    args = ap.parse_args()
    with BPF(src_file=Path(__file__).with_name("xdp_count.bpf.c")) as b:
        fn = b.load_func("count_packets", BPF.XDP)
        b.attach_xdp(args.iface, fn, BPF.XDP_FLAGS_SKB_MODE)
        stats = b["stats"]
        print(f"counting packets on {args.iface}", flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while end is None or time.monotonic() < end:
                time.sleep(args.interval)
                t = stats[0]
                print(f"{args.iface}: packets={t['packets']} bytes={t['bytes']}", flush=True)
        except KeyboardInterrupt:
            pass
        b.remove_xdp(args.iface)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
