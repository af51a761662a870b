"""The compiler's output, run in the userspace VM: BEGIN/END (and other probes with a given context).

Expected texts are what bpftrace 0.17 prints for the same scripts (checked live against bpftrace by
tests/kernel/trace); here they pin the compiler + runtime formatting without a kernel.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bpfkit._records import replace
from bpfkit.errors import BpfkitError, CompileError
from bpfkit.lang import ast
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.semantic import KfuncInfo
from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format
from bpfkit.lang.types import INT32, INT64, UINT64

from .trace_vm import no_formats, run_script

TAIL = "\n\n"


def test_hello() -> None:
    assert run_script(r'BEGIN { printf("hello %d\n", 42); exit(); }') == "hello 42\n" + TAIL


def test_exit_stops_the_probe_and_end_runs() -> None:
    out = run_script(r'BEGIN { printf("a\n"); exit(); printf("b\n"); } END { printf("end\n"); }')
    assert out == "a\nend\n" + TAIL


def test_arithmetic_and_logic() -> None:
    out = run_script(r'BEGIN { printf("%d\n", 10 / 3 * 2 % 5 - (1 << 4) ^ 3 & 6 | 8); '
                     r'printf("%d %d %d\n", -7 / 2, 5 > 3 && 2 > 1, !0); '
                     r'printf("%d %d %d %d\n", 1 ? 2 : 3, (uint8)257, (int16)-1, 7 % 0); exit(); }')
    assert out == "-5\n-4 1 1\n2 1 -1 0\n" + TAIL


def test_variables_loops_and_control_flow() -> None:
    out = run_script(r'BEGIN { $i = 0; while ($i < 5) { $i++; if ($i == 2) { continue; } '
                     r'if ($i == 4) { break; } printf("%d\n", $i); } '
                     r'unroll(3) { $i += 10; } if ($i > 30) { printf("big %d\n", $i); } else { exit(); } }')
    assert out == "1\n3\nbig 34\n" + TAIL


def test_strings() -> None:
    out = run_script(r'BEGIN { $s = "abc"; if ($s == "abc") { printf("eq\n"); } '
                     r'if ($s != "abd") { printf("ne\n"); } $t = "abc"; if ($s == $t) { printf("same\n"); } '
                     r'printf("[%5s|%-5s|%.2s]\n", $s, "x", "hello"); @m[$s] = 1; exit(); }')
    assert out == "eq\nne\nsame\n[  abc|x    |he]\n" + TAIL + "@m[abc]: 1\n"


def test_maps_sorted_like_bpftrace() -> None:
    out = run_script('BEGIN { @k[3] = 5; @k[1] = 9; @k[2] = 1; @s[3] = sum(1); @s[1] = sum(9); '
                     '@m["b"] = min(1); @m["a"] = min(3); @v[3] = avg(5); @v[1] = avg(2); @neg = -5; '
                     '@t[1] = (1, "ab"); @n[-1, "a"] = count(); @x = max(3); @x = max(9); @x = max(4); '
                     'exit(); }')
    assert out == TAIL + ("@k[2]: 1\n@k[3]: 5\n@k[1]: 9\n@m[b]: 1\n@m[a]: 3\n@n[-1, a]: 1\n@neg: -5\n"
                          "@s[3]: 1\n@s[1]: 9\n@t[1]: (1, ab)\n@v[1]: 2\n@v[3]: 5\n\n@x: 9\n")


def test_hist_and_lhist() -> None:
    out = run_script('BEGIN { @h = hist(0); @h = hist(-1); @h = hist(1); @h = hist(1024); @h = hist(3); '
                     '@l = lhist(-1, 0, 10, 2); @l = lhist(12, 0, 10, 2); @l = lhist(5, 0, 10, 2); '
                     '@l = lhist(5, 0, 10, 2); exit(); }')
    bar = "@" * 52
    half = "@" * 26
    assert out == TAIL + (
        "@h: \n"
        f"(..., 0)               1 |{bar}|\n"
        f"[0]                    1 |{bar}|\n"
        f"[1]                    1 |{bar}|\n"
        f"[2, 4)                 1 |{bar}|\n"
        + "".join(f"[{a}, {b})".ljust(16) + f"       0 |{' ' * 52}|\n"
                  for a, b in (("4", "8"), ("8", "16"), ("16", "32"), ("32", "64"), ("64", "128"),
                               ("128", "256"), ("256", "512"), ("512", "1K")))
        + f"[1K, 2K)               1 |{bar}|\n\n"
        "@l: \n"
        f"(..., 0)               1 |{half:<52}|\n"
        f"[0, 2)                 0 |{' ' * 52}|\n"
        f"[2, 4)                 0 |{' ' * 52}|\n"
        f"[4, 6)                 2 |{bar}|\n"
        f"[6, 8)                 0 |{' ' * 52}|\n"
        f"[8, 10)                0 |{' ' * 52}|\n"
        f"[10, ...)              1 |{half:<52}|\n\n")


def test_stats_and_keyed_hist() -> None:
    out = run_script('BEGIN { @st = stats(4); @st = stats(7); @h[2] = hist(1); @h[1] = hist(1); '
                     '@h[1] = hist(2); exit(); }')
    bar = "@" * 52
    assert out == TAIL + (f"@h[2]: \n[1]                    1 |{bar}|\n\n"
                          f"@h[1]: \n[1]                    1 |{bar}|\n[2, 4)                 1 |{bar}|\n\n"
                          "@st: count 2, average 5, total 11\n\n")


def test_increments_compound_assign_delete_and_tuples() -> None:
    out = run_script(r'BEGIN { unroll(3) { @u++; } @w += 5; @w -= 2; @x[1] = 1; @x[2] = 2; $a = @x[1]--; '
                     r'printf("%d %d %d\n", $a, @x[1], ++@x[2]); @d[1] = 1; @d[2] = 2; delete(@d[1]); '
                     r'$t = (7, "s"); printf("%d %s\n", $t.0, $t.1); exit(); }')
    assert out == "1 0 3\n7 s\n" + TAIL + "@d[2]: 2\n@u: 3\n@w: 3\n@x[1]: 0\n@x[2]: 3\n"


def test_print_clear_zero() -> None:
    out = run_script('BEGIN { @a[1] = count(); @a[2] = count(); print(@a); clear(@a); @b = sum(5); zero(@b); '
                     'print(@b); print(3); exit(); }')
    assert out == "@a[1]: 1\n@a[2]: 1\n@b: 0\n3\n" + TAIL + "\n@b: 0\n"


def test_strncmp() -> None:
    out = run_script(r'BEGIN { printf("%d %d %d\n", strncmp("abc", "abd", 2), strncmp("abc", "abd", 3), '
                     r'strncmp("ab", "ab", 10)); exit(); }')
    assert out == "0 1 0\n" + TAIL


def test_unsafe_functions_need_the_flag() -> None:
    with pytest.raises(CompileError, match=r"system\(\) is an unsafe function being used in safe mode"):
        compile_script('BEGIN { system("ls"); }', no_formats)
    compile_script('BEGIN { system("ls"); signal("SIGUSR1"); }', no_formats, options=Options(unsafe=True))


def test_positional_parameters() -> None:
    out = run_script(r'BEGIN { printf("%d %s %d\n", $1 + 1, str($2), $#); exit(); }', params=("41", "x"))
    assert out == "42 x 2\n" + TAIL


def test_builtins_from_the_vm_task() -> None:
    out = run_script(r'BEGIN { printf("%s %s %d\n", probe, comm, pid > 0); exit(); }')
    assert out == "BEGIN python 1\n" + TAIL


FORMAT = """name: sys_enter_openat
ID: 1
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:char name[8];\toffset:24;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] path;\toffset:32;\tsize:4;\tsigned:0;
\tfield:short delta;\toffset:36;\tsize:2;\tsigned:1;
"""


def test_tracepoint_args_from_the_record() -> None:
    fmt = parse_format(FORMAT, "syscalls", "sys_enter_openat")

    def formats(cat: str, name: str) -> TracepointFormat | None:
        return fmt if (cat, name) == ("syscalls", "sys_enter_openat") else None

    record = bytearray(48)
    struct.pack_into("<i", record, 8, 257)
    struct.pack_into("<q", record, 16, -100)
    record[24:32] = b"openat\0\0"
    struct.pack_into("<I", record, 32, (5 << 16) | 40)
    struct.pack_into("<h", record, 36, -3)
    record[40:45] = b"/etc\0"
    out = run_script(r'tracepoint:syscalls:sys_enter_openat /args->__syscall_nr == 257/ '
                     r'{ printf("%d %d %s %s %d\n", args->__syscall_nr, args.dfd, args->name, args->path, '
                     r'args->delta); @[args->name] = count(); }',
                     formats=formats, ctx=lambda provider: bytes(record))
    assert out == "257 -100 openat /etc -3\n" + TAIL + "@[openat]: 1\n"


def test_kfunc_args_and_retval_from_the_context() -> None:
    info = KfuncInfo(42, (("fd", INT32), ("count", UINT64)), INT64)
    ctx = struct.pack("<iiQq", -3, 0, 100, -7)  # args are u64 slots: fd's upper half is garbage-free here
    out = run_script(r'kfunc:f { printf("%d %d\n", args.fd, args->count); } '
                     r'kretfunc:f { printf("%d\n", retval); @c[args.fd] = count(); }',
                     kfuncs=lambda name: info if name == "f" else None, ctx=lambda provider: ctx)
    assert out == "-3 100\n-7\n" + TAIL + "@c[-3]: 1\n"
    script = compile_script("kfunc:f { }", no_formats, options=Options(kfuncs=lambda n: info))
    assert script.probes[0].program.attach_btf_id == 42
    assert script.probes[0].program.expected_attach_type is not None


def test_wildcards_expand_before_typing_args() -> None:
    fmt = parse_format(FORMAT, "syscalls", "sys_enter_openat")

    def expand(ap: ast.AttachPoint) -> list[ast.AttachPoint]:
        return [replace(ap, target="syscalls", func=n, raw=f"tracepoint:syscalls:{n}") for n in ("a", "b")]

    script = compile_script(r'tracepoint:syscalls:sys_enter_* { printf("%s\n", args->name); }',
                            lambda c, n: fmt, expand=expand)
    assert [p.name for p in script.probes] == ["tracepoint:syscalls:a", "tracepoint:syscalls:b"]


def test_programs_use_the_expected_types() -> None:
    script = compile_script('BEGIN { exit(); } tracepoint:a:b { } profile:hz:99 { } uprobe:/bin/sh:main { }',
                            lambda c, n: parse_format("format:\n", c, n), options=Options())
    assert [p.program.type.name for p in script.probes] == ["RAW_TRACEPOINT", "TRACEPOINT", "PERF_EVENT",
                                                           "KPROBE"]


def test_too_much_stack_is_a_compile_error() -> None:
    args = ", ".join(["comm"] * 9)
    with pytest.raises(CompileError) as e:
        compile_script(f'BEGIN {{ printf("{"%s" * 9}", {args}); }}', no_formats)
    assert "512 bytes of BPF stack" in str(e.value)
    assert "printf(" in str(e.value)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "data" / "bt").glob("*.bt")),
                         ids=lambda p: p.name)
def test_every_sample_script_compiles_or_fails_cleanly(path: Path) -> None:
    """Unsupported features are diagnostics, never crashes."""
    fmt = parse_format("format:\n\tfield:int x;\toffset:8;\tsize:4;\tsigned:1;\n", "a", "b")
    try:
        script = compile_script(path.read_text(), lambda c, n: fmt, name=path.name)
    except BpfkitError as e:
        assert str(e).startswith(path.name)
    else:
        assert script.probes
