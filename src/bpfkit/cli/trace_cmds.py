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
from typing import TYPE_CHECKING, TextIO

from bpfkit.cli.helpformat import HelpFormatter
from bpfkit.errors import BpfkitError, CompileError
from bpfkit.kernel.cpus import online_cpus

if TYPE_CHECKING:
    from bpfkit.lang.resources import CompiledScript
    from bpfkit.trace.cache import ScriptCache
    from bpfkit.trace.child import HeldChild


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trace", help="run a bpftrace-compatible script (bpftrace's flags)",
                       description="Run a bpftrace-compatible tracing script.", formatter_class=HelpFormatter)
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
    p.add_argument("--no-cache", action="store_true",
                   help="compile the script even when a compiled copy is cached, and do not cache it")
    p.add_argument("args", nargs="*", metavar="FILE|PARAM", help="script file (without -e) and $1, $2...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imports are inside the branches that need them: start-up is a hot path, and a cached script
    # (bpfkit.trace.cache) runs without importing the compiler at all.
    from bpfkit.trace.runtime import RunOptions, Tracer, check_probes_supported

    out: TextIO = sys.stdout
    if args.list:
        from bpfkit.trace.system import list_probes

        pattern = args.args[0] if args.args else args.expr
        try:
            lines = list_probes(pattern, verbose=args.verbose)
        except BpfkitError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 1
        for line in lines:
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
            from bpfkit.trace.child import HeldChild

            child = HeldChild(args.cmd)
        if args.debug:
            return _debug(text, name, _compile(text, name, params, args, start, child, None))
        script = _compile(text, name, params, args, start, child, None if args.no_cache else _cache())
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


def _cache() -> ScriptCache:
    from bpfkit.trace.cache import ScriptCache

    return ScriptCache()


def _compile(text: str, name: str, params: list[str], args: argparse.Namespace, start: int,
             child: HeldChild | None, cache: ScriptCache | None) -> CompiledScript:
    """The compiled script: from `cache` when it holds it, else compiled (and then stored there)."""
    ncpus = len(online_cpus())
    key = None
    if cache is not None:
        from bpfkit.trace.cache import cacheable_text, script_key

        if cacheable_text(text):
            key = script_key(text, name, params, unsafe=args.unsafe, ncpus=ncpus)
            script = cache.load(key)
            if script is not None:
                return script
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.trace import system
    from bpfkit.trace.cache import Recorder
    from bpfkit.trace.usyms import user_symbol

    rec = Recorder(system.tracefs_root)
    options = Options(start_ns=start, ncpus=ncpus, params=tuple(params),
                      cpid=child.pid if child is not None else 0, unsafe=args.unsafe,
                      kfuncs=system.kfunc_info, btf=system.vmlinux_btf,
                      ksyms=rec.uncacheable(system.kernel_symbol),
                      usdt=rec.uncacheable(system.usdt_args), usyms=rec.uncacheable(user_symbol))
    script = compile_script(text, rec.formats(system.tracepoint_format), name=name, options=options,
                            expand=rec.expander(system.expand))
    if cache is not None and key is not None and rec.cacheable:
        cache.store(key, script, rec.files)
    return script


def _debug(text: str, name: str, script: CompiledScript) -> int:
    """-d: print the AST and each probe's bytecode."""
    from bpfkit.isa.disasm import disassemble_llvm
    from bpfkit.lang.parser import parse
    from bpfkit.lang.printer import dump_ast

    print(dump_ast(parse(text, name)))
    for probe in script.probes:
        print(f"\n{probe.name}:")
        insns = [i for i in probe.program.insns if not isinstance(i, int)]
        print(disassemble_llvm(insns))
    return 0
