"""`bpfkit` entry point: builds the argparse tree from the command modules and maps errors to exit codes.

Each command module exposes `register(subparsers)`, adding its nouns/verbs with `set_defaults(func=...)`;
`func(args) -> int` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bpfkit.errors import BpfkitError

COMMAND_MODULES = (
    "bpfkit.cli.isa_cmds",
    "bpfkit.cli.btf_cmds",
    "bpfkit.cli.obj_cmds",
    "bpfkit.cli.prog_cmds",
    "bpfkit.cli.map_cmds",
    "bpfkit.cli.link_cmds",
    "bpfkit.cli.feature_cmds",
    "bpfkit.cli.vm_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpfkit", description="eBPF for Python: assemble, load, attach, "
                                     "trace and run eBPF programs, in the kernel or in a userspace VM.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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


if __name__ == "__main__":
    sys.exit(main())
