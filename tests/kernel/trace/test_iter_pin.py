"""iter:NAME:PIN: the iterator link pinned on the bpf file system; reading the pin runs the iterator.

Oracles: /proc (the threads of a child process the iterator is filtered to) and bpftrace, which 0.17
refuses to run iter probes with on this kernel ("iter task not available for your kernel version"): that
comparison skips with bpftrace's reason. Every test removes its pins, whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_trace_vs_bpftrace import BPFKIT, bpftrace, run

pytestmark = pytest.mark.kernel

BPFFS = Path("/sys/fs/bpf")
SCRIPT = 'iter:task:{pin} /ctx->task->tgid == $1/ {{ printf("%d %s\\n", ctx->task->pid, ctx->task->comm); }}'
CHILD = ("import threading, time\n"
         "for _ in range(3):\n"
         "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
         "print('ready', flush=True)\n"
         "time.sleep(60)\n")


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("pinning needs root")
    if not BPFFS.is_dir():
        pytest.skip("no /sys/fs/bpf")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A process with four threads (python's main one and three sleepers)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _threads(pid: int) -> list[str]:
    """`tid comm` of each thread of `pid`, from /proc (the oracle)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().rstrip("\n")
        out.append(f"{tid} {comm}")
    return sorted(out)


def _cat(path: Path) -> subprocess.CompletedProcess[str]:
    return run(["cat", str(path)], timeout=30)


def _unpin(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def test_the_pin_runs_the_iterator_each_time_it_is_read(child: subprocess.Popen[str]) -> None:
    name = f"bpfkit_test_iter_{os.getpid()}"
    pin = BPFFS / name
    try:
        out = run([*BPFKIT, "-e", SCRIPT.format(pin=name), str(child.pid)])  # relative: under /sys/fs/bpf
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"Attaching 1 probe...\nProgram pinned to {pin}\n\n\n"
        assert pin.exists()  # bpfkit has exited: the pin holds the link (and the program, and its maps)
        for _ in range(2):
            read = _cat(pin)
            assert read.returncode == 0, read.stderr
            assert sorted(read.stdout.splitlines()) == _threads(child.pid)
    finally:
        _unpin(pin)
    assert not pin.exists()


def test_an_absolute_pin_path_is_used_as_given(child: subprocess.Popen[str]) -> None:
    pin = BPFFS / f"bpfkit_test_iter_abs_{os.getpid()}"
    try:
        out = run([*BPFKIT, "-q", "-e", SCRIPT.format(pin=pin), str(child.pid)])
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"Program pinned to {pin}\n\n\n"
        assert sorted(_cat(pin).stdout.splitlines()) == _threads(child.pid)
    finally:
        _unpin(pin)


def test_pins_match_bpftrace(child: subprocess.Popen[str]) -> None:
    """Both tools pin the same script, each at its own path; both pins read the same lines."""
    ours, theirs = (BPFFS / f"bpfkit_test_iter_{tool}_{os.getpid()}" for tool in ("ours", "bpftrace"))
    try:
        ref = run([bpftrace(), "-e", SCRIPT.format(pin=theirs), str(child.pid)])
        if "not available for your kernel version" in ref.stderr:
            pytest.skip(f"bpftrace 0.17 cannot run iter probes here: {ref.stderr.strip().splitlines()[-3]}")
        assert ref.returncode == 0, ref.stderr
        out = run([*BPFKIT, "-e", SCRIPT.format(pin=ours), str(child.pid)])
        assert out.returncode == 0, out.stderr
        assert out.stdout.replace(str(ours), "PIN") == ref.stdout.replace(str(theirs), "PIN")
        assert sorted(_cat(ours).stdout.splitlines()) == sorted(_cat(theirs).stdout.splitlines())
    finally:
        _unpin(ours, theirs)


@pytest.mark.parametrize(("where", "why"), [
    ("exists", "the path exists already: remove it or choose another"),
    ("tmp", "the path is not on a bpf file system (pin under /sys/fs/bpf)"),
    ("nodir", "its directory does not exist"),
])
def test_a_pin_that_cannot_be_made_is_a_caret_error(tmp_path: Path, where: str, why: str) -> None:
    existing = BPFFS / f"bpfkit_test_iter_exists_{os.getpid()}"
    target = {"exists": existing, "tmp": tmp_path / "pin",
              "nodir": BPFFS / f"bpfkit_test_nodir_{os.getpid()}" / "pin"}[where]
    try:
        if where == "exists":
            made = run([*BPFKIT, "-q", "-e", f"iter:task:{existing} {{ }}"])
            assert made.returncode == 0 and existing.exists(), made.stderr
        out = run([*BPFKIT, "-e", f'iter:task:{target} {{ printf("%d\\n", 1); }}'])
        assert out.returncode == 1 and out.stdout == ""  # refused before anything is loaded
        lines = out.stderr.splitlines()
        span = len(f"iter:task:{target}")
        assert lines[0] == f"stdin:1:1-{span + 1}: ERROR: cannot pin iter probe at {target}: {why}"
        assert lines[2] == "~" * span
        assert not (where != "exists" and target.exists())
    finally:
        _unpin(existing, tmp_path / "pin")


def test_the_kernel_refusing_a_pin_is_a_caret_error_and_closes_everything() -> None:
    """Without the start-up check (the library path), the kernel's EEXIST from BPF_OBJ_PIN is reported
    at the attach point, and the tracer detaches and closes what it made."""
    import io

    from bpfkit.errors import CompileError
    from bpfkit.kernel.attach.base import live_links
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.trace import system
    from bpfkit.trace.runtime import RunOptions, Tracer

    pin = BPFFS / f"bpfkit_test_iter_race_{os.getpid()}"
    try:
        script = compile_script(f'iter:task:{pin} {{ printf("%d\\n", 1); }}', system.tracepoint_format,
                                options=Options(btf=system.vmlinux_btf))
        pin.mkdir()  # appears after the check, before the pin: BPF_OBJ_PIN fails with EEXIST
        with Tracer(script, out=io.StringIO()) as tracer, pytest.raises(CompileError) as e:
            tracer.run(RunOptions(quiet=True))
        assert str(e.value).splitlines()[0] == (f"stdin:1:1-{len(str(pin)) + 11}: ERROR: cannot pin iter "
                                                f"probe at {pin}: the path exists already: remove it or "
                                                "choose another")
        assert not live_links()
    finally:
        if pin.is_dir():
            pin.rmdir()


def test_a_failed_start_removes_the_pins_it_made() -> None:
    """Two pinned iterators; the second pin fails (its path appears after the start-up check): the
    first pin, already made, is removed again."""
    import io

    from bpfkit.errors import CompileError
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.trace import system
    from bpfkit.trace.runtime import RunOptions, Tracer

    first = BPFFS / f"bpfkit_test_iter_first_{os.getpid()}"
    second = BPFFS / f"bpfkit_test_iter_second_{os.getpid()}"
    try:
        script = compile_script(f'iter:task:{first} {{ printf("%d\\n", 1); }} '
                                f'iter:task:{second} {{ printf("%d\\n", 2); }}', system.tracepoint_format,
                                options=Options(btf=system.vmlinux_btf))
        second.mkdir()
        out = io.StringIO()
        with Tracer(script, out=out) as tracer, pytest.raises(CompileError, match="exists already"):
            tracer.run(RunOptions(quiet=True))
        assert not first.exists()
        assert "Program pinned" not in out.getvalue()  # nothing announced that does not stay
    finally:
        _unpin(first)
        if second.is_dir():
            second.rmdir()


def test_two_probes_pinning_at_one_path_are_refused_before_anything_is_pinned() -> None:
    pin = BPFFS / f"bpfkit_test_iter_twice_{os.getpid()}"
    script = f'iter:task:{pin} {{ printf("a\\n"); }} iter:task_file:{pin} {{ printf("b\\n"); }}'
    try:
        out = run([*BPFKIT, "-e", script])
        assert out.returncode != 0
        assert f"cannot pin iter probe at {pin}: the path exists already" in out.stderr
        assert "Program pinned" not in out.stdout and not pin.exists()
    finally:
        _unpin(pin)
