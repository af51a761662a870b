"""`bpfkit obj show FILE [-j]` and `bpfkit objdump FILE`: what a BPF object holds, without loading it."""

from __future__ import annotations

import argparse
import json

from bpfkit.obj import load_object
from bpfkit.obj.show import format_summary, objdump, summarize


def cmd_obj_show(args: argparse.Namespace) -> int:
    summary = summarize(load_object(args.file))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary), end="")
    return 0


def cmd_objdump(args: argparse.Namespace) -> int:
    text = objdump(load_object(args.file), alu32=args.alu32, program=args.program)
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    obj = sub.add_parser("obj", help="inspect BPF ELF objects (no kernel needed)")
    verbs = obj.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("show", help="programs, maps, globals, externs and relocations of an object")
    p.add_argument("file", help="a BPF ELF object (clang -target bpf -g)")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_obj_show)

    p = sub.add_parser("objdump", help="disassemble an object's linked programs with source lines")
    p.add_argument("file", help="a BPF ELF object")
    p.add_argument("--alu32", action="store_true", help="print 32-bit loads/stores with w registers")
    p.add_argument("-p", "--program", help="only this program")
    p.set_defaults(func=cmd_objdump)
