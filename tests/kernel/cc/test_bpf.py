"""`bpfkit.BPF` end to end on the running kernel: BCC-dialect and libbpf-style sources, tracepoints,
ring and perf buffers, map access, uprobes with typed arguments, CO-RE reads, printk, clean-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit import BPF
from bpfkit.cc import toolchain
from bpfkit.cc.bcc import BPFError
from bpfkit.errors import CompileError, NotSupportedError

pytestmark = pytest.mark.kernel


def _no_compiler() -> str | None:
    try:
        toolchain.find_compiler()
    except toolchain.CompilerNotFoundError as e:
        return str(e)
    return None


@pytest.fixture(autouse=True)
def _need_compiler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    reason = _no_compiler()
    if reason:
        pytest.skip(reason)
    yield


OPENS = r"""
struct event { u32 pid; char comm[16]; char fname[64]; };
struct event *keep_event_type;
BPF_HASH(counts, u32, u64);
BPF_RINGBUF_OUTPUT(events, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != TARGET) return 0;
    counts.increment(pid);
    struct event *e = events.ringbuf_reserve(sizeof(struct event));
    if (!e) return 0;
    e->pid = pid;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_probe_read_user_str(e->fname, sizeof(e->fname), args->filename);
    events.ringbuf_submit(e, 0);
    return 0;
}
"""


def test_bcc_dialect_tracepoint_ring_buffer_and_map() -> None:
    pid = os.getpid()
    comm = Path("/proc/self/comm").read_bytes().strip()
    with BPF(text=OPENS, cflags=[f"-DTARGET={pid}"]) as b:
        assert b.bcc_dialect
        got: list[dict[str, object]] = []
        decode = b.event_decoder("struct event")
        b.open_ring_buffer("events", lambda ctx, data, size: got.append(decode(data)))
        for _ in range(3):
            with open("/proc/self/stat") as f:
                f.read()
        b.ring_buffer_poll(200)
        b.ring_buffer_consume()
        assert [e["fname"] for e in got].count(b"/proc/self/stat") == 3
        assert {e["pid"] for e in got} == {pid}
        assert {e["comm"] for e in got} == {comm}
        counts = b["counts"]
        assert counts[pid] == len(got) and dict(counts.items()) == {pid: len(got)}
        counts[pid] = 10
        assert b["counts"][pid] == 10
        del counts[pid]
        assert pid not in counts


LIBBPF_STYLE = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct val { u32 ppid; u32 calls; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, u32); __type(value, struct val);
         __uint(max_entries, 1); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); }
    out SEC(".maps");
const volatile u32 target = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;  /* only this test's process */
    struct task_struct *t = (void *)bpf_get_current_task();
    u32 k = 0;
    struct val *v = bpf_map_lookup_elem(&seen, &k);
    if (!v) return 0;
    v->ppid = BPF_CORE_READ(t, real_parent, tgid);
    v->calls++;
    u64 stamp = 0x1122334455667788ULL;
    bpf_perf_event_output(ctx, &out, BPF_F_CURRENT_CPU, &stamp, sizeof(stamp));
    bpf_printk("bpfkit-test getppid %d", v->ppid);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_libbpf_style_explicit_attach_perf_buffer_core_and_printk() -> None:
    with BPF(text=LIBBPF_STYLE, cflags=[f"-DTARGET={os.getpid()}"]) as b:
        assert not b.bcc_dialect
        assert b["seen"][0] == {"ppid": 0, "calls": 0}  # not attached yet: BPF() attaches nothing here
        os.getppid()
        assert b["seen"][0]["calls"] == 0
        b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="on_getppid")
        samples: list[bytes] = []
        b.open_perf_buffer("out", lambda cpu, data, size: samples.append(data[:8]))
        b.trace_open()
        ppid = os.getppid()
        os.getppid()
        assert b["seen"][0] == {"ppid": ppid, "calls": 2}  # BPF_CORE_READ(t, real_parent, tgid)
        b.perf_buffer_poll(200)
        assert samples[:1] == [(0x1122334455667788).to_bytes(8, "little")]
        msgs = []  # (trace_pipe is shared: a concurrent reader elsewhere could take lines)
        for _ in range(200):
            _task, pid, _cpu, _flags, _ts, msg = b.trace_fields(nonblocking=True)
            if msg is None:
                break
            if b"bpfkit-test getppid" in msg:
                msgs.append(msg)
                assert pid == os.getpid()
        assert msgs and msgs[0] == f"bpfkit-test getppid {os.getppid()}".encode()
        b.detach_tracepoint(tp="syscalls:sys_enter_getppid")
        before = b["seen"][0]["calls"]
        os.getppid()
        assert b["seen"][0]["calls"] == before


UPROBE = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, u32); __type(value, s64); __uint(max_entries, 16); }
    args SEC(".maps");
SEC("uprobe") int BPF_UPROBE(on_labs, long x)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    s64 v = x;
    bpf_map_update_elem(&args, &pid, &v, BPF_ANY);
    return 0;
}
SEC("uretprobe") int BPF_URETPROBE(on_labs_ret, long rc)
{
    u32 key = 1;
    s64 v = rc;
    bpf_map_update_elem(&args, &key, &v, BPF_ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_uprobe_and_uretprobe_with_typed_arguments() -> None:
    libc_name = ctypes.util.find_library("c")
    assert libc_name
    libc = ctypes.CDLL(libc_name)
    libc.labs.argtypes, libc.labs.restype = [ctypes.c_long], ctypes.c_long
    pid = os.getpid()
    with BPF(text=UPROBE) as b:
        b.attach_uprobe(name="c", sym="labs", fn_name="on_labs", pid=pid)
        b.attach_uretprobe(name="c", sym="labs", fn_name="on_labs_ret", pid=pid)
        assert libc.labs(-4242) == 4242
        m = b["args"]
        assert m[pid] == -4242 and m[1] == 4242
        b.detach_uprobe(name="c", sym="labs", pid=pid)
        libc.labs(-7)
        assert m[pid] == -4242 and m[1] == 7


def test_kprobes_are_refused_clearly_here() -> None:
    src = ('SEC("kprobe") int probe(struct pt_regs *ctx) { return 0; }\n'
           'char LICENSE[] SEC("license") = "GPL";\n')
    with BPF(text='#include "vmlinux.h"\n#include "bpfkit_helpers.h"\n' + src) as b:
        try:
            b.attach_kprobe(event=b.get_syscall_fnname("openat"), fn_name="probe")
        except NotSupportedError as e:
            assert "kprobes" in str(e)
        else:
            pytest.skip("this kernel has kprobes")


def test_api_misuse_errors() -> None:
    with pytest.raises(BPFError, match="exactly one of text= or src_file="):
        BPF()
    with pytest.raises(CompileError, match=r"<text>:2:\d+: error"):
        BPF(text="BPF_HASH(x);\nint f(struct pt_regs *ctx) { return nope; }\n")
    with BPF(text="BPF_ARRAY(a, u32, 4);\nint f(struct xdp_md *ctx) { return XDP_PASS; }\n") as b:
        assert b.load_func("f", BPF.XDP).type == BPF.XDP
        with pytest.raises(BPFError, match="loaded as XDP, not TRACEPOINT"):
            b.load_func("f", BPF.TRACEPOINT)
        with pytest.raises(BPFError, match="no program 'g'"):
            b.attach_tracepoint(tp="syscalls:sys_enter_getpid", fn_name="g")
        with pytest.raises(KeyError, match="no map 'b'"):
            b["b"]
        assert b["a"][3] == 0 and len(list(b["a"].keys())) == 4


def test_src_file_and_cleanup_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "p.c"
    (tmp_path / "defs.h").write_text("#define ANSWER 42\n")
    src.write_text('#include "defs.h"\nBPF_ARRAY(a, u32, 1);\nTRACEPOINT_PROBE(syscalls, sys_enter_getpid) '
                   "{ int k = 0; u32 v = ANSWER; a.update(&k, &v); return 0; }\n")
    b = BPF(src_file=src)
    os.getpid()
    assert b["a"][0] == 42  # TRACEPOINT_PROBE is attached at load, as in BCC
    b.cleanup()
    b.cleanup()


BCC_MORE = r"""
struct my_sample { u32 pid; u32 arg; };
BPF_PERF_OUTPUT(samples);
BPF_PERCPU_ARRAY(ticks, u64, 1);
BPF_HASH(first_arg, u32, u64);
BPF_ARRAY(raw_hits, u64, 1);

int on_labs(struct pt_regs *ctx) {
    struct my_sample s = {};
    s.pid = bpf_get_current_pid_tgid() >> 32;
    s.arg = PT_REGS_PARM1(ctx);
    samples.perf_submit(ctx, &s, sizeof(s));
    u64 zero = 0, *v = first_arg.lookup_or_try_init(&s.pid, &zero);
    if (v) *v = (u64)PT_REGS_PARM1(ctx);
    return 0;
}

int on_tick(struct bpf_perf_event_data *ctx) {
    int k = 0;
    u64 *v = ticks.lookup(&k);
    if (v) *v += 1;
    return 0;
}

RAW_TRACEPOINT_PROBE(sys_enter) {
    if ((bpf_get_current_pid_tgid() >> 32) == TARGET && ctx->args[1] == 110 /* getppid on x86-64 */)
        raw_hits.atomic_increment(0);
    return 0;
}
"""


@pytest.mark.parametrize("compiler", [None, "zig"])
def test_bcc_perf_submit_percpu_perf_event_raw_tracepoint(compiler: str | None) -> None:
    if compiler == "zig" and toolchain.zig_compiler() is None:
        pytest.skip("zig cc needs the ziglang package")
    if os.uname().machine != "x86_64":
        pytest.skip("the raw tracepoint check uses the x86-64 syscall number of getppid")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.labs.argtypes, libc.labs.restype = [ctypes.c_long], ctypes.c_long
    with BPF(text=BCC_MORE, cflags=[f"-DTARGET={os.getpid()}"], compiler=compiler) as b:
        for _ in range(3):
            os.getppid()
        assert b["raw_hits"][0] == 3  # RAW_TRACEPOINT_PROBE attached at load
        got: list[tuple[int, int]] = []
        b.open_perf_buffer("samples", lambda cpu, data, size: got.append(
            (int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little"))))
        b.attach_uprobe(name="c", sym="labs", fn_name="on_labs", pid=os.getpid())
        libc.labs(77)
        libc.labs(78)
        b.perf_buffer_poll(200)
        assert got == [(os.getpid(), 77), (os.getpid(), 78)]
        assert b["first_arg"][os.getpid()] == 78
        b.attach_perf_event(ev_type=1, ev_config=0, fn_name="on_tick", sample_freq=1000)  # cpu-clock
        import time

        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
        per_cpu = b["ticks"][0]
        assert isinstance(per_cpu, list) and sum(per_cpu) > 10


def test_verifier_refusal_names_the_source_line() -> None:
    from bpfkit.kernel.collection import ProgramLoadError

    src = ("BPF_RINGBUF_OUTPUT(ev, 1);\nTRACEPOINT_PROBE(syscalls, sys_enter_getpid) {\n"
           "    u32 *p = ev.ringbuf_reserve(4);\n    if (!p) return 0;\n    ev.ringbuf_submit(p, 0);\n"
           "    *p = 1;  /* use after submit */\n    return 0;\n}\n")
    with pytest.raises(ProgramLoadError) as ei:
        BPF(text=src)
    assert "text.c:6: *p = 1;  /* use after submit */" in str(ei.value)
    assert "invalid mem access" in str(ei.value)
