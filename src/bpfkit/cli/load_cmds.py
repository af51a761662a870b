"""`bpfkit prog load|loadall`: load an object file's programs and pin them, as bpftool does.

    bpfkit prog load FILE PATH [type TYPE] [pinmaps DIR]      pin the first program at PATH
    bpfkit prog loadall FILE PATH [type TYPE] [pinmaps DIR]   pin every program as PATH/<name>

Every map and program of FILE is loaded (`bpfkit.kernel.collection.Collection`); the pins keep what
is pinned alive after the command exits. `type` gives the program type as a section name (``xdp``,
``socket``, ``tracepoint``...) for objects whose sections do not say it. `pinmaps` pins every map as
DIR/<map name> (global data maps under their kernel names, e.g. ``prog_rodata``: bpffs names
cannot hold dots).
These verbs are registered on the `prog` noun by `bpfkit.cli.prog_cmds` (see `register_verbs`).
"""

from __future__ import annotations

import argparse
import os
import sys

from bpfkit._records import replace
from bpfkit.cli.output import UsageError, emit_json, split_words, wants_json
from bpfkit.kernel import objects
from bpfkit.kernel.collection import Collection, kernel_map_name, pin_name
from bpfkit.obj import ObjectSpec, load_object, section_info

_WORDS = ("type", "pinmaps")


def _retype(spec: ObjectSpec, type_word: str) -> None:
    info = section_info(type_word)
    if info is None:
        raise UsageError(f"type {type_word!r}: not a program type bpfkit knows (give a section name such as "
                         "socket, xdp, tc, tracepoint, kprobe)")
    for name, p in spec.programs.items():
        spec.programs[name] = replace(p, type=info.prog_type,
                                                  expected_attach_type=info.attach_type)


def load_and_pin(path: str, pin_path: str, *, all_programs: bool, prog_type: str | None = None,
                 pinmaps: str | None = None) -> list[str]:
    """Load the object at `path`, pin its first program at `pin_path` (or every program under the
    directory `pin_path`) and, with `pinmaps`, every map under that directory. Returns the pins made;
    on failure nothing stays pinned."""
    spec = load_object(path)
    if prog_type is not None:
        _retype(spec, prog_type)
    if not spec.programs:
        raise UsageError(f"{path}: the object has no programs")
    made: list[str] = []
    created_dirs: list[str] = []
    with Collection.load(spec) as coll:
        try:
            if all_programs:
                if not os.path.isdir(pin_path):
                    os.mkdir(pin_path)
                    created_dirs.append(pin_path)
                targets = [(os.path.join(pin_path, n), p) for n, p in coll.programs.items()]
            else:
                first = next(iter(coll.programs.values()))
                targets = [(pin_path, first)]
            for where, prog in targets:
                objects.pin(prog.fd, where)
                made.append(where)
            if pinmaps is not None:
                if not os.path.isdir(pinmaps):
                    os.mkdir(pinmaps)
                    created_dirs.append(pinmaps)
                for name, m in coll.maps.items():
                    if name in coll.pinned or name in coll.reused:
                        continue  # pinned by name already
                    where = os.path.join(pinmaps, pin_name(kernel_map_name(spec.name, name)))
                    objects.pin(m.fd, where)
                    made.append(where)
        except BaseException:
            for p in reversed(made):
                try:
                    os.unlink(p)
                except OSError:
                    pass
            for d in reversed(created_dirs):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            coll.unpin()
            raise
        made.extend(coll.pinned.values())
    return made


def _command(args: argparse.Namespace, all_programs: bool) -> int:
    verb = "loadall" if all_programs else "load"
    if len(args.words) < 2:
        raise UsageError(f"bpfkit prog {verb} FILE PATH [type TYPE] [pinmaps DIR]")
    path, pin_path, *rest = args.words
    opts = split_words(rest, _WORDS)
    for key, vals in opts.items():
        if len(vals) != 1:
            raise UsageError(f"{key} takes one value, got {len(vals)}")
    pins = load_and_pin(path, pin_path, all_programs=all_programs, prog_type=opts.get("type", [None])[0],
                        pinmaps=opts.get("pinmaps", [None])[0])
    if wants_json(args):
        emit_json(args, {"pinned": pins})
    elif getattr(args, "verbose", False):
        sys.stdout.write("".join(f"{p}\n" for p in pins))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    return _command(args, all_programs=False)


def cmd_loadall(args: argparse.Namespace) -> int:
    return _command(args, all_programs=True)


def register_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser],
                   parent: argparse.ArgumentParser) -> None:
    """Add `load` and `loadall` to the `prog` noun's verbs (called by `bpfkit.cli.prog_cmds.register`)."""
    p = verbs.add_parser("load", parents=[parent], help="load an object file and pin its first program")
    p.add_argument("words", nargs="*", help="FILE PATH [type TYPE] [pinmaps DIR]")
    p.set_defaults(func=cmd_load)
    p = verbs.add_parser("loadall", parents=[parent],
                         help="load an object file and pin every program under a directory")
    p.add_argument("words", nargs="*", help="FILE PATH [type TYPE] [pinmaps DIR]")
    p.set_defaults(func=cmd_loadall)
