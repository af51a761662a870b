"""Casts of user addresses to struct pointers read user memory, run in the kernel against bpftrace 0.17.

A small C program writes a known ``struct __kernel_timespec`` (16 bytes) and a known
``struct bpf_verifier_log`` (1064 bytes: past the 448 bytes a struct copy may take on the BPF stack, so
bpfkit stages its copies in the scratch map) to /dev/null, then passes pointers to them to two functions.
The tracepoint ``syscalls`` ``buf`` argument, uprobe ``argN`` and uretprobe ``retval`` hold user addresses:
cast to a struct pointer, every read through them (``->``, ``*``, ``str()`` of a ``char *`` member, struct
copies) must use bpf_probe_read_user, while ``(struct task_struct *)curtask`` stays a kernel read.
A user address kept in a variable or a map value, offset by arithmetic or read from user memory stays
one, as bpftrace tracks it. An integer pointer cast of a value of no address space (a ternary) reads
with the legacy bpf_probe_read, in every probe type, as bpftrace does.
bpftrace 0.17 reads the same fields correctly and is the oracle for them; it refuses struct copies past
the stack limit (LLVM: "A call to built-in function 'memset' is not supported"), so those are checked
against the values the program wrote.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .test_trace_vs_bpftrace import BPFKIT, compare, run

pytestmark = pytest.mark.kernel

PROGRAM = r"""
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* The layouts of the kernel's struct __kernel_timespec and struct bpf_verifier_log. */
struct ts { long long tv_sec; long long tv_nsec; };
struct vlog { uint64_t start_pos, end_pos; char *ubuf; uint32_t level, len_total, len_max; char kbuf[1024]; };
_Static_assert(sizeof(struct vlog) == 1064, "struct bpf_verifier_log is 1064 bytes");
__attribute__((noinline)) long bpfkit_probe(struct ts *t, struct vlog *v) {
    __asm__ volatile("" ::: "memory"); return t->tv_sec + v->level; }
__attribute__((noinline)) struct vlog *bpfkit_ret(struct vlog *v) {
    __asm__ volatile("" ::: "memory"); return v; }
int main(void) {
    static char text[] = "pointed-to user string";
    static struct ts t = {12345, 678000000};
    static struct vlog v;
    v.start_pos = 7; v.end_pos = 9000000001ULL; v.ubuf = text;
    v.level = 3; v.len_total = 4096; v.len_max = 77;
    strcpy(v.kbuf, "kbuf text in user memory");
    fprintf(stderr, "ubuf=%lu\n", (unsigned long)text);
    int fd = open("/dev/null", O_WRONLY);
    if (write(fd, &t, sizeof t) < 0 || write(fd, &v, sizeof v) < 0) return 1;
    return (int)(bpfkit_probe(&t, &v) + (long)bpfkit_ret(&v)) & 0;
}
"""

TS = "{ .tv_sec = 12345, .tv_nsec = 678000000 }"


@pytest.fixture(scope="module")
def program(build_c: Callable[..., Path]) -> Path:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF (/sys/kernel/btf/vmlinux): struct casts need it")
    return build_c("ucast", {"ucast.c": PROGRAM}, "-O1")


def _write(count: int) -> str:
    return f"tracepoint:syscalls:sys_enter_write /pid == cpid && args->count == {count}/"


def test_tracepoint_buffer_cast_to_a_struct_pointer_matches_bpftrace(program: Path) -> None:
    script = (f"{_write(16)} {{ $p = (struct __kernel_timespec *)args->buf; "
              'printf("%d %d\\n", $p->tv_sec, $p->tv_nsec); print(*(struct __kernel_timespec *)args->buf); '
              "@t = *$p; }\n"
              f"{_write(1064)} {{ $v = (struct bpf_verifier_log *)args->buf; "
              'printf("%lu %lu %d %d %d|%s|\\n", $v->start_pos, $v->end_pos, $v->level, $v->len_total, '
              "$v->len_max, str($v->ubuf)); "
              'printf("%d\\n", ((struct task_struct *)curtask)->tgid == (uint64)pid); }')
    out = compare(["-c", str(program), "-e", script])
    assert out == (f"Attaching 2 probes...\n12345 678000000\n{TS}\n"
                   f"7 9000000001 3 4096 77|pointed-to user string|\n1\n\n\n@t: {TS}\n")


def test_uprobe_arguments_and_retval_cast_to_struct_pointers_match_bpftrace(program: Path) -> None:
    script = (f"uprobe:{program}:bpfkit_probe {{ "
              'printf("%d %d %d %s\\n", ((struct __kernel_timespec *)arg0)->tv_sec, '
              "((struct bpf_verifier_log *)arg1)->len_max, (*(struct __kernel_timespec *)arg0).tv_nsec, "
              "str(((struct bpf_verifier_log *)arg1)->ubuf)); "
              'printf("%d\\n", ((struct task_struct *)curtask)->tgid == (uint64)pid); }\n'
              f"uretprobe:{program}:bpfkit_ret {{ "
              'printf("%d %s\\n", ((struct bpf_verifier_log *)retval)->len_total, '
              "str(((struct bpf_verifier_log *)retval)->ubuf)); }")
    out = compare(["-c", str(program), "-e", script])
    assert out == ("Attaching 2 probes...\n12345 77 678000000 pointed-to user string\n1\n"
                   "4096 pointed-to user string\n\n\n")


def test_a_user_struct_past_the_stack_limit_is_copied_from_user_memory(program: Path) -> None:
    """Staged copies (print, a map value, a variable and its members) of a 1064-byte user struct, in a
    tracepoint and a uprobe; bpftrace 0.17 cannot compile these, so the oracle is what the program
    wrote (the ``ubuf`` pointer's value it prints to stderr)."""
    script = (f"{_write(1064)} {{ $v = (struct bpf_verifier_log *)args->buf; print(*$v); "
              "@v = *(struct bpf_verifier_log *)args->buf; $c = *$v; "
              'printf("%s|%d|%s|%s\\n", $c.kbuf, $c.len_max, str($c.ubuf), $v->kbuf); }\n'
              f"uprobe:{program}:bpfkit_ret {{ @u = *(struct bpf_verifier_log *)arg0; }}")
    out = run([*BPFKIT, "-c", str(program), "-e", script])
    assert out.returncode == 0, out.stderr
    m = re.search(r"^ubuf=(\d+)$", out.stderr, re.M)
    assert m is not None, out.stderr
    shown = (f"{{ .start_pos = 7, .end_pos = 9000000001, .ubuf = {m[1]}, .level = 3, .len_total = 4096, "
             ".len_max = 77, .kbuf = kbuf text in user memory }")
    assert out.stdout == (f"Attaching 2 probes...\n{shown}\n"
                          "kbuf text in user memory|77|pointed-to user string|kbuf text in user memory\n"
                          f"\n\n@u: {shown}\n@v: {shown}\n")


def test_user_addresses_kept_in_variables_and_maps_match_bpftrace(program: Path) -> None:
    """A user address stored in a variable or a map value, or offset by arithmetic, stays a user address
    (bpftrace keeps the address space of values); kernel values stay kernel ones. A ternary has no
    address space (bpftrace 0.17): its casts take the probe's, user in uprobes."""
    script = (f"{_write(16)} {{ $b = args->buf; $x = (uint64)args->buf; @s = args->buf; "
              'printf("%d %d %d %s\\n", ((struct __kernel_timespec *)$b)->tv_sec, '
              "((struct __kernel_timespec *)@s)->tv_nsec, ((struct __kernel_timespec *)($x + 8))->tv_sec, "
              "str($b)); print(*(struct __kernel_timespec *)$b); $n = pid > 0 ? $x : 0; "
              'printf("%d\\n", ((struct __kernel_timespec *)$n)->tv_sec); clear(@s); }\n'
              f"uprobe:{program}:bpfkit_probe {{ $a = arg0; $p = (struct __kernel_timespec *)$a; @v = arg1; "
              "$v = (struct bpf_verifier_log *)(@v + 0); $w = (uint64)$v->ubuf; $z = 1 ? arg0 : 0; "
              'printf("%d %d %d %s|%s|%s\\n", $p->tv_sec, $v->len_max, '
              "((struct __kernel_timespec *)$z)->tv_nsec, str($v->ubuf), str($w), "
              "str(*(uint64 *)(arg1 + 16))); $t = curtask; $u = (uint64)curtask; "
              'printf("%d %d\\n", ((struct task_struct *)$t)->tgid == (uint64)pid, '
              "((struct task_struct *)$u)->tgid == (uint64)pid); clear(@v); }")
    out = compare(["-c", str(program), "-e", script])
    assert out == (f"Attaching 2 probes...\n12345 678000000 678000000 90\n{TS}\n0\n"
                   "12345 77 678000000 pointed-to user string|pointed-to user string|pointed-to user string\n"
                   "1 1\n\n\n\n\n")


def test_values_read_from_user_memory_and_ternaries_are_read_as_bpftrace_reads_them(program: Path) -> None:
    """An integer read through a user pointer is a user address (the C program's ``ubuf`` member); a
    ternary has no address space: str() of it reads with the legacy helper (either space, as bpftrace
    0.17), while a tracepoint cast of it is a kernel pointer (so bpftrace reads zeros there too)."""
    script = (f"{_write(1064)} {{ $x = (uint64)args->buf + 16; $u = *(uint64 *)$x; "
              'printf("%s|%s|%s|\\n", str(*(uint64 *)(args->buf + 16)), str(pid > 0 ? $u : 0), str($u)); '
              'printf("%d\\n", ((struct bpf_verifier_log *)(pid > 0 ? (uint64)args->buf : 0))->len_max); }\n'
              f"uprobe:{program}:bpfkit_probe {{ $u = *(uint64 *)(arg1 + 16); "
              'printf("%s|%s\\n", str(1 ? $u : 0), '
              "str(((struct bpf_verifier_log *)(1 ? arg1 : 0))->ubuf)); }")
    out = compare(["-c", str(program), "-e", script])
    text = "pointed-to user string"
    assert out == f"Attaching 2 probes...\n{text}|{text}|{text}|\n0\n{text}|{text}\n\n\n"


def test_integer_pointer_casts_of_values_of_no_address_space_read_as_bpftrace_reads_them(
        program: Path, tmp_path: Path) -> None:
    """``*(int8 *)x`` / ``((int64 *)x)[i]`` of a value of no address space (a ternary, a builtin) read
    with the legacy bpf_probe_read in every probe type, as bpftrace 0.17 (``bpftool prog dump xlated``
    shows probe_read_compat there), so a ternary holding a user address reads user memory in a
    tracepoint: the byte ``hello`` starts with, 104, the same as through the user pointer itself."""
    cat = shutil.which("cat")
    assert cat is not None
    (tmp_path / "bpfkitucat").symlink_to(cat)  # a comm no other process has
    sh = shutil.which("sh")
    assert sh is not None
    (tmp_path / "pipe.sh").write_text(f"echo hello | {tmp_path / 'bpfkitucat'} >/dev/null\n")
    script = ('tracepoint:syscalls:sys_enter_write /comm == "bpfkitucat"/ { '
              "$n = pid >= 0 ? (uint64)args->buf : 0; "
              'printf("%d %d %d\\n", *(int8 *)$n, *(int8 *)(uint64)args->buf, ((int8 *)$n)[4]); exit(); }')
    out = compare(["-c", f"{sh} {tmp_path / 'pipe.sh'}", "-e", script])
    assert out == "Attaching 1 probe...\n104 104 111\n\n\n"
    script = (f"uprobe:{program}:bpfkit_probe {{ "
              'printf("%d %d %d\\n", ((int64 *)(1 ? arg0 : 0))[1], *(int64 *)(1 ? arg0 : 0), '
              "*(int8 *)(1 ? arg1 : 0)); }")
    out = compare(["-c", str(program), "-e", script])
    assert out == "Attaching 1 probe...\n678000000 12345 7\n\n\n"
