"""`bpfkit feature probe [kernel]`: what the running kernel supports, in bpftool's sections.

Program types, map types and, per supported program type, the helpers its programs may call, found by
trying (`bpfkit.kernel.features`). ``-j``/``-p`` print bpftool's JSON keys (``have_xdp_prog_type``,
``xdp_available_helpers``); ``--no-helpers`` skips the slowest section.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bpfkit.cli.output import UsageError, emit_json, json_parent, wants_json
from bpfkit.kernel import features
from bpfkit.uapi.enums import HELPER_NAMES, MapType, ProgType

# A probe program of these types is refused before the verifier looks at its calls (a struct_ops
# program needs its struct_ops type's BTF), so a helper probe cannot tell: list none, as bpftool does.
_NO_HELPER_PROBE = frozenset({ProgType.STRUCT_OPS})


def probe_all(helpers: bool = True) -> dict[str, Any]:
    """The probe results as bpftool's ``feature probe -j`` lays them out."""
    prog_types = {t: features.probe_prog_type(t) for t in ProgType if t != ProgType.UNSPEC}
    map_types = {t: features.probe_map_type(t) for t in MapType if t != MapType.UNSPEC}
    out: dict[str, Any] = {
        "syscall_config": {"have_bpf_syscall": True},
        "program_types": {f"have_{t.name.lower()}_prog_type": ok for t, ok in prog_types.items()},
        "map_types": {f"have_{t.name.lower()}_map_type": ok for t, ok in map_types.items()},
    }
    if helpers:
        out["helpers"] = {
            f"{t.name.lower()}_available_helpers": [] if t in _NO_HELPER_PROBE
            else [HELPER_NAMES[int(h)] for h in features.supported_helpers(t)]
            for t, ok in prog_types.items() if ok
        }
    return out


def _text(result: dict[str, Any]) -> str:
    lines = ["Scanning system call availability...", "bpf() syscall is available", ""]
    lines.append("Scanning eBPF program types...")
    for key, ok in result["program_types"].items():
        name = key[len("have_"):-len("_prog_type")]
        lines.append(f"eBPF program_type {name} is {'' if ok else 'NOT '}available")
    lines += ["", "Scanning eBPF map types..."]
    for key, ok in result["map_types"].items():
        name = key[len("have_"):-len("_map_type")]
        lines.append(f"eBPF map_type {name} is {'' if ok else 'NOT '}available")
    if "helpers" in result:
        lines += ["", "Scanning eBPF helper functions..."]
        for key, names in result["helpers"].items():
            lines.append(f"eBPF helpers supported for program type {key[:-len('_available_helpers')]}:")
            lines += [f"\t- {n}" for n in names]
    return "\n".join(lines) + "\n"


def cmd_probe(args: argparse.Namespace) -> int:
    if args.words not in ([], ["kernel"]):
        raise UsageError(f"bpfkit feature probe [kernel]: unexpected words {' '.join(args.words)}")
    if os.geteuid() != 0:
        print("bpfkit: warning: not root: features needing CAP_BPF/CAP_SYS_ADMIN show as missing",
              file=sys.stderr)
    result = probe_all(helpers=not args.no_helpers)
    if wants_json(args):
        emit_json(args, result)
    else:
        sys.stdout.write(_text(result))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feature = sub.add_parser("feature", help="what the running kernel supports (like bpftool feature)")
    verbs = feature.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("probe", parents=[json_parent()], help="probe program types, map types and helpers")
    p.add_argument("words", nargs="*", help="[kernel]")
    p.add_argument("--no-helpers", action="store_true", help="skip probing helpers per program type")
    p.set_defaults(func=cmd_probe)
