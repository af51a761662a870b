"""`bpfkit cc` (compile BPF C to an object) and `bpfkit run` (load, auto-attach, stream the output).

    bpfkit cc prog.c -o prog.o [-- -DFOO=1]
    bpfkit run prog.c --duration 5          (or prog.o)
"""

from __future__ import annotations

import argparse
import errno
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bpfkit.errors import BpfkitError, KernelError

_CALL = 0x85
_PRINTK_HELPERS = (6, 177)  # bpf_trace_printk, bpf_trace_vprintk


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cc_opts = argparse.ArgumentParser(prog="bpfkit cc", add_help=False)
    cc_opts.add_argument("-o", "--output", help="the object file (default: SOURCE with .o)")
    cc_opts.add_argument("--compiler", help="clang path or name, or 'zig' (default: $BPFKIT_CLANG, clang, "
                         "zig cc)")
    cc_opts.add_argument("--no-cache", action="store_true", help="always run the compiler")
    p = sub.add_parser("cc", parents=[cc_opts], help="compile BPF C to an object file (clang or zig cc)",
                       description="Compile BPF C against vmlinux.h and bpfkit's helper header.")
    p.add_argument("source", help="the C file")
    p.add_argument("cflags", nargs=argparse.REMAINDER, help="extra compiler flags (after --)")
    p.set_defaults(func=cmd_cc, _options=cc_opts)
    run_opts = argparse.ArgumentParser(prog="bpfkit run", add_help=False)
    run_opts.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    run_opts.add_argument("--type", dest="type_name", help="BTF type to decode records as (default: struct "
                          "event if the object has one, else hex)")
    run_opts.add_argument("--hex", action="store_true", help="print records as hex even when a type is known")
    run_opts.add_argument("--compiler", help="as for `bpfkit cc`")
    p = sub.add_parser("run", parents=[run_opts],
                       help="load a BPF C file or object, attach every program, print its output",
                       description="Compile (for .c), load, auto-attach by section name, and print ring "
                       "buffer / perf buffer records and bpf_printk lines until Ctrl-C or --duration.")
    p.add_argument("file", help="FILE.c or FILE.o")
    p.add_argument("cflags", nargs=argparse.REMAINDER, help="extra compiler flags (after --)")
    p.set_defaults(func=cmd_run, _options=run_opts)


def _split_cflags(args: argparse.Namespace) -> None:
    """argparse hands everything after the file to `cflags` (REMAINDER, sometimes without the ``--``):
    bpfkit's own options found there are parsed again; the rest is the compiler's."""
    rest = list(args.cflags)
    head, tail = (rest[: rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
    unknown: list[str] = []
    if head:
        _, unknown = args._options.parse_known_args(head, namespace=args)
    args.cflags = unknown + tail


def cmd_cc(args: argparse.Namespace) -> int:
    from bpfkit.cc.driver import compile_to_file

    _split_cflags(args)
    src = Path(args.source)
    out = Path(args.output) if args.output else src.with_suffix(".o")
    res = compile_to_file(src, out, cflags=args.cflags, compiler=args.compiler, cache=not args.no_cache)
    for w in res.warnings:
        print(w, file=sys.stderr)
    print(f"{out}{' (cached)' if res.cached else ''}", file=sys.stderr)
    return 0


def _uses_printk(spec: Any) -> bool:
    for p in spec.programs.values():
        code = p.insns if isinstance(p.insns, bytes) else b""
        for i in range(0, len(code) - 7, 8):
            if code[i] == _CALL and code[i + 1] >> 4 == 0 and \
                    struct.unpack_from("<i", code, i + 4)[0] in _PRINTK_HELPERS:
                return True
    return False


def _formatter(spec: Any, type_name: str | None, raw: bool) -> Any:
    if raw or spec.btf is None:
        return None
    from bpfkit.events.decode import btf_decoder

    name = type_name or "event"
    if not spec.btf.find_ids(name):
        if type_name:
            raise BpfkitError(f"--type {type_name}: no such type in the object's BTF")
        return None
    return btf_decoder(spec.btf, name)


def _printer(show: Callable[[bytes, str], None], prefix: str) -> Callable[[memoryview], None]:
    return lambda rec: show(bytes(rec), prefix)


def _cpu_printer(show: Callable[[bytes, str], None], name: str) -> Callable[[int, Any], None]:
    return lambda cpu, data: show(bytes(data), f"{name} cpu{cpu}: ")


def cmd_run(args: argparse.Namespace) -> int:
    from bpfkit.kernel.attach.auto import attach_all
    from bpfkit.kernel.collection import Collection
    from bpfkit.kernel.perfbuf import PerfBuffer
    from bpfkit.kernel.ringbuf import RingBuffer
    from bpfkit.kernel.trace_pipe import TracePipe
    from bpfkit.obj import load_object
    from bpfkit.uapi.enums import MapType

    _split_cflags(args)
    path = Path(args.file)
    if path.suffix == ".c":
        from bpfkit.cc.driver import compile as compile_c

        spec = compile_c(path, cflags=args.cflags, compiler=args.compiler)
    else:
        spec = load_object(path)
    decode = _formatter(spec, args.type_name, args.hex)

    def show(data: bytes, where: str) -> None:
        if decode is not None:
            try:
                print(f"{where}{decode(data)}", flush=True)
                return
            except BpfkitError:
                pass
        print(f"{where}{data.hex()}", flush=True)

    with Collection.load(spec) as coll:
        links = attach_all(coll)
        readers: list[Any] = []
        try:
            for name, reason in links.skipped.items():
                print(f"not attached: {name}: {reason}", file=sys.stderr)
            rb = None
            for name, m in coll.maps.items():
                if m.type == MapType.RINGBUF:
                    rb = rb or RingBuffer()
                    rb.add(m, _printer(show, f"{name}: "))
                elif m.type == MapType.PERF_EVENT_ARRAY:
                    readers.append(PerfBuffer(m, _cpu_printer(show, name)))
            if rb is not None:
                readers.append(rb)
            pipe = None
            if _uses_printk(spec):
                try:
                    pipe = TracePipe()
                except KernelError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    # trace_pipe has one reader at a time machine-wide: run without printk output
                    # rather than refuse to run.
                    print(f"bpfkit: warning: bpf_printk output not shown: {e}", file=sys.stderr)
            if pipe is not None:
                readers.append(pipe)
            deadline = time.monotonic() + args.duration if args.duration else None
            try:
                # Said inside this try: a Ctrl-C from now on is a clean stop (status 0).
                print(f"attached {len(list(links))} link(s); Ctrl-C to stop", file=sys.stderr, flush=True)
                while deadline is None or time.monotonic() < deadline:
                    if rb is not None:
                        rb.poll(100)
                    for r in readers:
                        if isinstance(r, PerfBuffer):
                            r.consume()
                    if pipe is not None:
                        for ev in pipe.read(0 if rb else 100):
                            print(f"{ev.task}-{ev.pid} [{ev.cpu:03d}] {ev.timestamp:.6f}: {ev.message}",
                                  flush=True)
                    elif rb is None:
                        time.sleep(0.1)
            except KeyboardInterrupt:
                pass
        finally:
            for r in readers:
                r.close()
            links.close()
    return 0
