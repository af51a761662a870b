"""Cached scripts in the kernel: a decoded script (bytecode programs, map fds patched into the bytes) loads,
passes the verifier and prints what the freshly compiled one prints; `bpfkit trace` hits the cache on its
second run without importing the compiler, and `--no-cache` neither reads nor writes it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.resources import CompiledScript
from bpfkit.trace.cache import decode, encode
from bpfkit.trace.runtime import RunOptions, Tracer
from bpfkit.trace.system import expand, tracepoint_format

pytestmark = pytest.mark.kernel

BT = Path(__file__).parents[2] / "data" / "bt"


def run(script: CompiledScript) -> str:
    out = io.StringIO()
    with Tracer(script, out=out) as tracer:
        tracer.run(RunOptions())
    return out.getvalue()


@pytest.mark.parametrize("text", [
    'BEGIN { printf("hi %s %d\\n", "there", 42); @n[1, "a"] = count(); @h = hist(1000); exit(); } '
    'END { @e = sum(2); printf("end\\n"); }',
    'BEGIN { $i = 0; while ($i < 5) { @s[$i] = $i * 3; $i++; } @m = max(7); @m = max(3); exit(); }',
])
def test_a_decoded_script_runs_like_the_compiled_one(text: str) -> None:
    script = compile_script(text, tracepoint_format, options=Options(ncpus=2))
    cached = decode(encode(script))
    assert all(isinstance(p.program.insns, bytes) for p in cached.probes)
    expected = run(script)
    assert "@" in expected  # maps were printed: their fds were patched in
    assert run(cached) == expected


@pytest.mark.parametrize("name", ["run_control.bt", "run_maps.bt", "run_openat.bt"])
def test_decoded_samples_pass_the_kernel_verifier(name: str) -> None:
    script = compile_script((BT / name).read_text(), tracepoint_format, name=name, expand=expand)
    with Tracer(decode(encode(script))) as tracer:
        assert len(tracer.programs) == len(script.probes) > 0


def _bpfkit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BPFKIT_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "bpfkit", "trace", *args],
                          capture_output=True, text=True, env=env, timeout=60, check=True)


def test_the_second_run_hits_the_cache(tmp_path: Path) -> None:
    text = 'BEGIN { @c = count(); printf("%d %s\\n", 7, "x"); exit(); }'
    first = _bpfkit(tmp_path, "-e", text)
    entries = list((tmp_path / "cache" / "trace").iterdir())
    assert len(entries) == 1
    second = _bpfkit(tmp_path, "-e", text)
    assert first.stdout == second.stdout == "Attaching 1 probe...\n7 x\n\n\n@c: 1\n"
    # -X importtime lists every module imported: the compiler ran the first time only.
    assert "bpfkit.lang.codegen" in first.stderr
    assert "bpfkit.lang.codegen" not in second.stderr and "bpfkit.lang.parser" not in second.stderr
    assert list((tmp_path / "cache" / "trace").iterdir()) == entries


def test_no_cache_and_per_run_scripts_leave_no_entry(tmp_path: Path) -> None:
    _bpfkit(tmp_path, "--no-cache", "-e", "BEGIN { exit(); }")
    _bpfkit(tmp_path, "-e", 'BEGIN { printf("%d\\n", elapsed > 0); exit(); }')
    assert not (tmp_path / "cache" / "trace").exists() or not list((tmp_path / "cache" / "trace").iterdir())
    again = _bpfkit(tmp_path, "--no-cache", "-e", "BEGIN { exit(); }")
    assert "bpfkit.lang.codegen" in again.stderr
