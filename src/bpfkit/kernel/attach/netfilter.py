"""Netfilter: run a BPF_PROG_TYPE_NETFILTER program at a netfilter hook of the current network namespace.

BPF_LINK_CREATE with BPF_NETFILTER and the protocol family, hook and priority (Linux 6.4). Programs
return NF_ACCEPT (1) or NF_DROP (0). Priority must not be the first or last (INT_MIN, INT_MAX), which
netfilter reserves.
"""

from __future__ import annotations

from typing import Any

from bpfkit.kernel.attach.base import AttachedLink, link_create
from bpfkit.uapi.attr import LinkCreateAttr
from bpfkit.uapi.enums import AttachType
from bpfkit.uapi.net import NetfilterFlags, NfHook, NfProto


def attach_netfilter(program: Any, pf: NfProto | int, hook: NfHook | int, priority: int = 0, *,
                     flags: NetfilterFlags | int = 0) -> AttachedLink:
    """Attach a netfilter `program` at (`pf`, `hook`) with `priority` (lower runs first)."""
    if not -(2**31) < priority < 2**31 - 1:
        raise ValueError(f"attach_netfilter: priority {priority} is out of range (INT_MIN and INT_MAX are "
                         "reserved)")

    def fill(attr: LinkCreateAttr) -> None:
        nf = attr.netfilter
        nf.pf, nf.hooknum, nf.priority, nf.flags = int(pf), int(hook), priority, int(flags)

    try:
        pf_name = NfProto(pf).name.lower()
    except ValueError:
        pf_name = str(int(pf))
    try:
        hook_name = NfHook(hook).name.lower()
    except ValueError:
        hook_name = str(int(hook))
    what = f"{pf_name} {hook_name} prio {priority}"
    link = link_create(program, AttachType.NETFILTER, fill=fill, what=what)
    return AttachedLink("netfilter", what, link=link, program=program)
