"""`bpfkit` entry point: builds the argparse tree from the command modules and maps errors to exit codes.

Each command module exposes `register(subparsers)`, adding its nouns/verbs with `set_defaults(func=...)`;
`func(args) -> int` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bpfkit.cli.helpformat import HelpFormatter
from bpfkit.errors import BpfkitError

COMMANDS: dict[str, str] = {
    "asm": "bpfkit.cli.isa_cmds",
    "disasm": "bpfkit.cli.isa_cmds",
    "btf": "bpfkit.cli.btf_cmds",
    "obj": "bpfkit.cli.obj_cmds",
    "objdump": "bpfkit.cli.obj_cmds",
    "prog": "bpfkit.cli.prog_cmds",
    "map": "bpfkit.cli.map_cmds",
    "link": "bpfkit.cli.link_cmds",
    "feature": "bpfkit.cli.feature_cmds",
    "vm": "bpfkit.cli.vm_cmds",
    "trace": "bpfkit.cli.trace_cmds",
    "cc": "bpfkit.cli.cc_cmds",
    "run": "bpfkit.cli.cc_cmds",
}
"""Each top-level command word and the module that registers it. Only the module of the command being
run is imported, so `bpfkit trace` does not pay for importing every other command's dependencies."""

COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def _command_word(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command`'s module alone, or (None / unknown word) for every command."""
    parser = argparse.ArgumentParser(prog="bpfkit", description="eBPF for Python: assemble, load, attach, "
                                     "trace and run eBPF programs, in the kernel or in a userspace VM.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(argv))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except BpfkitError as exc:
        print(f"bpfkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # files named on the command line
        print(f"bpfkit: error: {exc}", file=sys.stderr)
        return 1


def entry() -> None:
    """Run `main` as the process and leave without the interpreter's teardown.

    Freeing every module and object at exit costs ~10 ms, a sizeable share of a short `bpfkit trace`
    run. The atexit hooks still run (they detach whatever is still attached) and the standard streams
    are flushed; only when other threads are alive does the process exit the ordinary way.
    """
    code = main()
    import atexit
    import os
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
