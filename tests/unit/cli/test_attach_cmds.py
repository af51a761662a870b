"""`bpfkit prog attach|detach` against a fake kernel: the syscalls made, the pins left, the errors."""

from __future__ import annotations

import ctypes
import errno
import json
import socket

import pytest

from bpfkit.cli.attach_cmds import cgroup_attach_type
from bpfkit.cli.main import main
from bpfkit.uapi.attr import BpfLinkInfo, BpfMapInfo, BpfProgInfo, LinkCreateAttr, ProgAttachAttr
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, ProgType

from .conftest import FakeObjects


def _prog(objs: FakeObjects, prog_type: ProgType = ProgType.SK_MSG) -> None:
    objs.progs[40] = BpfProgInfo(type=prog_type, id=40)


def _attached(objs: FakeObjects, cmd: Cmd) -> list[ProgAttachAttr]:
    return [ProgAttachAttr.from_buffer_copy(c.attr.ljust(ctypes.sizeof(ProgAttachAttr), b"\0"))
            for c in objs.fake.bpf_calls(cmd)]


def test_sk_msg_verdict_attaches_to_the_pinned_map(objs: FakeObjects) -> None:
    _prog(objs)
    objs.pins["/sys/fs/bpf/sockmap"] = ("map", 7)
    fds: dict[str, int] = {}

    def on_attach(a: ctypes.Structure) -> int:
        assert isinstance(a, ProgAttachAttr)
        fds.update(target=a.target_fd, prog=a.attach_bpf_fd)
        return 0

    objs.fake.on(Cmd.PROG_ATTACH, on_attach)
    assert main(["prog", "attach", "id", "40", "sk_msg_verdict", "pinned", "/sys/fs/bpf/sockmap"]) == 0
    (attr,) = _attached(objs, Cmd.PROG_ATTACH)
    assert attr.attach_type == AttachType.SK_MSG_VERDICT
    assert objs.fds[fds["target"]] == ("map", 7) and objs.fds[fds["prog"]] == ("prog", 40)


def test_flow_dissector_attaches_to_the_netns_and_detaches(objs: FakeObjects) -> None:
    _prog(objs, ProgType.FLOW_DISSECTOR)
    assert main(["prog", "attach", "id", "40", "flow_dissector"]) == 0
    assert main(["prog", "detach", "id", "40", "flow_dissector"]) == 0
    (att,), (det,) = _attached(objs, Cmd.PROG_ATTACH), _attached(objs, Cmd.PROG_DETACH)
    assert att.attach_type == det.attach_type == AttachType.FLOW_DISSECTOR
    assert att.target_fd == det.target_fd == 0


def test_detach_of_a_program_not_attached_says_so(objs: FakeObjects, capsys: pytest.CaptureFixture[str]
                                                  ) -> None:
    _prog(objs)
    objs.maps[7] = BpfMapInfo(id=7)
    objs.fake.fail(Cmd.PROG_DETACH, errno.ENOENT)
    assert main(["prog", "detach", "id", "40", "sk_skb_stream_parser", "id", "7"]) == 1
    err = capsys.readouterr().err
    assert "not attached as sk_skb_stream_parser" in err


@pytest.mark.parametrize("words, message", [
    (["sk_msg_verdict"], "needs a map"),
    (["flow_dissector", "id", "3"], "current network namespace"),
    (["sk_msg_verdict", "id", "7", "pin", "/sys/fs/bpf/x"], "no link to pin"),
    (["xdp", "dev", "lo"], "add pin PATH"),
    (["kprobe_nope", "x", "pin", "/sys/fs/bpf/x"], "unknown attach type 'kprobe_nope'"),
    (["cgroup_nope", "/sys/fs/cgroup", "pin", "/sys/fs/bpf/x"], "unknown attach type 'cgroup_nope'"),
    (["xdp", "lo", "pin", "/sys/fs/bpf/x"], "xdp needs: dev IFNAME"),
    (["uprobe", "nosymbol", "pin", "/sys/fs/bpf/x"], "expected FILE:SYMBOL"),
    (["tracepoint", "pin"], "pin takes one PATH"),
])
def test_usage_errors_make_no_attachment(objs: FakeObjects, capsys: pytest.CaptureFixture[str],
                                         words: list[str], message: str) -> None:
    _prog(objs)
    assert main(["prog", "attach", "id", "40", *words]) == 1
    assert message in capsys.readouterr().err
    assert not objs.fake.bpf_calls(Cmd.PROG_ATTACH) and not objs.fake.bpf_calls(Cmd.LINK_CREATE)
    assert not objs.pins


def _link_kernel(objs: FakeObjects) -> list[LinkCreateAttr]:
    made: list[LinkCreateAttr] = []

    def on_create(a: ctypes.Structure) -> int:
        assert isinstance(a, LinkCreateAttr)
        made.append(LinkCreateAttr.from_buffer_copy(bytes(a)))
        fd: int = objs.fake.new_fd()
        objs.fds[fd] = ("link", 9)
        objs.links[9] = BpfLinkInfo(type=LinkType.XDP, id=9, prog_id=40)
        return fd

    objs.fake.on(Cmd.LINK_CREATE, on_create)
    return made


@pytest.mark.parametrize("kind, attach_type", [("xdp", AttachType.XDP),
                                               ("tcx_ingress", AttachType.TCX_INGRESS),
                                               ("tcx_egress", AttachType.TCX_EGRESS)])
def test_link_attach_pins_the_link_and_closes_every_fd(objs: FakeObjects, capsys: pytest.CaptureFixture[str],
                                                       kind: str, attach_type: AttachType) -> None:
    _prog(objs, ProgType.XDP)
    made = _link_kernel(objs)
    assert main(["prog", "attach", "id", "40", kind, "dev", "lo", "pin", "/sys/fs/bpf/l", "-j"]) == 0
    (attr,) = made
    assert attr.attach_type == attach_type and attr.target_fd == socket.if_nametoindex("lo")
    assert objs.pins["/sys/fs/bpf/l"] == ("link", 9)
    assert json.loads(capsys.readouterr().out) == {"id": 9, "attach_type": kind, "pinned": "/sys/fs/bpf/l"}
    # the objs fixture checks that the program and link fds were closed


def test_cgroup_attach_uses_the_named_attach_type(objs: FakeObjects, tmp_path: object) -> None:
    _prog(objs, ProgType.CGROUP_SKB)
    made = _link_kernel(objs)
    words = ["cgroup_inet_egress", str(tmp_path), "pin", "/sys/fs/bpf/c"]
    assert main(["prog", "attach", "id", "40", *words]) == 0
    assert made[0].attach_type == AttachType.CGROUP_INET_EGRESS
    assert objs.pins["/sys/fs/bpf/c"] == ("link", 9)


def test_failed_pin_closes_the_link(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs, ProgType.XDP)
    _link_kernel(objs)
    objs.fake.fail(Cmd.OBJ_PIN, errno.EEXIST)
    assert main(["prog", "attach", "id", "40", "xdp", "dev", "lo", "pin", "/sys/fs/bpf/l"]) == 1
    assert "/sys/fs/bpf/l" in capsys.readouterr().err
    assert not objs.pins  # and the fixture checks the link fd is closed: the attachment is gone


def test_link_kinds_cannot_be_detached_by_prog_detach(objs: FakeObjects,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _prog(objs)
    assert main(["prog", "detach", "id", "40", "xdp"]) == 1
    assert "remove their pin" in capsys.readouterr().err


def test_cgroup_attach_type_names() -> None:
    assert cgroup_attach_type("cgroup_inet_ingress") == AttachType.CGROUP_INET_INGRESS
    assert cgroup_attach_type("cgroup_sock_ops") == AttachType.CGROUP_SOCK_OPS
    assert cgroup_attach_type("cgroup_") is None
    assert cgroup_attach_type("xdp") is None
