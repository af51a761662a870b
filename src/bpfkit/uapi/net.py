"""Networking constants that attaching programs needs: XDP attach flags (include/uapi/linux/if_link.h),
netfilter protocol families and hooks (include/uapi/linux/netfilter.h), socket options for BPF filters
(include/uapi/asm-generic/socket.h) and the tcx return codes (include/uapi/linux/bpf.h).

Hand-written: these are #defines, or enums the kernel's BTF does not always carry.
"""

from __future__ import annotations

from ._cenum import CEnum, CFlag, c_source

__all__ = ["NetfilterFlags", "NfHook", "NfProto", "SockOpt", "TcxAction", "XdpFlags"]


@c_source(None, "XDP_FLAGS_")
class XdpFlags(CFlag):
    """Flags of an XDP attachment (netlink IFLA_XDP_FLAGS, BPF_LINK_CREATE flags for BPF_XDP).

    C: #define XDP_FLAGS_*.
    """

    UPDATE_IF_NOEXIST = 1 << 0  # XDP_FLAGS_UPDATE_IF_NOEXIST
    SKB_MODE = 1 << 1  # XDP_FLAGS_SKB_MODE: generic XDP, in the stack after the driver
    DRV_MODE = 1 << 2  # XDP_FLAGS_DRV_MODE: native XDP in the driver
    HW_MODE = 1 << 3  # XDP_FLAGS_HW_MODE: offloaded to the NIC
    REPLACE = 1 << 4  # XDP_FLAGS_REPLACE


@c_source(None, "NFPROTO_")
class NfProto(CEnum):
    """Netfilter protocol families (bpf_attr.link_create.netfilter.pf).

    C: enum holding NFPROTO_*.
    """

    INET = 1  # NFPROTO_INET
    IPV4 = 2  # NFPROTO_IPV4
    ARP = 3  # NFPROTO_ARP
    NETDEV = 5  # NFPROTO_NETDEV
    BRIDGE = 7  # NFPROTO_BRIDGE
    IPV6 = 10  # NFPROTO_IPV6


@c_source("nf_inet_hooks", "NF_INET_")
class NfHook(CEnum):
    """Netfilter hooks of the inet families (bpf_attr.link_create.netfilter.hooknum).

    C: enum nf_inet_hooks, names NF_INET_*.
    """

    PRE_ROUTING = 0  # NF_INET_PRE_ROUTING
    LOCAL_IN = 1  # NF_INET_LOCAL_IN
    FORWARD = 2  # NF_INET_FORWARD
    LOCAL_OUT = 3  # NF_INET_LOCAL_OUT
    POST_ROUTING = 4  # NF_INET_POST_ROUTING


@c_source(None, "BPF_F_NETFILTER_")
class NetfilterFlags(CFlag):
    """Flags of a netfilter link.

    C: #define BPF_F_NETFILTER_*.
    """

    IP_DEFRAG = 1 << 0  # BPF_F_NETFILTER_IP_DEFRAG, Linux 6.6


@c_source(None, "SO_")
class SockOpt(CEnum):
    """SOL_SOCKET options that attach and detach BPF programs (asm-generic numbering: x86, arm64).

    C: #define SO_*.
    """

    DETACH_FILTER = 27  # SO_DETACH_FILTER (also SO_DETACH_BPF)
    ATTACH_BPF = 50  # SO_ATTACH_BPF
    ATTACH_REUSEPORT_CBPF = 51  # SO_ATTACH_REUSEPORT_CBPF
    ATTACH_REUSEPORT_EBPF = 52  # SO_ATTACH_REUSEPORT_EBPF
    DETACH_REUSEPORT_BPF = 68  # SO_DETACH_REUSEPORT_BPF


@c_source(None, "TCX_")
class TcxAction(CEnum):
    """Return codes of tcx programs (TC_ACT_* values also work).

    C: enum tcx_action_base, names TCX_*.
    """

    NEXT = -1  # TCX_NEXT: run the next program
    PASS = 0  # TCX_PASS
    DROP = 2  # TCX_DROP
    REDIRECT = 7  # TCX_REDIRECT
