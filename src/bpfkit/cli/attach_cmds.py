"""`bpfkit prog attach|detach`: attach a loaded program to a hook, as bpftool does, and more.

bpftool's attach types (BPF_PROG_ATTACH; the attachment lives on in its map or network namespace):

    bpfkit prog attach PROG (sk_msg_verdict | sk_skb_verdict | sk_skb_stream_verdict |
                             sk_skb_stream_parser) MAP
    bpfkit prog attach PROG flow_dissector              (the current network namespace)
    bpfkit prog detach PROG ATTACH_TYPE [MAP]

bpfkit's link-based attach types (BPF_LINK_CREATE or a perf event link). A link that nothing holds
dies with the process, so these need ``pin PATH``: the pinned link keeps the program attached until
the pin is removed (``rm PATH``) or the link detached (``bpfkit link detach pinned PATH``):

    bpfkit prog attach PROG tracepoint CAT:NAME         pin PATH
    bpfkit prog attach PROG raw_tracepoint NAME         pin PATH
    bpfkit prog attach PROG (uprobe | uretprobe) FILE:SYMBOL pin PATH
    bpfkit prog attach PROG xdp dev IFNAME              pin PATH
    bpfkit prog attach PROG (tcx_ingress | tcx_egress) dev IFNAME pin PATH
    bpfkit prog attach PROG cgroup_* CGROUP_DIR         pin PATH   (cgroup_inet_ingress, cgroup_sock_ops...)

PROG is ``id N`` or ``pinned PATH`` (or ``name NAME`` / ``tag TAG`` naming one program).
These verbs are registered on the `prog` noun by `bpfkit.cli.prog_cmds` (see `register_verbs`).
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any

from bpfkit.cli.output import UsageError, emit_json, parse_int, take_ref, wants_json
from bpfkit.errors import KernelError
from bpfkit.kernel import introspect, objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.introspect import Kind
from bpfkit.uapi.attr import ProgAttachAttr
from bpfkit.uapi.enums import AttachType, Cmd

PROG_ATTACH_TYPES: dict[str, AttachType] = {
    "sk_msg_verdict": AttachType.SK_MSG_VERDICT,
    "sk_skb_verdict": AttachType.SK_SKB_VERDICT,
    "sk_skb_stream_verdict": AttachType.SK_SKB_STREAM_VERDICT,
    "sk_skb_stream_parser": AttachType.SK_SKB_STREAM_PARSER,
    "flow_dissector": AttachType.FLOW_DISSECTOR,
}
"""bpftool's `prog attach` types: BPF_PROG_ATTACH to a sockmap/sockhash, or to the network namespace."""

LINK_KINDS = ("tracepoint", "raw_tracepoint", "uprobe", "uretprobe", "xdp", "tcx_ingress", "tcx_egress")
"""bpfkit's link-based attach types (plus every ``cgroup_*`` one, see `cgroup_attach_type`)."""

_PROG_REFS = ("id", "pinned", "name", "tag")
_MAP_REFS = ("id", "pinned")


def cgroup_attach_type(word: str) -> AttachType | None:
    """The cgroup attach type a word names (``cgroup_inet_ingress`` -> CGROUP_INET_INGRESS), or None."""
    if not word.startswith("cgroup_"):
        return None
    member = AttachType.__members__.get(word.upper())
    return member if member is not None and member.name.startswith("CGROUP_") else None


def _open_map(words: list[str]) -> Fd:
    (kind, value), rest = take_ref(words, "map", _MAP_REFS)
    if rest:
        raise UsageError(f"unexpected words after the map: {' '.join(rest)}")
    if kind == "id":
        return introspect.open_id(Kind.MAP, parse_int(value, "map id"))
    return objects.get_pinned(value, "map")


def _prog_attach(prog: Fd, atype: AttachType, target: list[str], detach: bool) -> None:
    """BPF_PROG_ATTACH / BPF_PROG_DETACH of `prog` to the map `target` names (or the netns)."""
    cmd = Cmd.PROG_DETACH if detach else Cmd.PROG_ATTACH
    if atype == AttachType.FLOW_DISSECTOR:
        if target:
            raise UsageError(f"flow_dissector attaches to the current network namespace; unexpected "
                             f"{' '.join(target)}")
        map_fd: Fd | None = None
    else:
        if not target:
            raise UsageError(f"{atype.name.lower()} needs a map: id N | pinned PATH (a sockmap or sockhash)")
        map_fd = _open_map(target)
    try:
        attr = ProgAttachAttr(target_fd=map_fd.fileno() if map_fd is not None else 0,
                              attach_bpf_fd=prog.fileno(), attach_type=atype)
        try:
            prog.syscalls.bpf(cmd, attr)
        except KernelError as e:
            where = f"program as {atype.c_name}" + (" to the map" if map_fd is not None else "")
            raise bpf_error(cmd, e.errno or 0, attr, where) from None
    finally:
        if map_fd is not None:
            map_fd.close()


def _dev(target: list[str], kind: str) -> str:
    if len(target) != 2 or target[0] != "dev":
        raise UsageError(f"{kind} needs: dev IFNAME")
    return target[1]


def _one(target: list[str], kind: str, what: str) -> str:
    if len(target) != 1:
        raise UsageError(f"{kind} needs one {what}, got {' '.join(target) or 'nothing'}")
    return target[0]


def attach_link(prog: Fd, kind: str, target: list[str]) -> Any:
    """Attach `prog` as `kind` to what `target` names; the `AttachedLink` (not yet pinned)."""
    from bpfkit.kernel import attach

    if kind == "tracepoint":
        return attach.attach_tracepoint(prog, _one(target, kind, "CATEGORY:NAME"))
    if kind == "raw_tracepoint":
        return attach.attach_raw_tracepoint(prog, _one(target, kind, "tracepoint NAME"))
    if kind in ("uprobe", "uretprobe"):
        where = _one(target, kind, "FILE:SYMBOL")
        path, sep, symbol = where.rpartition(":")
        if not sep or not path or not symbol:
            raise UsageError(f"{kind} {where!r}: expected FILE:SYMBOL (/usr/bin/bash:readline)")
        # The perf event link is what the pin keeps; a tracefs probe would outlive nothing that removes it.
        return attach.attach_uprobe(prog, path, symbol, retprobe=kind == "uretprobe", legacy=False)
    if kind == "xdp":
        return attach.attach_xdp(prog, _dev(target, kind))
    if kind in ("tcx_ingress", "tcx_egress"):
        return attach.attach_tcx(prog, _dev(target, kind), kind.removeprefix("tcx_"))  # type: ignore[arg-type]
    atype = cgroup_attach_type(kind)
    if atype is None:
        known = ", ".join([*PROG_ATTACH_TYPES, *LINK_KINDS, "cgroup_*"])
        raise UsageError(f"unknown attach type {kind!r} (known: {known})")
    return attach.attach_cgroup(prog, _one(target, kind, "cgroup directory"), atype)


def _split_pin(rest: list[str]) -> tuple[list[str], str | None]:
    if len(rest) >= 2 and rest[-2] == "pin":
        return rest[:-2], rest[-1]
    if "pin" in rest:
        raise UsageError("pin takes one PATH, at the end of the command")
    return rest, None


def cmd_attach(args: argparse.Namespace) -> int:
    from bpfkit.cli.prog_cmds import open_prog

    (rkind, rvalue), rest = take_ref(args.words, "program", _PROG_REFS)
    if not rest:
        raise UsageError("bpfkit prog attach PROG ATTACH_TYPE [TARGET] [pin PATH]")
    kind, target = rest[0], rest[1:]
    target, pin_path = _split_pin(target)
    if kind in PROG_ATTACH_TYPES:
        if pin_path is not None:
            raise UsageError(f"{kind} makes no link to pin (it stays attached until `bpfkit prog detach`)")
        with open_prog(rkind, rvalue) as prog:
            _prog_attach(prog, PROG_ATTACH_TYPES[kind], target, detach=False)
        if wants_json(args):
            emit_json(args, {"attach_type": kind})
        return 0
    if kind not in LINK_KINDS and cgroup_attach_type(kind) is None:
        raise UsageError(f"unknown attach type {kind!r} (known: "
                         f"{', '.join([*PROG_ATTACH_TYPES, *LINK_KINDS, 'cgroup_*'])})")
    if pin_path is None:
        raise UsageError(f"{kind} attaches with a link, which is gone when bpfkit exits: add pin PATH "
                         "(on a bpf file system) to keep it")
    with open_prog(rkind, rvalue) as prog:
        link = attach_link(prog, kind, target)
        try:
            link.pin(pin_path)
            link_id = link.id
        except BaseException:
            link.unpin()
            link.close()
            raise
        link.close()  # the pin holds the link (and the perf event behind it) now
    if wants_json(args):
        emit_json(args, {"id": link_id, "attach_type": kind, "pinned": pin_path})
    else:
        sys.stdout.write(f"link {link_id} pinned at {pin_path}\n")
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from bpfkit.cli.prog_cmds import open_prog

    (rkind, rvalue), rest = take_ref(args.words, "program", _PROG_REFS)
    if not rest:
        raise UsageError("bpfkit prog detach PROG ATTACH_TYPE [MAP]")
    kind, target = rest[0], rest[1:]
    if kind not in PROG_ATTACH_TYPES:
        if kind in LINK_KINDS or cgroup_attach_type(kind) is not None:
            raise UsageError(f"{kind} attachments are links: remove their pin (rm PATH) or run "
                             "`bpfkit link detach pinned PATH`")
        raise UsageError(f"unknown attach type {kind!r} (known: {', '.join(PROG_ATTACH_TYPES)})")
    with open_prog(rkind, rvalue) as prog:
        try:
            _prog_attach(prog, PROG_ATTACH_TYPES[kind], target, detach=True)
        except KernelError as e:
            if e.errno == errno.ENOENT:
                raise KernelError("bpf(BPF_PROG_DETACH)", errno.ENOENT,
                                  f"the program is not attached as {kind} there") from None
            raise
    return 0


def register_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser],
                   parent: argparse.ArgumentParser) -> None:
    """Add `attach` and `detach` to the `prog` noun's verbs (called by `bpfkit.cli.prog_cmds.register`)."""
    p = verbs.add_parser("attach", parents=[parent], help="attach a program to a hook (pin the link)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", help="PROG ATTACH_TYPE [TARGET] [pin PATH]")
    p.set_defaults(func=cmd_attach)
    p = verbs.add_parser("detach", parents=[parent], help="detach a program attached with BPF_PROG_ATTACH")
    p.add_argument("words", nargs="*", help="PROG ATTACH_TYPE [MAP]")
    p.set_defaults(func=cmd_detach)
