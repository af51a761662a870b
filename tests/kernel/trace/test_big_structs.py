"""Struct values larger than the BPF stack (task_struct, mm_struct, signal_struct, files_struct) copied
through the per-CPU scratch map, run in the kernel.

The oracle is the kernel itself: the same probe reads members one by one through BTF (the path the
bpftrace comparisons in test_trace_vs_bpftrace.py cover), and the whole-struct copy must show the same
values. bpftrace 0.17 refuses every struct copy past the 512-byte stack ("Looks like the BPF stack limit
of 512 bytes is exceeded", checked by the last test), and prints nothing for the struct types of 449 to
488 bytes it accepts here; what it does run, a variable holding a big struct, is compared.
"""

from __future__ import annotations

import re

import pytest

from .test_trace_vs_bpftrace import BPFKIT, bpftrace, compare, run

pytestmark = pytest.mark.kernel


def _trace(script: str) -> list[str]:
    out = run([*BPFKIT, "-q", "-e", script])
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")


def _member(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    assert m is not None, f"{pattern!r} not in {text[:300]}..."
    return m[1]


def test_a_task_struct_copied_to_a_map_matches_its_fields() -> None:
    lines = _trace('BEGIN { @t = *curtask; printf("%d %d %s\\n", curtask->pid, curtask->tgid, '
                   "curtask->comm); exit(); }")
    pid, tgid, comm = lines[0].split(" ")
    shown = next(ln for ln in lines if ln.startswith("@t: { .thread_info = { "))
    assert _member(shown, r", \.pid = (-?\d+), \.tgid = ") == pid
    assert _member(shown, r", \.tgid = (-?\d+), ") == tgid
    assert _member(shown, r", \.comm = ([^,]*), ") == comm
    assert shown.endswith(" }")


def test_print_of_an_mm_struct_matches_its_fields() -> None:
    lines = _trace('BEGIN { print(*curtask->mm); printf("%lu %lu\\n", curtask->mm->mmap_base, '
                   "curtask->mm->task_size); exit(); }")
    base, size = lines[1].split(" ")
    assert lines[0].startswith("{ ") and lines[0].endswith(" }")
    assert _member(lines[0], r"\.mmap_base = (\d+),") == base
    assert _member(lines[0], r"\.task_size = (\d+),") == size


def test_printf_mixes_a_big_struct_with_other_arguments() -> None:
    lines = _trace('BEGIN { printf("%d|%s|%s|%d\\n", 42, *curtask->signal, curtask->comm, '
                   "curtask->signal->nr_threads); exit(); }")
    first, struct_text, comm, threads = lines[0].split("|")
    assert first == "42" and comm  # the arguments after the struct are where they belong
    assert struct_text.startswith("{ ") and struct_text.endswith(" }")
    assert _member(struct_text, r"\.nr_threads = (-?\d+),") == threads


def test_keyed_map_of_big_structs_and_end_probes() -> None:
    lines = _trace('BEGIN { @f[1, "begin"] = *curtask->files; @n = curtask->files->next_fd; exit(); } '
                   'END { @f[2, "end"] = *curtask->files; }')
    begin = next(ln for ln in lines if ln.startswith("@f[1, begin]: { "))
    assert any(ln.startswith("@f[2, end]: { ") for ln in lines)
    n = next(ln for ln in lines if ln.startswith("@n: "))[4:]
    assert _member(begin, r"\.next_fd = (\d+),") == n


def test_a_variable_holds_a_big_struct_as_bpftrace_does() -> None:
    """bpftrace 0.17 reads a struct variable's members where the struct lies, at any size: the same
    output (fields that are equal in both tools' processes)."""
    compare(["-e", "BEGIN { $t = *curtask; $m = *curtask->mm; printf(\"%d %d %d %d %d %d\\n\", $t.prio, "
             "$t.static_prio, $t.se.load.weight, $t.policy, $m.map_count > 0, $t.pid == pid); exit(); }"])


def test_a_variable_cannot_hold_a_big_map_value() -> None:
    out = run([*BPFKIT, "-e", "BEGIN { @t = *curtask; $t = @t; exit(); }"])
    assert out.returncode == 1
    assert out.stderr.splitlines()[:3] == [
        "stdin:1:24-31: ERROR: 'struct task_struct' is 3264 bytes: too large for a variable (variables live "
        "on the 512-byte BPF stack); a struct this large can only be copied to a map (@x = ...), printed "
        "(print(), printf()) or read field by field, from where it lies (*ptr, ptr->member, or a variable or "
        "map holding it)", "BEGIN { @t = *curtask; $t = @t; exit(); }", "                       ~~~~~~~"]


def test_members_of_a_map_held_task_struct_match_the_live_fields() -> None:
    """``@t.pid`` reads the map's value where it lies (a lookup, then the member): the same values as
    curtask's own fields; the value copied to another map and printf'ed whole shows them too."""
    lines = _trace('BEGIN { @t = *curtask; @k[7] = *curtask; $p = @t.pid; '
                   'printf("%d %d %s %d\\n", $p, curtask->pid, @k[7].comm, @k[8].pid); '
                   'if (@t.tgid == curtask->tgid) { printf("same tgid\\n"); } '
                   '@u = @t; printf("%s\\n", @k[7]); clear(@k); exit(); }')
    pid, live, comm, missing = lines[0].split(" ")
    assert pid == live and missing == "0" and comm
    assert lines[1] == "same tgid"
    assert _member(lines[2], r", \.pid = (-?\d+), \.tgid = ") == pid
    assert _member(lines[2], r", \.comm = ([^,]*), ") == comm
    copied = next(ln for ln in lines if ln.startswith("@u: { .thread_info = { "))
    assert _member(copied, r", \.pid = (-?\d+), \.tgid = ") == pid


def test_a_call_staging_more_than_the_per_cpu_limit_is_refused_before_loading() -> None:
    """Eleven task_structs and the id take 8 + 11 * 3264 bytes, past the kernel's 32 KiB per-CPU value
    (it refuses the map with E2BIG): a caret error at the call, before anything is created; ten fit."""
    args = ", ".join(["*curtask"] * 11)
    script = f'BEGIN {{ printf("{"%s" * 11}", {args}); exit(); }}'
    out = run([*BPFKIT, "-e", script])
    assert out.returncode == 1
    first = out.stderr.splitlines()[0]
    end = script.index("); exit()") + 2  # the call's span: printf(...)
    assert first.startswith(f"stdin:1:9-{end}: ERROR: the values of this call take 35912 bytes "
                            "together"), out.stderr
    ten = ", ".join(["*curtask"] * 10)
    assert run([*BPFKIT, "-q", "-e", f'BEGIN {{ printf("{"%s" * 10}\\n", {ten}); exit(); }}']).returncode == 0


@pytest.mark.parametrize("script", ["BEGIN { @t = *curtask; exit(); }",
                                    "BEGIN { print(*curtask->files); exit(); }"])
def test_bpftrace_refuses_what_bpfkit_stages(script: str) -> None:
    """Where bpfkit goes past bpftrace 0.17: bpftrace assembles the copy on the stack and LLVM refuses."""
    ref = run([bpftrace(), "-e", script])
    assert ref.returncode != 0 and "BPF stack limit of 512 bytes is exceeded" in ref.stderr
    assert run([*BPFKIT, "-q", "-e", script]).returncode == 0
