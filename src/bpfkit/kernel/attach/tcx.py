"""tcx: run a SCHED_CLS program on an interface's ingress or egress, in the kernel's tc path.

BPF_LINK_CREATE with BPF_TCX_INGRESS/BPF_TCX_EGRESS and the ifindex (Linux 6.6). Several programs
may be attached to one hook; `before`/`after` place the new one relative to another program or link
(BPF_F_BEFORE/BPF_F_AFTER with its fd), and `expected_revision` makes the attach fail if the hook
changed since it was read. Programs return TCX_NEXT (-1) to let the next one decide.
"""

from __future__ import annotations

from typing import Any, Literal

from bpfkit.kernel.attach.base import AttachedLink, fileno_of, ifindex_of, link_create
from bpfkit.uapi.attr import LinkCreateAttr
from bpfkit.uapi.enums import AttachType
from bpfkit.uapi.flags import AttachFlags

Direction = Literal["ingress", "egress"]

_ATTACH = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}


def attach_tcx(program: Any, interface: int | str, direction: Direction = "ingress", *,
               before: Any = None, after: Any = None, expected_revision: int = 0) -> AttachedLink:
    """Attach a SCHED_CLS `program` to `interface`'s `direction` hook. `before`/`after` (a Program or
    AttachedLink, at most one) say where it goes in the hook's list; default: last. Minimum kernel: 6.6."""
    if direction not in _ATTACH:
        raise ValueError(f"attach_tcx: direction must be 'ingress' or 'egress', not {direction!r}")
    if before is not None and after is not None:
        raise ValueError("attach_tcx: give before or after, not both")
    ifindex = ifindex_of(interface)
    flags = 0
    relative = before if before is not None else after
    if relative is not None:
        flags |= AttachFlags.BEFORE if before is not None else AttachFlags.AFTER
        if isinstance(relative, AttachedLink):
            flags |= AttachFlags.LINK

    def fill(attr: LinkCreateAttr) -> None:
        if relative is not None:
            attr.tcx.relative_fd = fileno_of(relative)
        attr.tcx.expected_revision = expected_revision

    name = f"{interface} " if isinstance(interface, str) else ""
    what = f"{name}{direction} (ifindex {ifindex})"
    link = link_create(program, _ATTACH[direction], target_fd=ifindex, flags=int(flags), fill=fill, what=what)
    return AttachedLink(f"tcx_{direction}", what, link=link, program=program)
