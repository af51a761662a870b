"""The runtime in-process: loading, running, and closing everything (the fd-leak fixture checks)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bpfkit.errors import CompileError
from bpfkit.kernel.attach.base import live_links
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.trace.runtime import RunOptions, Tracer
from bpfkit.trace.system import expand, tracepoint_format

pytestmark = pytest.mark.kernel


def trace(text: str, **kw: object) -> str:
    script = compile_script(text, tracepoint_format, options=Options(ncpus=2), expand=expand)
    out = io.StringIO()
    with Tracer(script, out=out) as tracer:
        tracer.run(RunOptions(**kw))  # type: ignore[arg-type]
    return out.getvalue()


def test_begin_end_and_maps() -> None:
    out = trace('BEGIN { printf("hi %s\\n", "there"); @n[1] = count(); exit(); } END { @e = sum(2); }')
    assert out == "Attaching 2 probes...\nhi there\n\n\n@e: 2\n@n[1]: 1\n"


def test_tracepoint_wildcards_expand_and_detach() -> None:
    out = trace("tracepoint:sched:sched_process_e* { @[probe] = count(); } "
                "interval:ms:100 { exit(); }", quiet=True)
    assert out.startswith("\n\n")
    assert not live_links()


def test_verifier_rejection_closes_what_was_made() -> None:
    script = compile_script("BEGIN { @x = 1; } END {\n  $i = 0;\n  while ($i >= 0) { $i = $i + 0; }\n}",
                            tracepoint_format)
    with pytest.raises(CompileError) as e:
        Tracer(script)
    assert str(e.value).startswith("stdin:3:")


@pytest.mark.parametrize("name", ["literals.bt", "operators.bt", "run_control.bt", "run_maps.bt",
                                  "run_openat.bt"])
def test_compiled_samples_pass_the_kernel_verifier(name: str) -> None:
    text = (Path(__file__).parents[2] / "data" / "bt" / name).read_text()
    script = compile_script(text, tracepoint_format, name=name, expand=expand)
    with Tracer(script) as tracer:
        assert len(tracer.programs) == len(script.probes) > 0
