"""AttachedLink ownership against fake syscalls: close order, idempotence, registry, finalizer, pins."""

from __future__ import annotations

import errno
import gc

import pytest

from bpfkit.errors import KernelError, NotSupportedError
from bpfkit.kernel.attach import base
from bpfkit.kernel.attach.base import AttachedLink, LinkGroup, close_all, link_create, live_links
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.kernel.fd import Fd
from bpfkit.uapi.attr import LinkCreateAttr, LinkDetachAttr, LinkUpdateAttr
from bpfkit.uapi.enums import AttachType, Cmd


def test_close_releases_link_then_perf_then_cleanups_once(fake: FakeSyscalls) -> None:
    order: list[str] = []
    link = Fd(fake.new_fd(), "link", fake)
    perf = Fd(fake.new_fd(), "perf", fake)
    a = AttachedLink("tracepoint", "x:y", link=link, perf=[perf], cleanups=[lambda: order.append("cleanup")])
    assert a in live_links() and not a.closed
    expected = [link.fileno(), perf.fileno()]
    a.close()
    closes = [c.args[0] for c in fake.calls if c.name == "close"]
    assert closes == expected and link.closed and perf.closed
    assert order == ["cleanup"] and a.closed and a not in live_links()
    a.close()  # idempotent
    assert len([c for c in fake.calls if c.name == "close"]) == 2 and order == ["cleanup"]


def test_every_step_runs_even_if_one_fails(fake: FakeSyscalls) -> None:
    ran: list[int] = []

    def boom() -> None:
        raise KernelError("x", errno.EIO)

    a = AttachedLink("k", "t", cleanups=[lambda: ran.append(1), boom, lambda: ran.append(3)])
    with pytest.raises(KernelError):
        a.close()
    assert sorted(ran) == [1, 3] and a.closed


def test_with_block_closes_on_keyboard_interrupt(fake: FakeSyscalls) -> None:
    ran: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with AttachedLink("k", "t", cleanups=[lambda: ran.append("x")]):
            raise KeyboardInterrupt
    assert ran == ["x"]


def test_garbage_collection_warns_and_detaches(fake: FakeSyscalls) -> None:
    ran: list[str] = []
    a = AttachedLink("k", "t", cleanups=[lambda: ran.append("x")])
    before = AttachedLink.unclosed
    with pytest.warns(ResourceWarning, match="never closed"):
        del a
        gc.collect()
    assert ran == ["x"] and AttachedLink.unclosed == before + 1


def test_close_all_closes_every_live_link(fake: FakeSyscalls) -> None:
    ran: list[int] = []
    links = [AttachedLink("k", str(i), cleanups=[lambda i=i: ran.append(i)]) for i in range(3)]
    close_all()
    assert sorted(ran) == [0, 1, 2] and all(link.closed for link in links)
    assert not any(link in live_links() for link in links)


def test_registry_hooks_atexit_once(monkeypatch: pytest.MonkeyPatch, fake: FakeSyscalls) -> None:
    registered: list[object] = []
    reg = base._Registry()
    monkeypatch.setattr(base, "registry", reg)
    monkeypatch.setattr(base.atexit, "register", registered.append)
    a, b = AttachedLink("k", "1"), AttachedLink("k", "2")
    assert registered == [reg.close_all] and set(reg.live()) == {a, b}
    reg.close_all()
    assert a.closed and b.closed


def test_link_group(fake: FakeSyscalls) -> None:
    ran: list[str] = []
    g = LinkGroup([AttachedLink("k", "a", cleanups=[lambda: ran.append("a")])])
    g.add(AttachedLink("k", "b", cleanups=[lambda: ran.append("b")]))
    assert len(g) == 2 and g[1].target == "b" and not g.closed
    with g:
        pass
    assert ran == ["b", "a"] and g.closed


def test_link_create_packs_attr_and_names_failures(fake: FakeSyscalls, prog) -> None:
    def fill(attr: LinkCreateAttr) -> None:
        attr.perf_event.bpf_cookie = 0x1122334455

    fd = link_create(prog, AttachType.PERF_EVENT, target_fd=77, flags=3, fill=fill, what="here")
    (call,) = fake.bpf_calls(Cmd.LINK_CREATE)
    attr = LinkCreateAttr.from_buffer_copy(call.attr)
    assert (attr.prog_fd, attr.target_fd, attr.attach_type, attr.flags) == (prog.fileno(), 77, 41, 3)
    assert attr.perf_event.bpf_cookie == 0x1122334455
    assert len(call.attr) == 64
    fd.close()
    fake.fail(Cmd.LINK_CREATE, errno.EINVAL)
    with pytest.raises(KernelError, match=r"BPF_LINK_CREATE.*program 'prog' as BPF_PERF_EVENT to here"):
        link_create(prog, AttachType.PERF_EVENT, target_fd=77, what="here")


def test_detach_update_and_linkless_errors(fake: FakeSyscalls, prog) -> None:
    link = AttachedLink("xdp", "eth", link=Fd(fake.new_fd(), "link", fake))
    lfd = link.fileno()
    link.update(prog)
    up = LinkUpdateAttr.from_buffer_copy(fake.bpf_calls(Cmd.LINK_UPDATE)[0].attr)
    assert (up.link_fd, up.new_prog_fd, up.flags) == (lfd, prog.fileno(), 0)
    link.update(prog, old_program=prog)
    up = LinkUpdateAttr.from_buffer_copy(fake.bpf_calls(Cmd.LINK_UPDATE)[1].attr)
    assert (up.flags, up.old_prog_fd) == (4, prog.fileno())  # BPF_F_REPLACE
    link.detach()
    assert LinkDetachAttr.from_buffer_copy(fake.bpf_calls(Cmd.LINK_DETACH)[0].attr).link_fd == lfd
    assert link.closed
    nolink = AttachedLink("socket_filter", "sock")
    with pytest.raises(NotSupportedError, match="pin of a socket_filter attachment"):
        nolink.pin("/sys/fs/bpf/x")
    with pytest.raises(NotSupportedError):
        nolink.info()
    nolink.close()


def test_ifindex_of() -> None:
    assert base.ifindex_of(3) == 3
    assert base.ifindex_of("lo") == 1
    with pytest.raises(KernelError, match="no network interface 'bpfkit-nope'"):
        base.ifindex_of("bpfkit-nope")
    with pytest.raises(ValueError):
        base.ifindex_of(0)
