"""`bpfkit link ...` and `bpfkit btf list`: links and BTF objects, in bpftool's shape.

    bpfkit link list [-j|-p]
    bpfkit link show [id N | pinned PATH]
    bpfkit link detach (id N | pinned PATH)
    bpfkit link pin (id N | pinned PATH) PATH
    bpfkit btf list [-j|-p]
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from bpfkit.cli.output import UsageError, emit_json, json_parent, parse_int, table, take_ref, wants_json
from bpfkit.kernel import introspect, objects
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.introspect import Kind
from bpfkit.kernel.links import Link, LinkInfo, read_info

_REF_KINDS = ("id", "pinned")


def link_record(info: LinkInfo) -> dict[str, Any]:
    """One link as bpftool's ``link show -j`` has it: id, type, prog_id, then its type's target fields
    (with the interface's name, ``devname``, next to an ``ifindex`` of this network namespace)."""
    rec: dict[str, Any] = {"id": info.id, "type": info.type_name, "prog_id": info.prog_id, **info.target}
    ifindex = info.target.get("ifindex")
    if isinstance(ifindex, int) and ifindex:
        try:
            rec["devname"] = socket.if_indextoname(ifindex)
        except OSError:
            pass  # the interface is in another network namespace, or gone
    return rec


def open_link(kind: str, value: str) -> Fd:
    if kind == "id":
        return introspect.open_id(Kind.LINK, parse_int(value, "link id"))
    return objects.get_pinned(value, "link")


def cmd_show(args: argparse.Namespace) -> int:
    if args.words:
        (kind, value), rest = take_ref(args.words, "link", _REF_KINDS)
        if rest:
            raise UsageError(f"unexpected words after the link: {' '.join(rest)}")
        with open_link(kind, value) as fd:
            infos = [read_info(fd)]
    else:
        infos = list(introspect.links_info())
    if wants_json(args):
        records = [link_record(i) for i in infos]
        emit_json(args, records[0] if args.words else records)
        return 0
    rows: list[list[object]] = []
    for i in infos:
        target = "  ".join(f"{k} {v}" for k, v in i.target.items())
        rows.append([i.id, i.type_name, i.prog_id, target or "-"])
    sys.stdout.write(table(rows, ["ID", "TYPE", "PROG_ID", "TARGET"]))
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    (kind, value), rest = take_ref(args.words, "link", _REF_KINDS)
    if rest:
        raise UsageError(f"unexpected words after the link: {' '.join(rest)}")
    with Link.from_fd(open_link(kind, value)) as link:
        link.detach()
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    (kind, value), rest = take_ref(args.words, "link", _REF_KINDS)
    if len(rest) != 1:
        raise UsageError("bpfkit link pin (id N | pinned PATH) PATH")
    with open_link(kind, value) as fd:
        objects.pin(fd, rest[0])
    return 0


def cmd_btf_list(args: argparse.Namespace) -> int:
    """Every BTF object loaded in the kernel (vmlinux, modules', programs')."""
    if getattr(args, "words", None):
        (_kind, value), rest = take_ref(args.words, "BTF object", ("id",))
        if rest:
            raise UsageError(f"unexpected words after the BTF object: {' '.join(rest)}")
        objs = [introspect.btf_by_id(parse_int(value, "BTF id"))]
    else:
        objs = list(introspect.btfs_info())
    if wants_json(args):
        recs = [{"id": b.id, "size": b.size, "kernel": b.kernel, **({"name": b.name} if b.name else {})}
                for b in objs]
        emit_json(args, recs[0] if getattr(args, "words", None) else recs)
        return 0
    rows: list[list[object]] = [[b.id, b.name or "-", b.size, "yes" if b.kernel else "no"] for b in objs]
    sys.stdout.write(table(rows, ["ID", "NAME", "SIZE", "KERNEL"]))
    return 0


def add_btf_list(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `list` to the `btf` noun's verbs (the noun itself lives in bpfkit.cli.btf_cmds)."""
    p = verbs.add_parser("list", parents=[json_parent()], help="BTF objects loaded in the kernel")
    p.add_argument("words", nargs="*", help="[id N]")
    p.set_defaults(func=cmd_btf_list)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    links = sub.add_parser("link", help="inspect, pin and detach BPF links (like bpftool link)")
    verbs = links.add_subparsers(dest="verb", metavar="VERB", required=True)
    parent = json_parent()
    for name in ("list", "show"):
        p = verbs.add_parser(name, parents=[parent], help="links (all, or the one named)")
        p.add_argument("words", nargs="*", help="[id N | pinned PATH]")
        p.set_defaults(func=cmd_show)
    p = verbs.add_parser("detach", parents=[parent], help="detach a link from its target (BPF_LINK_DETACH)")
    p.add_argument("words", nargs="*", help="id N | pinned PATH")
    p.set_defaults(func=cmd_detach)
    p = verbs.add_parser("pin", parents=[parent], help="pin a link on a bpf file system")
    p.add_argument("words", nargs="*", help="(id N | pinned PATH) PATH")
    p.set_defaults(func=cmd_pin)
