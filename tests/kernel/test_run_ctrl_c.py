"""`bpfkit run` stopped with Ctrl-C (SIGINT) leaves nothing behind: no program it loaded, no link to one,
no probe event in tracefs. Checked by introspection (`bpfkit.kernel.introspect`) after the process
exits, having first checked (while it runs) that its programs and links are there to be seen.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfkit.kernel import introspect
from bpfkit.obj import load_object

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
TRACEPOINT_O = ROOT / "tests" / "data" / "obj" / "tracepoint.o"
UPROBE_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("uprobe/libc:getppid")
int on_getppid(void *ctx) { bpf_printk("getppid"); return 0; }

SEC("uretprobe/libc:getppid")
int on_getppid_ret(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_enter_getppid(void *ctx) { return 0; }
"""


def _wait_for(proc: subprocess.Popen[bytes], text: bytes, timeout: float) -> bytes:
    """Read the process's stderr until `text` appears; fail (with what it said) if it exits or stalls."""
    assert proc.stderr is not None
    seen = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while text not in seen:
            left = deadline - time.monotonic()
            said = seen.decode(errors="replace")
            assert left > 0, f"`bpfkit run` did not say {text!r} in {timeout}s: {said}"
            if sel.select(left):
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk, f"`bpfkit run` exited ({proc.wait()}): {seen.decode(errors='replace')}"
                seen += chunk
    finally:
        sel.close()
    return seen


def _ours(names: set[str], before: set[int]) -> set[int]:
    """Ids of programs named `names` loaded since `before` was taken (the subprocess's)."""
    return {e.info.id for e in introspect.programs_info() if e.info.id not in before and e.info.name in names}


def _probe_events(pid: int) -> list[str]:
    """Lines of tracefs's uprobe_events/kprobe_events naming probes process `pid` made."""
    out = []
    for root in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        for name in ("uprobe_events", "kprobe_events"):
            try:
                lines = (root / name).read_text().splitlines()
            except OSError:
                continue
            out += [ln for ln in lines if f"bpfkit_{pid}_" in ln]
    return out


def run_and_interrupt(target: Path, names: set[str], expect_links: int, cwd: Path) -> None:
    before = {e.info.id for e in introspect.programs_info()}
    proc = subprocess.Popen([sys.executable, "-m", "bpfkit", "run", str(target)], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        said = _wait_for(proc, b"Ctrl-C to stop", 120)
        assert f"attached {expect_links} link(s)".encode() in said, said.decode(errors="replace")
        progs = _ours(names, before)
        assert len(progs) == len(names)  # the oracle sees what `bpfkit run` loaded...
        linked = [li for li in introspect.links_info() if li.prog_id in progs]
        assert len(linked) == expect_links  # ...and attached
        os.getppid()  # make the probes fire once at least
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        assert proc.stderr is not None
        rest = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == 0, rest
    assert "Traceback" not in rest, rest
    remaining = {e.info.id for e in introspect.programs_info()} & progs
    assert remaining == set(), f"programs still loaded after Ctrl-C: {remaining}"
    assert [li for li in introspect.links_info() if li.prog_id in progs] == []
    assert _probe_events(proc.pid) == []


def test_ctrl_c_of_run_on_a_tracepoint_object(tmp_path: Path) -> None:
    names = set(load_object(TRACEPOINT_O).programs)
    run_and_interrupt(TRACEPOINT_O, names, 1, tmp_path)


def test_ctrl_c_of_run_on_uprobes_compiled_from_c(tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (bpfkit run FILE.c compiles with it)")
    src = tmp_path / "probes.c"
    src.write_text(UPROBE_C)
    # kernel program names are cut at 15 characters
    names = {"on_getppid", "on_getppid_ret", "on_enter_getppi"}
    run_and_interrupt(src, names, 3, tmp_path)
