"""`bpfkit trace`: run a bpftrace-compatible script, with bpftrace's command-line flags.

    bpfkit trace -e 'BEGIN { printf("hello\\n"); exit(); }'
    bpfkit trace script.bt 42            (positional parameters $1...)
    bpfkit trace -l 'tracepoint:syscalls:*openat*'   /   -lv for tracepoint arguments
    bpfkit trace -c 'ls /' -e 'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @n = count(); }'
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from bpfkit.errors import CompileError
from bpfkit.kernel.cpus import online_cpus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trace", help="run a bpftrace-compatible script (bpftrace's flags)",
                       description="Run a bpftrace-compatible tracing script.")
    p.add_argument("-e", dest="expr", metavar="PROGRAM", help="the program text")
    p.add_argument("-l", dest="list", action="store_true", help="list probes (optionally matching a pattern)")
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose: with -l, tracepoint arguments")
    p.add_argument("-p", dest="pid", type=int, metavar="PID", help="trace only this process; exit with it")
    p.add_argument("-c", dest="cmd", metavar="CMD", help="run CMD and trace until it exits (cpid is its pid)")
    p.add_argument("-d", dest="debug", action="count", default=0, help="dump the AST and bytecode, then exit")
    p.add_argument("-f", dest="format", choices=("text", "json"), default="text", help="output format")
    p.add_argument("-o", dest="output", metavar="FILE", help="write output to FILE")
    p.add_argument("-q", dest="quiet", action="store_true", help="do not print 'Attaching N probes...'")
    p.add_argument("--unsafe", action="store_true", help="allow unsafe functions: system(), signal()")
    p.add_argument("args", nargs="*", metavar="FILE|PARAM", help="script file (without -e) and $1, $2...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.lang.parser import parse
    from bpfkit.trace.child import HeldChild
    from bpfkit.trace.runtime import RunOptions, Tracer, check_probes_supported
    from bpfkit.trace.system import (
        expand,
        kernel_symbol,
        kfunc_info,
        list_probes,
        tracepoint_format,
        usdt_args,
        vmlinux_btf,
    )

    out: TextIO = sys.stdout
    if args.list:
        pattern = args.args[0] if args.args else args.expr
        for line in list_probes(pattern, verbose=args.verbose):
            print(line)
        return 0
    params = list(args.args)
    if args.expr is not None:
        text, name = args.expr, "stdin"
    elif params:
        path = params.pop(0)
        text, name = Path(path).read_text(), path
    else:
        print("bpfkit trace: give a program with -e or a script file", file=sys.stderr)
        return 2
    start = time.monotonic_ns()
    child: HeldChild | None = None
    try:
        if args.cmd:
            child = HeldChild(args.cmd)
        options = Options(start_ns=start, ncpus=len(online_cpus()), params=tuple(params),
                          cpid=child.pid if child is not None else 0, unsafe=args.unsafe, kfuncs=kfunc_info,
                          btf=vmlinux_btf, ksyms=kernel_symbol, usdt=usdt_args)
        script = compile_script(text, tracepoint_format, name=name, options=options, expand=expand)
        if args.debug:
            from bpfkit.isa.disasm import disassemble_llvm
            from bpfkit.lang.printer import dump_ast

            print(dump_ast(parse(text, name)))
            for probe in script.probes:
                print(f"\n{probe.name}:")
                insns = [i for i in probe.program.insns if not isinstance(i, int)]
                print(disassemble_llvm(insns))
            return 0
        check_probes_supported(script)
        if args.output:
            out = open(args.output, "w")

        with Tracer(script, out=out) as tracer:
            status = tracer.run(RunOptions(pid=args.pid, quiet=args.quiet, json=args.format == "json",
                                           child=child))
            return status
    except CompileError as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        if child is not None:
            child.close()
        if out is not sys.stdout:
            out.close()

