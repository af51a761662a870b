"""Program section names (`SEC("...")`): what program type, attach type and load flags each implies.

The conventions are libbpf's (`tools/lib/bpf/libbpf.c`, the section definitions table): a pattern ending
in `+` matches the name itself or the name followed by `/` and an attach target (`kprobe/do_sys_open`,
`tracepoint/syscalls/sys_enter_getpid`); any other pattern matches exactly. The first match wins, so
longer names come before their prefixes (`xdp.frags/devmap` before `xdp.frags`). A `.s` suffix marks a
sleepable variant.
"""

from __future__ import annotations

import enum

from bpfkit._records import record
from bpfkit.uapi.enums import AttachType as A
from bpfkit.uapi.enums import ProgType as P
from bpfkit.uapi.flags import ProgLoadFlags


class SecFlag(enum.Flag):
    """Properties of a section definition."""

    NONE = 0
    SLEEPABLE = enum.auto()
    """Load with BPF_F_SLEEPABLE."""
    XDP_FRAGS = enum.auto()
    """Load with BPF_F_XDP_HAS_FRAGS (multi-buffer XDP)."""
    ATTACH_BTF = enum.auto()
    """The target after `/` names a kernel BTF function or type (attach_btf_id is resolved at load)."""
    ATTACHABLE = enum.auto()
    """The expected attach type is required at load."""
    ATTACHABLE_OPT = enum.auto()
    """The expected attach type is passed at load, but old kernels may load without it."""
    USDT = enum.auto()
    """A USDT probe program (needs the USDT support maps at attach time)."""


@record
class SectionDef:
    """One row of the table: `pattern` (with a trailing `+` when a target may follow) and what it means.

    `kind` is the pattern without `+` and `.s`, aliases folded (`tp` is `tracepoint`): the attach
    mechanism a linker uses (`kprobe` and `kretprobe` share a program type but attach differently).
    """

    pattern: str
    prog_type: P
    attach_type: A | None = None
    flags: SecFlag = SecFlag.NONE

    @property
    def prefix(self) -> str:
        return self.pattern.rstrip("+")

    @property
    def takes_target(self) -> bool:
        return self.pattern.endswith("+")

    @property
    def kind(self) -> str:
        base = self.prefix
        if base.endswith(".s"):
            base = base[:-2]
        return _KIND_ALIASES.get(base, base)

    def matches(self, section: str) -> bool:
        if self.takes_target:
            prefix = self.prefix
            return section == prefix or section.startswith(prefix + "/")
        return section == self.pattern


@record
class SectionInfo:
    """What a section name means: its definition, the attach `target` after the `/` (may be empty) and
    the BPF_PROG_LOAD flags it implies."""

    section: str
    definition: SectionDef
    target: str

    @property
    def prog_type(self) -> P:
        return self.definition.prog_type

    @property
    def attach_type(self) -> A | None:
        return self.definition.attach_type

    @property
    def kind(self) -> str:
        return self.definition.kind

    @property
    def sleepable(self) -> bool:
        return SecFlag.SLEEPABLE in self.definition.flags

    @property
    def prog_flags(self) -> int:
        flags = 0
        if SecFlag.SLEEPABLE in self.definition.flags:
            flags |= ProgLoadFlags.SLEEPABLE
        if SecFlag.XDP_FRAGS in self.definition.flags:
            flags |= ProgLoadFlags.XDP_HAS_FRAGS
        return int(flags)


_S = SecFlag
_D = SectionDef

# Section spellings that attach the same way as another.
_KIND_ALIASES = {
    "tp": "tracepoint",
    "raw_tp": "raw_tracepoint",
    "raw_tp.w": "raw_tracepoint.w",
    "tc/ingress": "tcx/ingress",
    "tc/egress": "tcx/egress",
    "xdp.frags": "xdp",
    "xdp.frags/devmap": "xdp/devmap",
    "xdp.frags/cpumap": "xdp/cpumap",
}

SECTION_DEFS: tuple[SectionDef, ...] = (
    _D("socket", P.SOCKET_FILTER),
    _D("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, _S.ATTACHABLE),
    _D("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, _S.ATTACHABLE),
    _D("kprobe+", P.KPROBE),
    _D("uprobe+", P.KPROBE),
    _D("uprobe.s+", P.KPROBE, None, _S.SLEEPABLE),
    _D("kretprobe+", P.KPROBE),
    _D("uretprobe+", P.KPROBE),
    _D("uretprobe.s+", P.KPROBE, None, _S.SLEEPABLE),
    _D("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    _D("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI),
    _D("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION),
    _D("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI),
    _D("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI),
    _D("uprobe.session+", P.KPROBE, A.TRACE_UPROBE_SESSION),
    _D("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, _S.SLEEPABLE),
    _D("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, _S.SLEEPABLE),
    _D("uprobe.session.s+", P.KPROBE, A.TRACE_UPROBE_SESSION, _S.SLEEPABLE),
    _D("ksyscall+", P.KPROBE),
    _D("kretsyscall+", P.KPROBE),
    _D("usdt+", P.KPROBE, None, _S.USDT),
    _D("usdt.s+", P.KPROBE, None, _S.USDT | _S.SLEEPABLE),
    _D("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    _D("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _D("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    _D("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _D("tc", P.SCHED_CLS),
    _D("classifier", P.SCHED_CLS),
    _D("action", P.SCHED_ACT),
    _D("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    _D("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    _D("tracepoint+", P.TRACEPOINT),
    _D("tp+", P.TRACEPOINT),
    _D("raw_tracepoint+", P.RAW_TRACEPOINT),
    _D("raw_tp+", P.RAW_TRACEPOINT),
    _D("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE),
    _D("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE),
    _D("tp_btf+", P.TRACING, A.TRACE_RAW_TP, _S.ATTACH_BTF),
    _D("fentry+", P.TRACING, A.TRACE_FENTRY, _S.ATTACH_BTF),
    _D("fmod_ret+", P.TRACING, A.MODIFY_RETURN, _S.ATTACH_BTF),
    _D("fexit+", P.TRACING, A.TRACE_FEXIT, _S.ATTACH_BTF),
    _D("fentry.s+", P.TRACING, A.TRACE_FENTRY, _S.ATTACH_BTF | _S.SLEEPABLE),
    _D("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, _S.ATTACH_BTF | _S.SLEEPABLE),
    _D("fexit.s+", P.TRACING, A.TRACE_FEXIT, _S.ATTACH_BTF | _S.SLEEPABLE),
    _D("freplace+", P.EXT, None, _S.ATTACH_BTF),
    _D("lsm+", P.LSM, A.LSM_MAC, _S.ATTACH_BTF),
    _D("lsm.s+", P.LSM, A.LSM_MAC, _S.ATTACH_BTF | _S.SLEEPABLE),
    _D("lsm_cgroup+", P.LSM, A.LSM_CGROUP, _S.ATTACH_BTF),
    _D("iter+", P.TRACING, A.TRACE_ITER, _S.ATTACH_BTF),
    _D("iter.s+", P.TRACING, A.TRACE_ITER, _S.ATTACH_BTF | _S.SLEEPABLE),
    _D("syscall", P.SYSCALL, None, _S.SLEEPABLE),
    _D("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, _S.XDP_FRAGS),
    _D("xdp/devmap", P.XDP, A.XDP_DEVMAP, _S.ATTACHABLE),
    _D("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, _S.XDP_FRAGS),
    _D("xdp/cpumap", P.XDP, A.XDP_CPUMAP, _S.ATTACHABLE),
    _D("xdp.frags", P.XDP, A.XDP, _S.XDP_FRAGS),
    _D("xdp", P.XDP, A.XDP, _S.ATTACHABLE_OPT),
    _D("perf_event", P.PERF_EVENT),
    _D("lwt_in", P.LWT_IN),
    _D("lwt_out", P.LWT_OUT),
    _D("lwt_xmit", P.LWT_XMIT),
    _D("lwt_seg6local", P.LWT_SEG6LOCAL),
    _D("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, _S.ATTACHABLE_OPT),
    _D("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, _S.ATTACHABLE_OPT),
    _D("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, _S.ATTACHABLE_OPT),
    _D("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, _S.ATTACHABLE_OPT),
    _D("sk_skb", P.SK_SKB),
    _D("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, _S.ATTACHABLE_OPT),
    _D("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, _S.ATTACHABLE_OPT),
    _D("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, _S.ATTACHABLE_OPT),
    _D("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, _S.ATTACHABLE_OPT),
    _D("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, _S.ATTACHABLE_OPT),
    _D("cgroup/skb", P.CGROUP_SKB),
    _D("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, _S.ATTACHABLE),
    _D("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, _S.ATTACHABLE),
    _D("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, _S.ATTACHABLE_OPT),
    _D("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, _S.ATTACHABLE),
    _D("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, _S.ATTACHABLE),
    _D("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, _S.ATTACHABLE),
    _D("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, _S.ATTACHABLE),
    _D("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, _S.ATTACHABLE),
    _D("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, _S.ATTACHABLE),
    _D("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, _S.ATTACHABLE),
    _D("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, _S.ATTACHABLE),
    _D("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, _S.ATTACHABLE),
    _D("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, _S.ATTACHABLE),
    _D("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, _S.ATTACHABLE),
    _D("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, _S.ATTACHABLE),
    _D("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, _S.ATTACHABLE),
    _D("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, _S.ATTACHABLE),
    _D("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, _S.ATTACHABLE),
    _D("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, _S.ATTACHABLE),
    _D("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, _S.ATTACHABLE),
    _D("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, _S.ATTACHABLE),
    _D("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, _S.ATTACHABLE),
    _D("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, _S.ATTACHABLE),
    _D("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, _S.ATTACHABLE),
    _D("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, _S.ATTACHABLE),
    _D("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, _S.ATTACHABLE_OPT),
    _D("struct_ops+", P.STRUCT_OPS),
    _D("struct_ops.s+", P.STRUCT_OPS, None, _S.SLEEPABLE),
    _D("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, _S.ATTACHABLE),
    _D("netfilter", P.NETFILTER, A.NETFILTER),
)
"""The section definitions, in match order (libbpf's, as of libbpf 1.5)."""


def section_info(section: str) -> SectionInfo | None:
    """What the program section `section` means, or None when no convention matches (libbpf then needs
    the program type set by hand)."""
    for d in SECTION_DEFS:
        if d.matches(section):
            target = section[len(d.prefix) + 1 :] if d.takes_target and section != d.prefix else ""
            return SectionInfo(section, d, target)
    return None
