"""usdt probes in the language: argN checked against the probe's argument count (when the binary is known
at compile time), unknown probes reported at their attach point, KPROBE programs reading the arguments
from where the probe's spec says they are."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bpfkit.errors import CompileError, ElfError
from bpfkit.kernel.attach.usdt_args import X86_64_PT_REGS, UsdtArg, parse_usdt_args
from bpfkit.lang import ast
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.parser import parse
from bpfkit.lang.semantic import analyze
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.uapi.enums import Helper, ProgType

ARGS = parse_usdt_args("-8@%rdi -2@-10(%rbp) 1@$7", "x86_64")


def formats(category: str, name: str) -> TracepointFormat | None:
    return None


def lookup(ap: ast.AttachPoint) -> Sequence[Sequence[UsdtArg]]:
    if (ap.target, ap.ns or "prov", ap.func) != ("/bin/t", "prov", "name"):
        raise ElfError(f"{ap.target}: no USDT probe {ap.ns}:{ap.func} (it has prov:name)")
    return [ARGS]


def errors(text: str) -> str:
    with pytest.raises(CompileError) as e:
        analyze(parse(text), formats, usdt=lookup)
    return str(e.value)


@pytest.mark.parametrize("probe", ["usdt:/bin/t:prov:name", "U:/bin/t:prov:name", "usdt:/bin/t:name"])
def test_args_within_the_probes_count_are_accepted(probe: str) -> None:
    analyze(parse(probe + ' { printf("%d %d %d\\n", arg0, arg1, arg2); }'), formats, usdt=lookup)


def test_arg_beyond_the_count_has_a_caret_diagnostic() -> None:
    msg = errors('usdt:/bin/t:prov:name { printf("%d\\n", arg3); }')
    assert ("stdin:1:40-44: ERROR: arg3 is not available: usdt probe usdt:/bin/t:prov:name has 3 "
            "arguments") in msg
    assert msg.rstrip().endswith(" " * 39 + "~~~~")


def test_count_unknown_at_compile_time_accepts_any_arg() -> None:
    analyze(parse('usdt:/bin/t:prov:name { printf("%d\\n", arg9); }'), formats)


def test_unknown_probe_is_reported_at_the_attach_point() -> None:
    msg = errors('usdt:/bin/t:prov:nope { printf("%d\\n", arg0); }')
    assert "stdin:1:1-22: ERROR: /bin/t: no USDT probe prov:nope (it has prov:name)" in msg


def test_argn_elsewhere_names_usdt_among_the_allowed_probes() -> None:
    assert "can only be used with uprobe, kprobe, usdt and rawtracepoint probes" in \
        errors('tracepoint:a:b { printf("%d\\n", arg0); }')


def test_codegen_is_a_kprobe_reading_the_argument_register() -> None:
    script = compile_script('usdt:/bin/t:prov:name { printf("%d\\n", arg0); }', formats,
                            options=Options(usdt=lookup))
    (probe,) = script.probes
    assert probe.program.type == ProgType.KPROBE
    insns = probe.program.insns
    assert not isinstance(insns, bytes)
    loads = [i for i in insns if i.opcode == 0x79 and i.off == X86_64_PT_REGS["rdi"]]  # ldxdw
    assert loads, "arg0 (%rdi) must be read from pt_regs"


def test_sites_with_different_layouts_dispatch_on_the_attach_cookie() -> None:
    other = parse_usdt_args("-4@%esi -2@$3 1@%al", "x86_64")

    def two_sites(ap: ast.AttachPoint) -> Sequence[Sequence[UsdtArg]]:
        return [ARGS, other]

    one = compile_script('usdt:/bin/t:prov:name { printf("%d\\n", arg0); }', formats,
                         options=Options(usdt=lookup)).probes[0].program.insns
    two = compile_script('usdt:/bin/t:prov:name { printf("%d\\n", arg0); }', formats,
                         options=Options(usdt=two_sites)).probes[0].program.insns
    assert not isinstance(one, bytes) and not isinstance(two, bytes)
    cookie = [i for i in two if i.opcode == 0x85 and i.imm == Helper.GET_ATTACH_COOKIE]
    assert len(cookie) == 1 and not [i for i in one if i.opcode == 0x85 and i.imm == Helper.GET_ATTACH_COOKIE]
    offsets = {i.off for i in two if i.opcode == 0x79 and i.src == 6}  # ldxdw from the saved context
    assert {X86_64_PT_REGS["rdi"], X86_64_PT_REGS["rsi"]} <= offsets


def test_count_is_that_of_the_site_with_fewest_arguments() -> None:
    def sites(ap: ast.AttachPoint) -> Sequence[Sequence[UsdtArg]]:
        return [ARGS, ARGS[:2]]

    with pytest.raises(CompileError, match="has 2 arguments"):
        analyze(parse('usdt:/bin/t:prov:name { printf("%d\\n", arg2); }'), formats, usdt=sites)
