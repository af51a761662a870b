"""BCC-dialect preparation: tracepoint structs from format text, includes, sections, license (pure)."""

from __future__ import annotations

import pytest

from bpfkit.cc.bcc_source import PRELUDE, is_bcc_dialect, prepare, tracepoint_struct
from bpfkit.errors import CompileError
from bpfkit.lang.tracepoint_format import parse_format

OPENAT_FORMAT = """\
name: sys_enter_openat
ID: 700
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:48;\tsize:4;\tsigned:0;

print fmt: "x"
"""


def test_tracepoint_struct_puts_fields_at_their_offsets() -> None:
    text = tracepoint_struct(parse_format(OPENAT_FORMAT, "syscalls", "sys_enter_openat"), "syscalls",
                             "sys_enter_openat")
    assert text.splitlines() == [
        "struct tracepoint__syscalls__sys_enter_openat {",
        "\tu16 common_type;", "\tu8 common_flags;", "\tu8 common_preempt_count;", "\ts32 common_pid;",
        "\ts32 __syscall_nr;", "\tchar __pad0[4];", "\tu64 dfd;", "\tconst char * filename;",
        "\tchar comm[16];", "\tu32 name; /* __data_loc: offset | length << 16 */", "};"]


def test_prepare_bcc_source() -> None:
    src = ("#include <uapi/linux/ptrace.h>\nBPF_HASH(c);\n"
           "TRACEPOINT_PROBE(syscalls, sys_enter_openat) { return 0; }\n"
           "int probe(struct pt_regs *ctx) { return 0; }\n"
           "static int helper(struct pt_regs *ctx) { return 1; }\n")
    asked = []

    def read(cat: str, ev: str) -> str:
        asked.append((cat, ev))
        return OPENAT_FORMAT

    out = prepare(src, read, "prog.c")
    assert asked == [("syscalls", "sys_enter_openat")]
    assert out.header.startswith(PRELUDE)
    assert "struct tracepoint__syscalls__sys_enter_openat {" in out.header
    lines = out.body.splitlines()
    assert lines[0].startswith("/* #include <uapi/linux/ptrace.h>")  # every change stays on its line
    assert lines[1:3] == src.splitlines()[1:3]
    assert lines[3] == 'SEC("kprobe") int probe(struct pt_regs *ctx) { return 0; }'
    assert lines[4] == "static int helper(struct pt_regs *ctx) { return 1; }"
    assert 'BPF_LICENSE("GPL")' in lines[-1]


def test_declared_license_is_kept() -> None:
    out = prepare('BPF_LICENSE("Dual BSD/GPL");\nBPF_ARRAY(a);\n', lambda c, e: "", "x.c")
    assert out.body.count("BPF_LICENSE(") == 1


def test_missing_tracepoint_is_a_compile_error_naming_the_line() -> None:
    def read(cat: str, ev: str) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(CompileError, match=r"x\.c:2: TRACEPOINT_PROBE\(nope, none\): no tracepoint no"):
        prepare("\nTRACEPOINT_PROBE(nope, none) { return 0; }\n", read, "x.c")


def test_dialect_detection() -> None:
    assert is_bcc_dialect("BPF_HASH(x);")
    assert is_bcc_dialect("int f(struct pt_regs *ctx) { return 0; }")
    assert not is_bcc_dialect('SEC("xdp") int f(struct xdp_md *c) { return 2; }')
