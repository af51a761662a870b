"""Shared test setup: the `kernel` marker's skip logic and the fd-leak check every test runs under."""

from __future__ import annotations

import functools
import gc
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@functools.cache
def bpf_unavailable() -> str | None:
    """Why kernel tests cannot run here (None when they can): not root, or no usable bpf(2)."""
    if os.geteuid() != 0:
        return "needs root (CAP_BPF/CAP_SYS_ADMIN) for bpf(2)"
    try:
        from bpfkit.kernel.maps import Map
        from bpfkit.obj.spec import MapSpec
        from bpfkit.uapi.enums import MapType

        Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="probe")).close()
    except Exception as e:
        return f"bpf(2) is not usable: {e}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is not None:
        reason = bpf_unavailable()
        if reason:
            pytest.skip(reason)


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the fd of the listdir itself, gone by now
    return fds


@pytest.fixture(autouse=True)
def _no_fd_leak() -> Iterator[None]:
    """Fail a test that leaves a file descriptor open, or lets a bpfkit Fd be garbage collected open."""
    from bpfkit.kernel.fd import Fd

    before = _open_fds()
    unclosed = Fd.unclosed
    yield
    leaked = {fd: target for fd, target in _open_fds().items() if before.get(fd) != target}
    if leaked:
        # A full collection is slow (the suite holds large BTF specs): run it only when something
        # may be waiting for its finalizer, then look again.
        gc.collect()
        leaked = {fd: target for fd, target in _open_fds().items() if before.get(fd) != target}
    if leaked:
        pytest.fail(f"test leaked file descriptors: {leaked}")
    if Fd.unclosed != unclosed:
        pytest.fail(f"{Fd.unclosed - unclosed} bpfkit Fd(s) were never closed (see the ResourceWarning)")


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests (and the `bpfkit` processes they start) cache compiled scripts and objects in a private
    directory, never in the user's ~/.cache."""
    saved = os.environ.get("BPFKIT_CACHE_DIR")
    os.environ["BPFKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("bpfkit-cache"))
    yield
    if saved is None:
        os.environ.pop("BPFKIT_CACHE_DIR", None)
    else:
        os.environ["BPFKIT_CACHE_DIR"] = saved


@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Compile C `sources` ({file name: text}) into `output` with `flags`, with clang, cc or gcc
    (tests that need a native binary: symbol tables, uprobes); skips the test when there is none."""

    def build(output: str, sources: dict[str, str], *flags: str) -> Path:
        cc = shutil.which("clang") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            pytest.skip("no C compiler to build a native test binary")
        d = tmp_path_factory.mktemp(output.replace(".", "_"))
        for name, text in sources.items():
            (d / name).write_text(text)
        subprocess.run([cc, *flags, "-o", str(d / output), *(str(d / n) for n in sources)], check=True)
        return d / output

    return build
