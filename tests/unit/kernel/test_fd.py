"""Fd ownership: close once, context manager, dup, detach, finalizer."""

from __future__ import annotations

import errno
import gc
import warnings

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.kernel.fd import Fd


def test_close_is_idempotent() -> None:
    fake = FakeSyscalls()
    fd = Fd(fake.new_fd(), "map 'x'", fake)
    assert fd.fileno() == 1000 and int(fd) == 1000 and not fd.closed
    fd.close()
    fd.close()
    assert fd.closed
    assert [c.args for c in fake.calls if c.name == "close"] == [(1000,)]
    with pytest.raises(KernelError) as ei:
        fd.fileno()
    assert ei.value.errno == errno.EBADF and "map 'x'" in str(ei.value)


def test_context_manager_closes() -> None:
    fake = FakeSyscalls()
    with Fd(fake.new_fd(), "x", fake) as fd:
        assert not fd.closed
    assert fd.closed and not fake.open_fds


def test_dup_is_owned_separately() -> None:
    fake = FakeSyscalls()
    with Fd(fake.new_fd(), "prog", fake) as a, a.dup() as b:
        assert b.fileno() != a.fileno() and b.what == "prog"
        b.close()
        assert not a.closed
    assert not fake.open_fds


def test_detach_gives_up_ownership() -> None:
    fake = FakeSyscalls()
    fd = Fd(fake.new_fd(), "x", fake)
    n = fd.detach()
    assert fd.closed and n in fake.open_fds
    fake.close(n)


def test_negative_fd_refused() -> None:
    with pytest.raises(ValueError, match="invalid fd -1"):
        Fd(-1, "x", FakeSyscalls())


def test_finalizer_warns_and_closes() -> None:
    fake = FakeSyscalls()
    before = Fd.unclosed
    fd = Fd(fake.new_fd(), "map 'forgotten'", fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del fd
        gc.collect()
    assert not fake.open_fds
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == [
        "map 'forgotten' (fd 1000) was never closed"
    ]
    assert Fd.unclosed == before + 1
    Fd.unclosed = before  # this leak was on purpose: keep the suite's leak check quiet


def test_repr() -> None:
    fake = FakeSyscalls()
    fd = Fd(fake.new_fd(), "x", fake)
    assert repr(fd) == "<Fd x fd=1000>"
    fd.close()
    assert repr(fd) == "<Fd x closed>"
