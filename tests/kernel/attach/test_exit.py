"""Attachments a process never closed are undone when it exits, normally or by Ctrl-C: the tracefs
probe events (which the kernel would otherwise keep) are removed by the atexit registry."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpfkit.kernel import tracefs

pytestmark = pytest.mark.kernel

CHILD = textwrap.dedent("""
    import os, sys, time
    from bpfkit.kernel.programs import Program
    from bpfkit.kernel.attach import attach_uprobe, attach_tracepoint, live_links
    from bpfkit.uapi.enums import ProgType
    prog = Program.load(bytes.fromhex("b7000000000000009500000000000000"), ProgType.KPROBE)
    tp = Program.load(bytes.fromhex("b7000000000000009500000000000000"), ProgType.TRACEPOINT)
    keep = [attach_uprobe(prog, sys.executable, offset=0, legacy=True),
            attach_tracepoint(tp, "syscalls:sys_enter_getpid")]
    print(os.getpid(), len(live_links()), flush=True)
    if sys.argv[1] == "wait":
        time.sleep(60)
""")


def probes_of(pid: int) -> list[str]:
    text = (tracefs.tracefs() / "uprobe_events").read_text()
    return [ln for ln in text.splitlines() if f"bpfkit_{pid}_" in ln]


def test_exit_removes_probes() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD, "exit"], check=True, capture_output=True, text=True,
                         timeout=60).stdout.split()
    pid, n = int(out[0]), int(out[1])
    assert n == 2
    assert probes_of(pid) == []


def test_ctrl_c_removes_probes() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, "wait"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline().split()[0])
        assert len(probes_of(pid)) == 1
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        assert "KeyboardInterrupt" in err
        assert probes_of(pid) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_package_exports() -> None:
    import bpfkit.kernel.attach as attach

    for name in attach.__all__:
        assert getattr(attach, name) is not None
    assert Path(attach.__file__).name == "__init__.py"
