"""Netfilter links, made inside the test's network namespace (a link belongs to the namespace of the
thread that creates it), counting the namespace's outgoing IPv4 packets."""

from __future__ import annotations

import socket

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.attach.base import AttachedLink
from bpfkit.kernel.attach.netfilter import attach_netfilter
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType
from bpfkit.uapi.net import NfHook, NfProto

from .conftest import Veth, in_netns  # type: ignore[import-not-found]

pytestmark = [pytest.mark.net, pytest.mark.kernel]

NF_ACCEPT = 1
N = 15


def test_netfilter_local_out_in_netns(veth: Veth, counts: Map, counter_program) -> None:
    prog = counter_program(ProgType.NETFILTER, ret=NF_ACCEPT, attach=AttachType.NETFILTER)
    try:
        link: AttachedLink = in_netns(veth.netns, lambda: attach_netfilter(prog, NfProto.IPV4,
                                                                            NfHook.LOCAL_OUT, 100))
    except KernelError as e:
        pytest.skip(f"netfilter links are not available here: {e}")

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(N):
                s.sendto(b"bpfkit", (veth.addr, 9))

    with link:
        info = link.info()
        assert info.type == LinkType.NETFILTER
        assert (info.target["pf"], info.target["hook"], info.target["prio"]) == (2, 3, 100)
        send_to_root = counts[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # root namespace: not counted
            for _ in range(N):
                s.sendto(b"bpfkit", ("127.0.0.1", 9))
        assert counts[0] == send_to_root
        in_netns(veth.netns, send)
        n = counts[0]
        assert N <= n <= N + 5  # the datagrams, and at most a few ARP-triggered extras
    in_netns(veth.netns, send)
    assert counts[0] == n


def test_netfilter_reserved_priority(counter_program) -> None:
    prog = counter_program(ProgType.NETFILTER, ret=NF_ACCEPT, attach=AttachType.NETFILTER)
    with pytest.raises(ValueError, match="reserved"):
        attach_netfilter(prog, NfProto.IPV4, NfHook.LOCAL_IN, 2**31 - 1)
