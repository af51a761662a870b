"""`bpfkit run FILE.c`: compiles, loads, auto-attaches, prints ring buffer records and bpf_printk lines,
and detaches everything at the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.cc import toolchain

pytestmark = pytest.mark.kernel

SRC = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct event { u32 pid; u32 magic; };
struct event *keep;
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpgid")
int on_getpgid(struct trace_event_raw_sys_enter *ctx)
{
    if (ctx->args[0] != MAGIC) /* only our own calls: other processes may call getpgid too */
        return 0;
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    e->pid = pid;
    e->magic = 0xb9f;
    bpf_ringbuf_submit(e, 0);
    bpf_printk("bpfkit-run-test %d", pid);
    return 0;
}
SEC("xdp") int not_attached(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""
MAGIC = 0xB9F7


def test_run_prints_records_and_printk(tmp_path: Path) -> None:
    try:
        toolchain.find_compiler()
    except toolchain.CompilerNotFoundError as e:
        pytest.skip(str(e))
    src = tmp_path / "prog.c"
    src.write_text(SRC)
    proc = subprocess.Popen([sys.executable, "-m", "bpfkit", "run", str(src), "--duration", "4", "--",
                             f"-DMAGIC={MAGIC}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    busy = None
    try:
        assert proc.stderr is not None
        head = [proc.stderr.readline()]
        while head[-1] and not head[-1].startswith("attached"):
            head.append(proc.stderr.readline())
        busy = subprocess.Popen([sys.executable, "-c", "import os, time\nfor _ in range(5):\n"
                                 f"    try: os.getpgid({MAGIC})\n    except OSError: pass\n"
                                 "    time.sleep(0.2)"])
        busy.wait()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    err = "".join(head) + err
    assert proc.returncode == 0, err
    assert "not attached: not_attached: xdp needs an interface" in err
    assert f"events: {{'pid': {busy.pid}, 'magic': 2975}}" in out
    assert f"bpfkit-run-test {busy.pid}" in out
