"""Section-name conventions: program type, expected attach type, target and load flags."""

from __future__ import annotations

import pytest

from bpfkit.obj.sections import SECTION_DEFS, section_info
from bpfkit.uapi.enums import AttachType as A
from bpfkit.uapi.enums import ProgType as P
from bpfkit.uapi.flags import ProgLoadFlags as F

from .oracle import OBJECTS

CASES = [
    # section, prog type, attach type, target, kind, flags
    ("socket", P.SOCKET_FILTER, None, "", "socket", 0),
    ("kprobe/do_sys_open", P.KPROBE, None, "do_sys_open", "kprobe", 0),
    ("kprobe", P.KPROBE, None, "", "kprobe", 0),
    ("kretprobe/vfs_read+0x10", P.KPROBE, None, "vfs_read+0x10", "kretprobe", 0),
    ("kprobe.multi/vfs_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "vfs_*", "kprobe.multi", 0),
    ("uprobe//bin/bash:readline", P.KPROBE, None, "/bin/bash:readline", "uprobe", 0),
    ("uprobe.s//bin/bash:readline", P.KPROBE, None, "/bin/bash:readline", "uprobe", F.SLEEPABLE),
    ("uretprobe.s/libc.so.6:malloc", P.KPROBE, None, "libc.so.6:malloc", "uretprobe", F.SLEEPABLE),
    ("uprobe.multi/libc.so.6:*", P.KPROBE, A.TRACE_UPROBE_MULTI, "libc.so.6:*", "uprobe.multi", 0),
    ("usdt/libc.so.6:libc:setjmp", P.KPROBE, None, "libc.so.6:libc:setjmp", "usdt", 0),
    ("tracepoint/syscalls/sys_enter_getpid", P.TRACEPOINT, None, "syscalls/sys_enter_getpid", "tracepoint",
     0),
    ("tp/sched/sched_switch", P.TRACEPOINT, None, "sched/sched_switch", "tracepoint", 0),
    ("raw_tp/sys_enter", P.RAW_TRACEPOINT, None, "sys_enter", "raw_tracepoint", 0),
    ("raw_tracepoint/sys_exit", P.RAW_TRACEPOINT, None, "sys_exit", "raw_tracepoint", 0),
    ("raw_tp.w/bpf_test_finish", P.RAW_TRACEPOINT_WRITABLE, None, "bpf_test_finish", "raw_tracepoint.w", 0),
    ("tp_btf/sched_switch", P.TRACING, A.TRACE_RAW_TP, "sched_switch", "tp_btf", 0),
    ("fentry/do_unlinkat", P.TRACING, A.TRACE_FENTRY, "do_unlinkat", "fentry", 0),
    ("fexit/do_unlinkat", P.TRACING, A.TRACE_FEXIT, "do_unlinkat", "fexit", 0),
    ("fmod_ret/security_x", P.TRACING, A.MODIFY_RETURN, "security_x", "fmod_ret", 0),
    ("fentry.s/do_unlinkat", P.TRACING, A.TRACE_FENTRY, "do_unlinkat", "fentry", F.SLEEPABLE),
    ("freplace/handler", P.EXT, None, "handler", "freplace", 0),
    ("lsm/file_open", P.LSM, A.LSM_MAC, "file_open", "lsm", 0),
    ("lsm.s/bprm_check_security", P.LSM, A.LSM_MAC, "bprm_check_security", "lsm", F.SLEEPABLE),
    ("lsm_cgroup/socket_bind", P.LSM, A.LSM_CGROUP, "socket_bind", "lsm_cgroup", 0),
    ("iter/task", P.TRACING, A.TRACE_ITER, "task", "iter", 0),
    ("iter.s/task_file", P.TRACING, A.TRACE_ITER, "task_file", "iter", F.SLEEPABLE),
    ("syscall", P.SYSCALL, None, "", "syscall", F.SLEEPABLE),
    ("xdp", P.XDP, A.XDP, "", "xdp", 0),
    ("xdp.frags", P.XDP, A.XDP, "", "xdp", F.XDP_HAS_FRAGS),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, "", "xdp/devmap", 0),
    ("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "", "xdp/cpumap", F.XDP_HAS_FRAGS),
    ("tc", P.SCHED_CLS, None, "", "tc", 0),
    ("classifier", P.SCHED_CLS, None, "", "classifier", 0),
    ("action", P.SCHED_ACT, None, "", "action", 0),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", "tcx/ingress", 0),
    ("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, "", "tcx/egress", 0),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", "tcx/ingress", 0),
    ("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER, "", "netkit/peer", 0),
    ("perf_event", P.PERF_EVENT, None, "", "perf_event", 0),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "", "cgroup_skb/ingress", 0),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "", "cgroup_skb/egress", 0),
    ("cgroup/skb", P.CGROUP_SKB, None, "", "cgroup/skb", 0),
    ("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "", "cgroup/sock_create", 0),
    ("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, "", "cgroup/sock_release", 0),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "", "cgroup/sock", 0),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, "", "cgroup/post_bind6", 0),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "", "cgroup/connect4", 0),
    ("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, "", "cgroup/connect_unix", 0),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, "", "cgroup/sendmsg6", 0),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, "", "cgroup/recvmsg4", 0),
    ("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, "", "cgroup/getpeername6", 0),
    ("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, "", "cgroup/getsockname4", 0),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, "", "cgroup/bind4", 0),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, "", "cgroup/getsockopt", 0),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, "", "cgroup/setsockopt", 0),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, "", "cgroup/sysctl", 0),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "", "cgroup/dev", 0),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "", "sockops", 0),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, "", "sk_skb/stream_parser", 0),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, "", "sk_skb/stream_verdict", 0),
    ("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, "", "sk_skb/verdict", 0),
    ("sk_skb", P.SK_SKB, None, "", "sk_skb", 0),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, "", "sk_msg", 0),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, "", "sk_lookup", 0),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, "", "sk_reuseport", 0),
    ("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, "", "sk_reuseport/migrate", 0),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, "", "flow_dissector", 0),
    ("lwt_in", P.LWT_IN, None, "", "lwt_in", 0),
    ("lwt_out", P.LWT_OUT, None, "", "lwt_out", 0),
    ("lwt_xmit", P.LWT_XMIT, None, "", "lwt_xmit", 0),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, None, "", "lwt_seg6local", 0),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, "", "lirc_mode2", 0),
    ("struct_ops/tcp_init", P.STRUCT_OPS, None, "tcp_init", "struct_ops", 0),
    ("struct_ops.s/x", P.STRUCT_OPS, None, "x", "struct_ops", F.SLEEPABLE),
    ("netfilter", P.NETFILTER, A.NETFILTER, "", "netfilter", 0),
]


@pytest.mark.parametrize(("section", "ptype", "atype", "target", "kind", "flags"), CASES)
def test_section_conventions(section: str, ptype: P, atype: A | None, target: str, kind: str,
                             flags: int) -> None:
    info = section_info(section)
    assert info is not None
    assert (info.prog_type, info.attach_type, info.target, info.kind, info.prog_flags) == (
        ptype, atype, target, kind, int(flags))


@pytest.mark.parametrize("section", ["xdp/foo", "socketx", "kprobex/foo", "tc/other", "", ".text", "maps",
                                     "cgroup/connect", "tracepointfoo", "sk_msg/verdict"])
def test_names_that_match_no_convention(section: str) -> None:
    # libbpf 1.x matches exactly, or a `+` prefix followed by "/" (no sloppy prefixes)
    assert section_info(section) is None


def test_fixture_sections_agree_with_the_manifest() -> None:
    for obj in OBJECTS:
        for prog in obj["programs"]:
            info = section_info(prog["section"])
            assert info is not None, prog["section"]
            assert info.prog_type.name.lower() == prog["prog_type"]
            if prog["attach_type"] is not None:
                assert info.attach_type is not None and info.attach_type.name.lower() == prog["attach_type"]


def test_table_has_no_shadowed_rows() -> None:
    """No row is unreachable because an earlier one always matches first."""
    for i, d in enumerate(SECTION_DEFS):
        probe = d.prefix + ("/x" if d.takes_target else "")
        first = section_info(probe)
        assert first is not None and first.definition is d, (d.pattern, first and first.definition.pattern)
        assert not any(e.pattern == d.pattern for e in SECTION_DEFS[:i])
