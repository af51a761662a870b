"""Start-up of `bpfkit trace`: the modules on its path must not import what a simple script never uses.

Start-up is a hot path (benchmarks/bench_trace.py measures it against bpftrace); these tests guard the
lazy imports that keep it short, by listing the modules a fresh interpreter holds after importing
everything `bpfkit trace` imports for a BEGIN or tracepoint script. No timing here: only which modules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    "dataclasses",         # bpfkit._records instead (dataclasses imports inspect, ~4 ms)
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


# What a cached script's run imports (bpfkit.trace.cache: the compiler is not needed on a hit).
_CACHED_PATH = """
import sys
import bpfkit.cli.main, bpfkit.cli.trace_cmds, bpfkit.trace.cache
import bpfkit.trace.runtime, bpfkit.kernel.attach.tracepoint
print("\\n".join(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def loaded_cached() -> set[str]:
    out = subprocess.run([sys.executable, "-c", _CACHED_PATH], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", [
    "bpfkit.lang.ast",       # ~40 dataclasses; a compiled script keeps only lang.attach's AttachPoint
    "bpfkit.lang.parser",
    "bpfkit.lang.semantic",
    "bpfkit.lang.codegen",
    "bpfkit.lang.diagnostics",
    "bpfkit.isa",            # cached programs are bytecode
    "bpfkit.trace.system",
    "hashlib",               # OpenSSL: the cache key uses the builtin blake2 module
    "bpfkit.obj.records",    # loader records (Reference, CoreRelocation...): a cached program has none
    "bpfkit.lang.rare_events",  # print/clear/zero, time(), join(): only scripts sending them need them
    "bpfkit.uapi.btf",       # only CO-RE records and BTF loading name its enums
    "bpfkit.uapi._helpers",  # Helper: 200+ members, named by the compiler only
    "bpfkit.uapi._enums_lazy",  # the UAPI enums no map, program or ring buffer needs at start-up
    "bpfkit.uapi.perf_ring",  # perf buffer constants: a script's events go through the BPF ring buffer
    "bpfkit.uapi.flags",     # flag classes of prog attach, link update and prog load
    "bpfkit.kernel.links",   # bpf_link_info decoders: read only when asked for a link's info
    "bpfkit.kernel.proginfo",  # bpf_prog_info: read only when asked for a program's info
    "bpfkit.kernel.testrun",   # TestRunResult: only BEGIN and END probes are test-run
    "bpfkit.uapi._attr_lazy",  # bpf_attr layouts of commands start-up never sends, the info structs
    "bpfkit.uapi.perf_ids",    # hardware/software event ids: only profile:/software:/hardware: probes
    "bpfkit.lang.struct_members",  # StructMember: only scripts copying kernel structs
    "bpfkit.lang.script_maps",     # MapInfo: a script without maps (the benchmark's) never needs it
    "bpfkit.trace.child",    # only with -c
    "json",                  # only with -f json
    "dataclasses",           # records (bpfkit._records) instead: importing it brings inspect, ~4 ms
    "inspect",
])
def test_cached_path_does_not_import(loaded_cached: set[str], module: str) -> None:
    assert module not in loaded_cached


def test_the_cached_path_is_what_it_claims(loaded_cached: set[str]) -> None:
    assert {"bpfkit.trace.runtime", "bpfkit.trace.cache", "bpfkit.lang.resources"} <= loaded_cached


# The benchmark's script (benchmarks/bench_trace.py), and the format of its tracepoint.
_BENCH_SCRIPT = (r'tracepoint:syscalls:sys_enter_openat /comm == "cat"/ '
                 r'{ printf("%s\n", str(args->filename)); exit(); }')
_OPENAT_FORMAT = """name: sys_enter_openat
ID: 1
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
"""


def test_decoding_a_cached_script_imports_only_the_cached_path(tmp_path: Path,
                                                               loaded_cached: set[str]) -> None:
    # The import lists above say what the modules import; this says what decoding a real entry adds
    # (the classes its values name): nothing beyond what the modules of the cached path hold.
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format
    from bpfkit.trace.cache import ScriptCache

    def formats(category: str, name: str) -> TracepointFormat:
        return parse_format(_OPENAT_FORMAT, category, name)

    script = compile_script(_BENCH_SCRIPT, formats, options=Options(ncpus=2))
    assert ScriptCache(tmp_path).store("k", script, {})
    code = _CACHED_PATH.replace("print(", f"""
from pathlib import Path
script = bpfkit.trace.cache.ScriptCache(Path({str(tmp_path)!r})).load("k")
assert script is not None and script.probes[0].attach.func == "sys_enter_openat"
print(""", 1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    with_entry = set(out.stdout.split())
    assert {"bpfkit.lang.resources", "bpfkit.obj.spec"} <= with_entry
    assert with_entry - loaded_cached == set()
