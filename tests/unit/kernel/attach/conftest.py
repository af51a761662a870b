"""Fakes for the attach unit tests: fake syscalls, a fake program, and a fake sysfs event_source tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.kernel import syscall
from bpfkit.kernel.attach import perf_event
from bpfkit.kernel.fake import FakeSyscalls
from bpfkit.kernel.fd import Fd
from bpfkit.uapi.enums import AttachType


class FakeProgram:
    """What the attach functions use of a Program: fileno(), fd.syscalls, name, expected_attach_type."""

    def __init__(self, sys: FakeSyscalls, name: str = "prog", expected_attach_type: AttachType | None = None
                 ) -> None:
        self.fd = Fd(sys.new_fd(), f"program {name!r}", sys)
        self.name = name
        self.expected_attach_type = expected_attach_type

    def fileno(self) -> int:
        return self.fd.fileno()

    def close(self) -> None:
        self.fd.close()


@pytest.fixture
def fake() -> Iterator[FakeSyscalls]:
    sys = FakeSyscalls()
    with syscall.override(sys):
        yield sys


@pytest.fixture
def prog(fake: FakeSyscalls) -> Iterator[FakeProgram]:
    p = FakeProgram(fake)
    yield p
    p.close()


@pytest.fixture
def event_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /sys/bus/event_source/devices with uprobe (type 8) and kprobe (type 7) PMUs."""
    for name, t in (("uprobe", 8), ("kprobe", 7)):
        d = tmp_path / name
        (d / "format").mkdir(parents=True)
        (d / "type").write_text(f"{t}\n")
        (d / "format" / "retprobe").write_text("config:0\n")
    (tmp_path / "uprobe" / "format" / "ref_ctr_offset").write_text("config:32-63\n")
    monkeypatch.setattr(perf_event, "EVENT_SOURCES", tmp_path)
    return tmp_path
