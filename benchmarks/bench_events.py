"""Event delivery to a Python callback: bpfkit's ring buffer and perf buffer readers vs BCC's.

A TRACEPOINT program on syscalls:sys_enter_getppid writes a 16-byte record (sequence number, pid_tgid)
for each getppid() of one "hammer" process (a child calling os.getppid() in a loop; the program compares
the caller's tgid with a config map). The reader's callback either only counts records ("count") or also
unpacks both fields ("decode"). Two phases: "stream" reads while the hammer runs (records delivered per
second of wall time from releasing the hammer until all is drained: bounded by how fast the producer
runs, itself slowed by wakeups); "drain" reads only after the hammer exited, timing the draining alone
(the reader's own speed; at most 300,000 records so the buffers hold them). Also shown: the records the
kernel dropped because the buffer was full (ring buffer: bpf_ringbuf_output failures counted by the
program; perf buffer: PERF_RECORD_LOST totals), so delivered + dropped = produced is checked for every
row.

BCC (python3-bpfcc, run with /usr/bin/python3 in a child) compiles the same program from C; it needs
kernel headers. When the running kernel's are missing, --bcc-headers DIR sets BCC_KERNEL_SOURCE, or else
an installed Debian linux-headers-<v>-common/-<arch> pair (an older kernel's: enough for this program)
is merged into a temporary tree of symlinks; without any, BCC's rows say n/a with the reason.

    python benchmarks/bench_events.py [--events 1000000] [--runs 3] [--bcc-headers DIR]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HAMMER = "import os,sys\nsys.stdin.readline()\nf=os.getppid\nfor _ in range({n}): f()\n"
RB_BYTES = 16 << 20
PERF_PAGES = 4096  # per CPU: 16 MiB each on 4 KiB pages
TRACEPOINT = ("syscalls", "sys_enter_getppid")
DRAIN_EVENTS = 300_000  # fits both buffers (ring: 24 bytes a record; perf: 32 bytes, one CPU's 16 MiB)


def _spawn_hammer(n: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HAMMER.format(n=n)], stdin=subprocess.PIPE, text=True)


# --- bpfkit ------------------------------------------------------------------------------------------------

def _program(config: Any, counter: Any, events: Any, perf: bool) -> bytes:
    from bpfkit.isa import Builder
    from bpfkit.uapi.enums import Helper, PerfEventOutputFlags
    from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg

    b = Builder()
    b.mov(Reg.R6, Reg.R1)
    b.call(Helper.GET_CURRENT_PID_TGID)
    b.mov(Reg.R7, Reg.R0)
    b.st(4, Reg.R10, -4, 0)
    b.ld_imm64(Reg.R1, config.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, Reg.R10)
    b.add(Reg.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.ldx(4, Reg.R1, Reg.R0, 0)
    b.mov(Reg.R2, Reg.R7)
    b.alu("rsh", Reg.R2, 32)
    b.jmp("jne", Reg.R1, Reg.R2, "out")
    b.ld_imm64(Reg.R1, counter.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, Reg.R10)
    b.add(Reg.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R8, Reg.R0)
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.FETCH_ADD, Reg.R8, 0, Reg.R1)
    b.stx(8, Reg.R10, -24, Reg.R1)
    b.stx(8, Reg.R10, -16, Reg.R7)
    if perf:
        b.mov(Reg.R1, Reg.R6)
        b.ld_imm64(Reg.R2, events.fileno(), PseudoSrc.MAP_FD)
        b.ld_imm64(Reg.R3, int(PerfEventOutputFlags.CURRENT_CPU))
        b.mov(Reg.R4, Reg.R10)
        b.add(Reg.R4, -24)
        b.mov(Reg.R5, 16)
        b.call(Helper.PERF_EVENT_OUTPUT)
    else:
        b.ld_imm64(Reg.R1, events.fileno(), PseudoSrc.MAP_FD)
        b.mov(Reg.R2, Reg.R10)
        b.add(Reg.R2, -24)
        b.mov(Reg.R3, 16)
        b.mov(Reg.R4, 0)
        b.call(Helper.RINGBUF_OUTPUT)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.ADD, Reg.R8, 8, Reg.R1)
    b.label("out")
    b.mov(Reg.R0, 0)
    b.exit()
    return b.encode()


def _attach(prog: Any) -> Any:
    """The attach layer's tracepoint attachment (a context manager)."""
    from bpfkit.kernel.attach.tracepoint import attach_tracepoint

    return attach_tracepoint(prog, *TRACEPOINT)


def run_bpfkit(kind: str, mode: str, n: int, phase: str) -> dict[str, Any]:
    from bpfkit.kernel.cpus import possible_cpus
    from bpfkit.kernel.maps import Map
    from bpfkit.kernel.perfbuf import PerfBuffer
    from bpfkit.kernel.programs import Program
    from bpfkit.kernel.ringbuf import RingBuffer
    from bpfkit.obj.spec import MapSpec
    from bpfkit.uapi.enums import MapType, ProgType

    perf = kind == "perf"
    stats = [0]
    unpack = struct.Struct("=QQ").unpack_from
    callback: Callable[..., None]
    if perf:
        if mode == "count":
            def callback(cpu: int, data: Any) -> None:
                stats[0] += 1
        else:
            def callback(cpu: int, data: Any) -> None:
                _seq, _pid = unpack(data)
                stats[0] += 1
    else:
        if mode == "count":
            def callback(data: Any) -> None:
                stats[0] += 1
        else:
            def callback(data: Any) -> None:
                _seq, _pid = unpack(data)
                stats[0] += 1
    events_spec = (MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus(), name="events") if perf
                   else MapSpec(MapType.RINGBUF, 0, 0, RB_BYTES, name="events"))
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="config")) as config, \
            Map.create(MapSpec(MapType.ARRAY, 4, 16, 1, name="counter")) as counter, \
            Map.create(events_spec) as events, \
            Program.load(_program(config, counter, events, perf), ProgType.TRACEPOINT,
                         license="GPL") as prog, _attach(prog):
        reader: Any = (PerfBuffer(events, callback, page_count=PERF_PAGES) if perf
                       else RingBuffer(events, callback))
        with reader:
            hammer = _spawn_hammer(n)
            config[0] = hammer.pid.to_bytes(4, sys.byteorder)
            assert hammer.stdin is not None
            t0 = time.perf_counter()
            hammer.stdin.write("go\n")
            hammer.stdin.flush()
            if phase == "stream":
                while hammer.poll() is None:
                    reader.poll(100)
            else:
                hammer.wait()
            t_hammer = time.perf_counter() - t0
            if phase == "drain":
                t0 = time.perf_counter()
            reader.consume()  # the hammer has exited: every record is committed, nothing to wait for
            elapsed = time.perf_counter() - t0
            raw = counter[0]
            sent, failed = int.from_bytes(raw[:8], sys.byteorder), int.from_bytes(raw[8:], sys.byteorder)
            dropped = reader.lost if perf else failed
            received = stats[0]
    return {"sent": sent, "received": received, "dropped": dropped, "elapsed": elapsed,
            "hammer_s": t_hammer, "ok": received + dropped == sent}


# --- BCC ---------------------------------------------------------------------------------------------------

BCC_C = r"""
BPF_ARRAY(config, u32, 1);
BPF_ARRAY(counter, u64, 2);
OUTPUT_DECL
struct rec { u64 seq; u64 pid_tgid; };
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u64 id = bpf_get_current_pid_tgid();
    int zero = 0, one = 1;
    u32 *target = config.lookup(&zero);
    if (!target || (id >> 32) != *target) return 0;
    u64 *seq = counter.lookup(&zero);
    if (!seq) return 0;
    struct rec r = {};
    r.seq = __sync_fetch_and_add(seq, 1);
    r.pid_tgid = id;
    int ret = OUTPUT_CALL;
    if (ret) { u64 *failed = counter.lookup(&one); if (failed) __sync_fetch_and_add(failed, 1); }
    return 0;
}
"""

BCC_CHILD = r"""
import ctypes, json, subprocess, sys, time
from bcc import BPF
args = json.loads(sys.argv[1])
kind, mode, n, phase = args["kind"], args["mode"], args["n"], args["phase"]
text = args["text"]
if kind == "perf":
    text = text.replace("OUTPUT_DECL", "BPF_PERF_OUTPUT(events);").replace(
        "OUTPUT_CALL", "events.perf_submit(args, &r, sizeof(r))")
else:
    text = text.replace("OUTPUT_DECL", "BPF_RINGBUF_OUTPUT(events, %d);" % args["rb_pages"]).replace(
        "OUTPUT_CALL", "events.ringbuf_output(&r, sizeof(r), 0)")
b = BPF(text=text)
stats = [0, 0]
events = b["events"]
if mode == "count":
    def cb(*a):
        stats[0] += 1
else:
    def cb(*a):
        ev = events.event(a[-2])
        seq, pid = ev.seq, ev.pid_tgid
        stats[0] += 1
def lost(count):
    stats[1] += count
if kind == "perf":
    events.open_perf_buffer(cb, page_cnt=args["perf_pages"], lost_cb=lost)
    poll, consume = b.perf_buffer_poll, b.perf_buffer_consume
else:
    events.open_ring_buffer(cb)
    poll, consume = b.ring_buffer_poll, b.ring_buffer_consume
hammer = subprocess.Popen([args["python"], "-c", args["hammer"]], stdin=subprocess.PIPE, text=True)
b["config"][ctypes.c_int(0)] = ctypes.c_uint32(hammer.pid)
t0 = time.perf_counter()
hammer.stdin.write("go\n"); hammer.stdin.flush()
if phase == "stream":
    while hammer.poll() is None:
        poll(100)
else:
    hammer.wait()
t_hammer = time.perf_counter() - t0
if phase == "drain":
    t0 = time.perf_counter()
consume()  # the hammer has exited: every record is committed, nothing to wait for
elapsed = time.perf_counter() - t0
sent = b["counter"][ctypes.c_int(0)].value
failed = b["counter"][ctypes.c_int(1)].value
dropped = stats[1] if kind == "perf" else failed
print(json.dumps({"sent": sent, "received": stats[0], "dropped": dropped, "elapsed": elapsed,
                  "hammer_s": t_hammer, "ok": stats[0] + dropped == sent}))
"""


def bcc_unavailable(headers: str | None) -> str | None:
    if not os.path.exists("/usr/bin/python3"):
        return "no /usr/bin/python3"
    probe = subprocess.run(["/usr/bin/python3", "-c", "import bcc"], capture_output=True, text=True)
    if probe.returncode:
        return "python3-bpfcc is not installed (apt-get install python3-bpfcc)"
    release = os.uname().release
    if headers is None and not os.path.isdir(f"/lib/modules/{release}/build") \
            and not os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return f"BCC cannot compile: no kernel headers for {release} (give --bcc-headers DIR)"
    return None


def run_bcc(kind: str, mode: str, n: int, phase: str, headers: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if headers:
        env["BCC_KERNEL_SOURCE"] = headers
    args = {"kind": kind, "mode": mode, "n": n, "phase": phase, "text": BCC_C, "rb_pages": RB_BYTES // 4096,
            "perf_pages": PERF_PAGES, "python": sys.executable, "hammer": HAMMER.format(n=n)}
    proc = subprocess.run(["/usr/bin/python3", "-c", BCC_CHILD, json.dumps(args)], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- table -------------------------------------------------------------------------------------------------

def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["received"] / r["elapsed"] for r in results]
    best = max(range(len(rates)), key=rates.__getitem__)
    return {"rate_best": rates[best], "rate_median": statistics.median(rates),
            "produce_rate": statistics.median(r["sent"] / r["hammer_s"] for r in results),
            "sent": results[best]["sent"], "received": results[best]["received"],
            "dropped": results[best]["dropped"], "ok": all(r["ok"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="getppid() calls per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bcc-headers", default=None,
                    help="kernel headers directory for BCC (BCC_KERNEL_SOURCE); default: autodetect")
    ap.add_argument("--no-bcc", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_events needs root (bpf(2), perf events, tracepoints)")
    headers = args.bcc_headers
    tmp: str | None = None
    if headers is None and not os.path.isdir(f"/lib/modules/{os.uname().release}/build"):
        headers = tmp = debian_headers_tree()
    try:
        why_not_bcc = "--no-bcc" if args.no_bcc else bcc_unavailable(headers)
        table(args, headers, why_not_bcc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def debian_headers_tree() -> str | None:
    """Debian splits a kernel's headers into linux-headers-<v>-common and -<arch>; BCC wants one tree.
    Merge the newest pair into a temporary directory of symlinks (None when there is no such pair)."""
    arch = sorted(p for p in glob.glob("/usr/src/linux-headers-*") if not p.endswith("-common")
                  and os.path.isdir(p.rsplit("-", 1)[0] + "-common"))
    if not arch:
        return None
    common = arch[-1].rsplit("-", 1)[0] + "-common"
    tree = tempfile.mkdtemp(prefix="bcc-headers-")
    for src in (common, arch[-1]):
        subprocess.run(["cp", "-rsf", src + "/.", tree], check=True, capture_output=True)
    return tree


def table(args: argparse.Namespace, headers: str | None, why_not_bcc: str | None) -> None:

    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}; "
          f"{args.events} events per run, best/median of {args.runs} runs")
    print(f"ring buffer {RB_BYTES >> 20} MiB; perf buffer {PERF_PAGES} pages per CPU; record 16 bytes; "
          f"tracepoint {':'.join(TRACEPOINT)}")
    if headers and why_not_bcc is None:
        print(f"BCC compiles against {headers} (BCC_KERNEL_SOURCE; headers of an older kernel, as the "
              f"running kernel's are not installed)")
    header = (f"{'phase':<7} {'reader':<8} {'callback':<8} {'tool':<7} {'events/s best':>14} {'median':>12} "
              f"{'produced/s':>11} {'delivered':>10} {'dropped':>9} {'accounted':>9}")
    print(header)
    print("-" * len(header))
    for phase in ("stream", "drain"):
        n = args.events if phase == "stream" else min(args.events, DRAIN_EVENTS)
        for kind in ("ringbuf", "perf"):
            for mode in ("count", "decode"):
                for tool in ("bpfkit", "bcc"):
                    row = f"{phase:<7} {kind:<8} {mode:<8} {tool:<7}"
                    if tool == "bcc" and why_not_bcc:
                        print(f"{row} {'n/a':>14}  ({why_not_bcc})")
                        continue
                    try:
                        results = [run_bpfkit(kind, mode, n, phase) if tool == "bpfkit"
                                   else run_bcc(kind, mode, n, phase, headers) for _ in range(args.runs)]
                    except Exception as e:  # report and go on with the other rows
                        print(f"{row} {'n/a':>14}  ({type(e).__name__}: {e})")
                        continue
                    s = summarize(results)
                    print(f"{row} {s['rate_best']:>14,.0f} {s['rate_median']:>12,.0f} "
                          f"{s['produce_rate']:>11,.0f} {s['received']:>10,} {s['dropped']:>9,} "
                          f"{'yes' if s['ok'] else 'NO':>9}")


if __name__ == "__main__":
    main()
