"""`bpfkit link ...` and `bpfkit btf list` against a fake kernel."""

from __future__ import annotations

import json
import socket

import pytest

from bpfkit.cli.main import main
from bpfkit.uapi.attr import BpfLinkInfo
from bpfkit.uapi.enums import AttachType, Cmd, LinkType

from .conftest import FakeObjects


def _links(objs: FakeObjects) -> None:
    objs.links[4] = BpfLinkInfo(type=LinkType.RAW_TRACEPOINT, id=4, prog_id=40)
    objs.link_names[4] = "sys_enter"
    tcx = BpfLinkInfo(type=LinkType.TCX, id=6, prog_id=60)
    tcx.tcx.ifindex, tcx.tcx.attach_type = 3, AttachType.TCX_INGRESS
    objs.links[6] = tcx


def test_link_list_json(objs: FakeObjects, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    _links(objs)
    objs.vanished.add(("link", 5))
    monkeypatch.setattr(socket, "if_indextoname", lambda i: {3: "veth0"}[i])
    assert main(["link", "list", "-j"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"id": 4, "type": "raw_tracepoint", "prog_id": 40, "tp_name": "sys_enter"},
        {"id": 6, "type": "tcx", "prog_id": 60, "ifindex": 3, "attach_type": "tcx_ingress",
         "devname": "veth0"},
    ]


def test_link_of_an_interface_elsewhere_has_no_devname(objs: FakeObjects, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _links(objs)

    def gone(_i: int) -> str:
        raise OSError(6, "No such device or address")

    monkeypatch.setattr(socket, "if_indextoname", gone)
    assert main(["link", "show", "id", "6", "-j"]) == 0
    assert "devname" not in json.loads(capsys.readouterr().out)


def test_link_show_table_and_one(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _links(objs)
    assert main(["link", "show"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID  TYPE            PROG_ID  TARGET",
        " 4  raw_tracepoint       40  tp_name sys_enter",
        " 6  tcx                  60  ifindex 3  attach_type tcx_ingress",
    ]
    assert main(["link", "show", "id", "6", "-j"]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "tcx"
    assert main(["link", "show", "id", "9"]) == 1
    assert "no link has id 9" in capsys.readouterr().err


def test_link_detach_and_pin(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    _links(objs)
    assert main(["link", "detach", "id", "6"]) == 0
    assert objs.detached == [6]
    assert main(["link", "pin", "id", "4", "/sys/fs/bpf/l"]) == 0
    assert objs.pins == {"/sys/fs/bpf/l": ("link", 4)}
    assert main(["link", "detach", "pinned", "/sys/fs/bpf/l"]) == 0
    assert objs.detached == [6, 4]
    assert main(["link", "detach", "name", "x"]) == 1
    assert "expected a link: id ... | pinned ..." in capsys.readouterr().err
    assert len(objs.fake.bpf_calls(Cmd.LINK_DETACH)) == 2


def test_btf_list(objs: FakeObjects, capsys: pytest.CaptureFixture[str]) -> None:
    objs.btfs[1] = ("vmlinux", 5000, True)
    objs.btfs[7] = ("", 300, False)
    assert main(["btf", "list", "-j"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"id": 1, "size": 5000, "kernel": True, "name": "vmlinux"}, {"id": 7, "size": 300, "kernel": False}]
    assert main(["btf", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID  NAME     SIZE  KERNEL", " 1  vmlinux  5000  yes", " 7  -         300  no"]
