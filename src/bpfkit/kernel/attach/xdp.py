"""XDP: run a program on every packet a network interface receives, before the kernel's stack.

BPF_LINK_CREATE with attach type BPF_XDP and the interface's index (Linux 5.9); the link holds the
program on the interface until closed, and a second link on the same interface and mode is refused
(EBUSY) instead of silently replacing the first. `mode` picks native (driver) or generic (skb) XDP.
"""

from __future__ import annotations

from typing import Any, Literal

from bpfkit.kernel.attach.base import AttachedLink, ifindex_of, link_create
from bpfkit.uapi.enums import AttachType
from bpfkit.uapi.net import XdpFlags

XdpMode = Literal["auto", "driver", "generic", "offload"]

_MODE_FLAGS: dict[str, XdpFlags] = {"auto": XdpFlags(0), "driver": XdpFlags.DRV_MODE,
                                    "generic": XdpFlags.SKB_MODE, "offload": XdpFlags.HW_MODE}


def attach_xdp(program: Any, interface: int | str, *, mode: XdpMode = "auto",
               flags: XdpFlags | int = 0) -> AttachedLink:
    """Attach an XDP `program` to `interface` (name or ifindex) in `mode` (``driver``: native XDP,
    ``generic``: after the driver, ``auto``: native if the driver has it). Minimum kernel: 5.9."""
    if mode not in _MODE_FLAGS:
        raise ValueError(f"attach_xdp: mode must be one of {', '.join(_MODE_FLAGS)}, not {mode!r}")
    ifindex = ifindex_of(interface)
    all_flags = int(_MODE_FLAGS[mode]) | int(flags)
    what = f"{interface} (ifindex {ifindex})" if isinstance(interface, str) else f"ifindex {ifindex}"
    link = link_create(program, AttachType.XDP, target_fd=ifindex, flags=all_flags, what=what)
    return AttachedLink("xdp", what, link=link, program=program)
