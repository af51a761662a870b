"""Start-up of `bpfkit trace`: the modules on its path must not import what a simple script never uses.

Start-up is a hot path (benchmarks/bench_trace.py measures it against bpftrace); these tests guard the
lazy imports that keep it short, by listing the modules a fresh interpreter holds after importing
everything `bpfkit trace` imports for a BEGIN or tracepoint script. No timing here: only which modules.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `bpfkit trace -e 'tracepoint:...'` imports before its first event (see cli/trace_cmds.run).
_TRACE_PATH = """
import sys
import bpfkit.cli.main, bpfkit.cli.trace_cmds
import bpfkit.lang.codegen, bpfkit.lang.parser, bpfkit.trace.child, bpfkit.trace.runtime, bpfkit.trace.system
import bpfkit.kernel.attach.tracepoint
print("\\n".join(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    out = subprocess.run([sys.executable, "-c", _TRACE_PATH], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", [
    "asyncio",             # only async readers need it (kernel.epoll imports it when awaited)
    "bpfkit.btf",          # only scripts with kernel types (lang.btftypes, kernel.btf load it on use)
    "bpfkit.elf",          # only uprobes and user stacks
    "bpfkit.obj.load",     # ELF objects are not part of a script
    "bpfkit.kernel.attach.uprobe",
    "bpfkit.kernel.features",
    "bpfkit.kernel.ksyms",
    "bpfkit.kernel.usyms",
    "socket",
    "subprocess",
    "platform",
])
def test_trace_path_does_not_import(loaded: set[str], module: str) -> None:
    assert module not in loaded


def test_the_trace_path_is_what_it_claims(loaded: set[str]) -> None:
    # The list above means something only if the probe really imported the trace modules.
    assert {"bpfkit.trace.runtime", "bpfkit.lang.codegen", "bpfkit.kernel.ringbuf"} <= loaded


@pytest.mark.parametrize("package", ["bpfkit.kernel", "bpfkit.obj", "bpfkit.events"])
def test_lazy_package_names_resolve(package: str) -> None:
    import importlib

    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
    missing = "no_such_name"
    with pytest.raises(AttributeError, match=missing):
        getattr(mod, missing)
