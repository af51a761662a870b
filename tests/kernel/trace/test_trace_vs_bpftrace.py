"""`bpfkit trace` against the real kernel, with bpftrace as the oracle where it is installed.

Each comparison runs the same script under both tools and compares stdout exactly, except that lines of
a map whose values tie are compared as a set (bpftrace leaves ties in hash order; bpfkit sorts them by key).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

DATA = Path(__file__).parents[2] / "data" / "bt"
BPFKIT = [sys.executable, "-m", "bpfkit", "trace"]
_MAP_LINE = re.compile(r"^(@\w*)(\[.*\])?: (-?\d+)$")


def bpftrace() -> str:
    path = shutil.which("bpftrace")
    if path is None:
        pytest.skip("bpftrace is not installed (the oracle for these tests)")
    return path


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def normalise(text: str) -> list[str]:
    """Lines, with each run of same-map, same-value lines sorted (tie order is unspecified)."""
    lines = text.split("\n")
    out: list[str] = []
    for _, group in itertools.groupby(lines, key=lambda ln: (m := _MAP_LINE.match(ln)) and (m[1], m[3])):
        g = list(group)
        out += sorted(g) if _MAP_LINE.match(g[0]) else g
    return out


def compare(args: list[str]) -> str:
    ref = run([bpftrace(), *args])
    assert ref.returncode == 0, ref.stderr
    ours = run([*BPFKIT, *args])
    assert ours.returncode == 0, ours.stderr
    assert normalise(ours.stdout) == normalise(ref.stdout)
    return ours.stdout


def test_hello_is_byte_identical() -> None:
    out = compare(["-e", 'BEGIN { printf("hello %d\\n", 42); exit(); }'])
    assert out == "Attaching 1 probe...\nhello 42\n\n\n"


@pytest.mark.parametrize("script", ["run_maps.bt", "run_control.bt"])
def test_scripts_match_bpftrace(script: str) -> None:
    compare([str(DATA / script)])


def test_json_output_matches_bpftrace() -> None:
    compare(["-f", "json", "-e", 'BEGIN { printf("hi %d\\n", 1); @c = count(); @m[1, "a"] = 5; @h = hist(3); '
             '@s = stats(2); @a = avg(3); @k[1] = avg(4); @l = lhist(-1, 0, 10, 5); '
             '@l = lhist(30, 0, 10, 5); @hk["x"] = hist(0); @hk["y"] = hist(-5); @str["a"] = "b"; '
             '@t = (1, "x"); exit(); }'])


def test_unsafe_and_symbol_functions_match_bpftrace() -> None:
    compare(["--unsafe", "-e", 'BEGIN { printf("%d %d\\n", strncmp("abc", "abd", 2), '
             'strncmp("abc", "abd", 3)); printf("%s|%s\\n", ksym(0), ksym(1)); @k[ksym(0)] = count(); '
             'cat("/etc/hostname"); '
             'system("echo hi %d", 5); exit(); }'])


def test_join_prints_the_argument_vector() -> None:
    echo = shutil.which("echo") or "/bin/echo"
    out = run([*BPFKIT, "-c", f"{echo} a b c", "-e", "tracepoint:syscalls:sys_enter_execve /pid == cpid/ "
               '{ join(args->argv); join(args->argv, ","); }'])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"{echo} a b c" in lines and f"{echo},a,b,c" in lines and "a b c" in lines  # the last: echo's


def test_signal_kills_the_child() -> None:
    start = time.monotonic()
    out = run([*BPFKIT, "--unsafe", "-c", "sleep 10", "-e", "tracepoint:syscalls:sys_enter_clock_nanosleep "
               '/pid == cpid/ { signal("SIGKILL"); printf("sent\\n"); }'], timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Attaching 1 probe...\nsent\n\n\n" and time.monotonic() - start < 8


def test_quiet_and_positional_parameters() -> None:
    out = compare(["-q", "-e", 'BEGIN { printf("%d %s\\n", $1 + 1, str($2)); exit(); }', "41", "word"])
    assert out == "42 word\n\n\n"


def _first_event(argv: list[str]) -> str:
    """Start a tracer, run cat once it is attached, return its output."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Attaching"), first
        time.sleep(1.0)  # both tools print "Attaching" before they attach
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            subprocess.run(["cat", "/etc/hostname"], capture_output=True, check=True)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        return first + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_openat_tracepoint_end_to_end() -> None:
    ours = _first_event([*BPFKIT, str(DATA / "run_openat.bt")])
    assert ours == _first_event([bpftrace(), str(DATA / "run_openat.bt")])
    assert ours.splitlines()[1].startswith("/")


def test_child_command_and_cpid() -> None:
    """Every file the child opens is counted (the child runs only once the probe is attached)."""
    script = ('tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @[str(args->filename)] = count(); } '
              'END { printf("done\\n"); }')
    argv = ["-c", f"{shutil.which('cat')} /etc/hostname", "-e", script]
    ours = run([*BPFKIT, *argv])
    assert ours.returncode == 0, ours.stderr
    ref = run([bpftrace(), *argv])
    assert ref.returncode == 0, ref.stderr
    assert "\ndone\n\n\n" in ours.stdout and "@[/etc/hostname]: 1\n" in ours.stdout
    # The same files in the same format, as a set (counts tie). A string read can fail when the page is
    # not yet faulted in (either tool then records "@[]"), so such an entry may stand for any one file.
    mine = {ln for ln in ours.stdout.splitlines() if ln.startswith("@[")}
    theirs = {ln for ln in ref.stdout.splitlines() if ln.startswith("@[")}
    diff = mine ^ theirs
    assert not diff or (len(diff) == 2 and any(ln.startswith("@[]:") for ln in diff)), diff


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the uprobe target)")
    d = tmp_path_factory.mktemp("bt")
    (d / "t.c").write_text(
        "#include <stdlib.h>\n#include <stdio.h>\n"
        '__attribute__((noinline)) int bpfkit_target(int x) { __asm__ volatile(""); return x * 2 + 1; }\n'
        "int main(int c, char **v) { int n = atoi(v[1]); long s = 0;\n"
        '  for (int i = 0; i < n; i++) s += bpfkit_target(i); printf("%ld\\n", s); return 0; }\n')
    subprocess.run(["gcc", "-O1", "-o", str(d / "t"), str(d / "t.c")], check=True)
    return d / "t"


def test_uprobe_uretprobe_args_and_retval(target: Path) -> None:
    script = (f"uprobe:{target}:bpfkit_target {{ @a[arg0] = count(); }} "
              f"uretprobe:{target}:bpfkit_target {{ @r = sum(retval); }}")
    out = compare(["-c", f"{target} 5", "-e", script])
    assert "@r: 25" in out and "@a[4]: 1" in out


def test_pid_filter_and_exit_with_the_process(target: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "1"])
    try:
        out = run([*BPFKIT, "-p", str(sleeper.pid), "-e", "interval:ms:50 { @n = count(); }"], timeout=30)
    finally:
        sleeper.wait()
    assert out.returncode == 0 and re.search(r"^@n: \d+$", out.stdout, re.M), out


def test_interval_profile_and_software_events() -> None:
    script = ("interval:ms:100 { @n++; if (@n == 3) { exit(); } } profile:hz:99 { @p = count(); } "
              'software:cpu-clock:1000000 { @s = count(); } END { printf("n=%d\\n", @n); }')
    out = run([*BPFKIT, "-e", script])
    assert out.returncode == 0, out.stderr
    assert "n=3\n" in out.stdout and "@n: 3" in out.stdout
    assert re.search(r"^@p: \d+$", out.stdout, re.M) and re.search(r"^@s: \d+$", out.stdout, re.M)


def test_kstack_keys_are_symbolized_like_bpftrace() -> None:
    out = run([*BPFKIT, "-e", "BEGIN { @[kstack] = count(); exit(); }"])
    assert out.returncode == 0, out.stderr
    body = out.stdout.split("\n\n\n", 1)[1]
    assert body.startswith("@[\n    ") and body.endswith("\n]: 1\n")
    frames = body[3:-len("]: 1\n")].splitlines()
    assert any(f.strip().startswith("__sys_bpf") for f in frames), frames
    assert all(re.fullmatch(r"    [\w.]+(\+\d+)?|    0x[0-9a-f]+", f) for f in frames), frames


def test_list_probes_like_bpftrace() -> None:
    for args in (["-l", "tracepoint:sched:sched_process_e*"],
                 ["-lv", "tracepoint:syscalls:sys_enter_openat"]):
        ours = run([*BPFKIT, *args])
        ref = run([bpftrace(), *args])
        assert ours.returncode == 0 and ours.stdout == ref.stdout and ours.stdout


def test_verifier_rejection_points_at_the_script_line() -> None:
    out = run([*BPFKIT, "-e", "BEGIN {\n  $i = 0;\n  while ($i >= 0) { $i = $i + 0; }\n}"])
    assert out.returncode == 1
    first = out.stderr.splitlines()[0]
    assert first.startswith("stdin:3:") and "the kernel verifier rejected BEGIN" in first, out.stderr


def test_kprobe_refused_with_a_clear_error() -> None:
    out = run([*BPFKIT, "-e", "kprobe:do_sys_openat2 { }"])
    if out.returncode == 0:
        pytest.skip("this kernel has kprobes")
    assert out.stderr.startswith("stdin:1:1-22: ERROR: kprobe probes cannot be attached here")


def test_kfunc_compiles_against_btf_and_is_refused_clearly() -> None:
    from bpfkit.kernel.features import probe_tracing_programs

    if probe_tracing_programs():
        pytest.skip("this kernel loads fentry/fexit programs")
    out = run([*BPFKIT, "-e", "kfunc:vfs_read { @[args->count] = count(); }"])
    assert out.returncode == 1
    assert out.stderr.startswith("stdin:1:1-15: ERROR: kfunc probes cannot be attached here")
    bad = run([*BPFKIT, "-e", "kfunc:vfs_read { @[args->nope] = count(); }"])
    assert "Can't find function parameter nope" in bad.stderr


def test_compile_errors_render_like_bpftrace() -> None:
    script = 'BEGIN { printf("%d\\n", @x); }'
    ours = run([*BPFKIT, "-e", script])
    assert ours.returncode == 1
    assert ours.stderr.splitlines()[:3] == [
        "stdin:1:24-26: ERROR: Undefined map: @x", script, " " * 23 + "~~"]


def test_sigint_runs_end_and_prints_maps() -> None:
    proc = subprocess.Popen([*BPFKIT, "-e", 'interval:ms:10 { @n = count(); } END { printf("bye\\n"); }'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(0.3)
    proc.send_signal(2)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.startswith("bye\n\n\n@n: ")
    assert not os.path.exists(f"/proc/{proc.pid}")


def test_btf_struct_access_matches_bpftrace() -> None:
    compare(["-e", 'BEGIN { printf("%d %d\\n", curtask->pid == pid, curtask->real_parent->tgid > 0); '
             'printf("%d %d\\n", ((struct task_struct *)curtask)->tgid == pid, (*curtask).pid == tid); '
             'exit(); }'])


def test_btf_pointer_chasing_in_a_tracepoint_matches_bpftrace() -> None:
    script = (
        'tracepoint:syscalls:sys_enter_openat /pid == cpid/ {\n'
        '  printf("%s %s %d %d\\n", curtask->comm, curtask->group_leader->comm, '
        'curtask->real_parent->tgid > 0, curtask->pid == tid);\n'
        '  printf("%d %d %d %u\\n", curtask->prio, curtask->static_prio, curtask->exit_code, '
        'curtask->flags & 0x200000);\n'
        '  printf("%d %d %d %d\\n", curtask->in_execve, curtask->sched_reset_on_fork, curtask->se.on_rq, '
        'curtask->signal->nr_threads);\n'
        '  printf("%d %d\\n", curtask->mm->map_count > 0, curtask->real_parent->comm == curtask->comm);\n'
        '  $t = curtask; printf("%d %s\\n", $t->parent->pid > 0, $t->comm);\n'
        '  @[curtask->comm, curtask->tgid == pid] = curtask->static_prio;\n'
        '  exit();\n'
        '}\n')
    out = compare(["-c", "/usr/bin/cat /dev/null", "-e", script])
    assert "cat cat 1 1\n" in out


def test_tracepoint_struct_pointer_args_match_bpftrace() -> None:
    out = compare(["-c", "/usr/bin/sleep 0.25", "-e",
                   'tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { '
                   'printf("%d %d\\n", args->rqtp->tv_sec, args->rqtp->tv_nsec); exit(); }'])
    assert "0 250000000\n" in out


def test_print_top_and_div_match_bpftrace() -> None:
    compare(["-e", 'BEGIN { @a[1] = 10; @a[2] = 25; @a[3] = -7; @a[4] = 100; print(@a, 2); '
             'print(@a, 0, 10); print(@a, 3, 4); @h = hist(5); @h = hist(5); @h = hist(100); '
             'print(@h, 1, 2); '
             '@k[1] = hist(3); @k[2] = hist(9); @k[2] = hist(9); print(@k, 1); '
             '@l[1] = lhist(3, 0, 10, 2); @l[1] = lhist(3, 0, 10, 2); print(@l, 1, 2); '
             '@v[1] = avg(10); @v[2] = avg(30); print(@v, 1, 3); @s[1] = stats(10); print(@s, 1, 3); '
             '@t[1] = (3, "a"); print(@t, 1, 2); clear(@a); clear(@h); clear(@t); exit(); }'])


def test_strftime_matches_bpftrace() -> None:
    compare(["-e", 'BEGIN { printf("%s|\\n", strftime("%Y-%m-%d %Z", nsecs)); '
             '@[strftime("%Y", 0)] = count(); $t = strftime("%s", 5000000000); '
             'printf("%s %s\\n", $t, strftime("%a %b %d %j", 86400000000000)); '
             'print(strftime("%Y", nsecs)); @m = strftime("%Y", 1); @k[1, strftime("%d", 2)] = 3; exit(); }'])


def test_ntop_and_kaddr_match_bpftrace() -> None:
    compare(["-e", 'BEGIN { printf("%s %s|\\n", ntop(0x0100007f), ntop(2, 0x0101a8c0)); '
             '@[ntop(0x0100007f)] = count(); $x = ntop(2, 1); print($x); print(ntop(10, 0x0100007f)); '
             'printf("%lx %s\\n", kaddr("vfs_read"), ksym(kaddr("vfs_read"))); exit(); }'])


def test_buf_matches_bpftrace() -> None:
    out = compare(["-c", "/usr/bin/cat /dev/null", "-e",
                   'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { '
                   'printf("%r|%r|\\n", buf(curtask->comm, 8), buf(kaddr("vfs_read"), 5)); '
                   '@[buf(curtask->comm, 3)] = 1; print(buf(curtask->comm, 2)); $b = buf(curtask->comm, 16); '
                   'printf("%r\\n", $b); exit(); }'])
    assert "cat\\x00\\x00\\x00\\x00\\x00|" in out


def test_kstack_modes_and_limits_match_bpftrace() -> None:
    out = compare(["-c", "/usr/bin/cat /dev/null", "-e",
                   'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { '
                   'printf("%s|%s|%s|\\n", kstack(perf, 3), kstack(2), kstack(bpftrace, 1)); '
                   '@[kstack(perf, 2)] = 1; @k = kstack; @j[kstack(3)] = kstack(perf); print(kstack(1)); '
                   'exit(); }'])
    assert "\n\tffffffff" in out and "\n        " in out and "\n    " in out


PIN_TO_EACH_CPU = ("import os\nfor c in (0, 1):\n    os.sched_setaffinity(0, {c})\n"
                   "    for _ in range(5):\n        os.getpid()\n")


def _pin_script(tmp_path: Path) -> str:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    path = tmp_path / "pin.py"
    path.write_text(PIN_TO_EACH_CPU)
    return f"{sys.executable} {path}"


def test_per_cpu_aggregations_match_bpftrace(tmp_path: Path) -> None:
    """Samples on two CPUs: per-CPU copies of every aggregation merge to bpftrace's figures."""
    out = compare(["-c", _pin_script(tmp_path), "-e",
                   'tracepoint:syscalls:sys_enter_getpid /pid == cpid/ { @c = count(); @mx = max(cpu); '
                   '@mn = min(cpu - 5); @s = sum(cpu); @p[cpu] = count(); @a = avg(cpu * 10); '
                   '@h = hist(cpu); @st = stats(cpu); @l = lhist(cpu, 0, 4, 1); }'])
    assert "@c: 10\n" in out and "@mx: 1\n" in out and "@mn: -5\n" in out


def test_reading_per_cpu_aggregations_in_a_probe_sums_the_cpus(tmp_path: Path) -> None:
    out = run([*BPFKIT, "-c", _pin_script(tmp_path), "-e",
               'tracepoint:syscalls:sys_enter_getpid /pid == cpid/ { @c = count(); @mx = max(cpu - 9); '
               '@mn = min(cpu); @s = sum(cpu + 1); } END { printf("%d %d %d %d\\n", @c, @mx, @mn, @s); }'])
    assert out.returncode == 0, out.stderr
    assert "\n10 -8 0 15\n" in out.stdout


def test_for_loops_run_in_the_kernel() -> None:
    """bpftrace 0.17 has no for loops: checked against the values the script stored."""
    out = run([*BPFKIT, "-e",
               'BEGIN { @m[1] = 10; @m[2] = 20; @c["x"] = count(); @c["x"] = count(); '
               'for ($kv : @m) { printf("m %d %d\\n", $kv.0, $kv.1); } '
               'for ($kv : @c) { printf("c %s %d\\n", $kv.0, $kv.1); } '
               'for ($kv : @m) { printf("first\\n"); exit(); } printf("not reached\\n"); } '
               'END { clear(@m); clear(@c); }'])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(lines[1:3]) == ["m 1 10", "m 2 20"]
    assert lines[3:5] == ["c x 2", "first"] and "not reached" not in out.stdout


def test_deep_btf_chains_and_str_of_char_pointers_match_bpftrace() -> None:
    out = compare(["-c", "/usr/bin/cat /dev/null", "-e",
                   'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { printf("%s %s %d\\n", '
                   'str(curtask->mm->exe_file->f_path.dentry->d_name.name), '
                   'str(curtask->fs->pwd.dentry->d_name.name), curtask->cred->uid.val == uid); exit(); }'])
    assert "\ncat " in out and " 1\n" in out


def test_zero_and_print_of_per_cpu_maps_match_bpftrace() -> None:
    compare(["-e", 'BEGIN { @c[1] = count(); @m = max(5); @h = hist(3); zero(@c); zero(@m); zero(@h); '
             'print(@c); print(@m); @c[1] = count(); @m = max(-2); print(@c); print(@m); exit(); }'])


# -- issue 6: language features ---------------------------------------------------------------------


def compare_masked(args: list[str], pattern: str) -> str:
    """`compare`, with the text matching `pattern` (values that differ by nature: addresses) masked."""
    ref = run([bpftrace(), *args])
    assert ref.returncode == 0, ref.stderr
    ours = run([*BPFKIT, *args])
    assert ours.returncode == 0, ours.stderr
    mask = re.compile(pattern)
    assert normalise(mask.sub("<masked>", ours.stdout)) == normalise(mask.sub("<masked>", ref.stdout))
    return ours.stdout


@pytest.fixture(scope="module")
def long_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary whose traced function takes and returns a long that goes negative."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the uprobe target)")
    d = tmp_path_factory.mktemp("bt_long")
    (d / "t.c").write_text(
        "#include <stdlib.h>\n#include <stdio.h>\n"
        '__attribute__((noinline)) long bpfkit_target(long x) { __asm__ volatile(""); return x * 2 + 1; }\n'
        "int main(int c, char **v) { int n = atoi(v[1]); long s = 0;\n"
        '  for (int i = 0; i < n; i++) s += bpfkit_target(i - 3); printf("%ld\\n", s); return 0; }\n')
    subprocess.run(["gcc", "-O1", "-o", str(d / "t"), str(d / "t.c")], check=True)
    return d / "t"


def test_negative_uprobe_args_in_sums_and_keys_match_bpftrace(long_target: Path) -> None:
    """bpftrace 0.17 prints a sum of u64 args unsigned, min/avg/stats signed, and u64 keys signed."""
    script = (f"uprobe:{long_target}:bpfkit_target {{ @s = sum(arg0); @mn = min(arg0); @a = avg(arg0); "
              "@st = stats(arg0); @d = sum(arg0 - 1); @i = sum((int64)arg0); @h = hist(arg0); "
              "@r[arg0] = sum(arg0); @v[arg0] = arg0; @x = arg0 * 1; @p[curtask] = 1; @q = curtask; } "
              f"uretprobe:{long_target}:bpfkit_target {{ @rv = sum(retval); @rvs = min(retval); }}")
    out = compare_masked(["-c", f"{long_target} 2", "-e", script], r"0xffff[0-9a-f]{12}|-1[0-9]{14}")
    assert "@s: 18446744073709551611\n" in out and "@r[-3]: 18446744073709551613\n" in out
    assert re.search(r"^@p\[0xffff[0-9a-f]{12}\]: 1$", out, re.M) and re.search(r"^@q: -1\d{14}$", out, re.M)


def test_reading_aggregations_in_a_probe_where_bpftrace_allows_it() -> None:
    """bpftrace 0.17 lets a count/sum map be copied (not used in arithmetic); bpfkit also reads avg."""
    compare(["-e", "BEGIN { @x = count(); @x = count(); @c = @x; $y = @x; @s = sum(-4); @t = @s; @z = $y; "
             "exit(); }"])
    out = run([*BPFKIT, "-e", 'BEGIN { @a = avg(5); @a = avg(8); @c = count(); if (@c > 0) { '
               'printf("%d %d\\n", @a, @c + 1); } exit(); }'])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Attaching 1 probe...\n6 2\n")


def test_cgroup_path_matches_bpftrace() -> None:
    """Both tools run inside a fresh cgroup v2 child: its path, wildcard filters, unknown ids."""
    from bpfkit.trace.cgroup import hierarchies

    v2 = [point for name, point in hierarchies() if name == "unified"]
    if not v2:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    cg = Path(v2[0]) / f"bpfkit_test_{os.getpid()}" / "sub"
    cg.mkdir(parents=True)
    try:
        script = ('BEGIN { printf("%s|\\n", cgroup_path(cgroup)); print(cgroup_path(cgroup, "uni*")); '
                  'print(cgroup_path(1)); print(cgroup_path(12345678)); $p = cgroup_path(1, "cpu*"); '
                  'printf("%s\\n", $p); exit(); }')
        outs = []
        for tool in ([bpftrace()], BPFKIT):
            argv = ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", *tool, "-e", script]
            done = run(argv)
            assert done.returncode == 0, done.stderr
            outs.append(done.stdout)
        assert outs[1] == outs[0]
        assert f"unified:/{cg.parent.name}/sub|\n" in outs[1]
    finally:
        for _ in range(50):  # the processes leave the cgroup as they are reaped
            try:
                cg.rmdir()
                cg.parent.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@pytest.fixture(scope="module")
def globals_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-PIE binary with globals of each size and a traced function; it prints nothing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the uprobe target)")
    d = tmp_path_factory.mktemp("bt_globals")
    (d / "g.c").write_text(
        "#include <stdlib.h>\n"
        'long glob_long = -77; int glob_int = 42; short glob_short = 7; char glob_char = 120; '
        'char glob_arr[10] = "hello";\n'
        '__attribute__((noinline)) long bpfkit_target(long x) { __asm__ volatile(""); return x * 2 + 1; }\n'
        "int main(int c, char **v) { int n = atoi(v[1]); long s = 0;\n"
        "  for (int i = 0; i < n; i++) s += bpfkit_target(i - 3); return (int)(s & 0); }\n")
    subprocess.run(["gcc", "-O1", "-no-pie", "-o", str(d / "g"), str(d / "g.c")], check=True)
    return d / "g"


def test_uaddr_matches_bpftrace(globals_target: Path) -> None:
    out = compare(["-c", f"{globals_target} 1", "-e",
                   f'uprobe:{globals_target}:bpfkit_target {{ printf("%d %d %d %d %d\\n", '
                   '*uaddr("glob_long"), *uaddr("glob_int"), *uaddr("glob_short"), *uaddr("glob_char"), '
                   '*uaddr("glob_arr")); '
                   'printf("%s\\n", str(uaddr("glob_arr"))); @[uaddr("glob_int")] = 1; exit(); }'])
    assert "-77 42 7 120 1819043176\nhello\n" in out
    bad = run([*BPFKIT, "-e", 'BEGIN { printf("%d\\n", uaddr("glob_int")); }'])
    assert bad.stderr.startswith('stdin:1:24-41: ERROR: uaddr can not be used with "BEGIN" probes\n')


def test_list_uprobes_and_usdt_probes_like_bpftrace(globals_target: Path) -> None:
    patterns = [f"uprobe:{globals_target}:*", f"u:{globals_target}:ma*", f"uretprobe:{globals_target}:bpf*",
                "uprobe:libc:mallo*", "iter:*"]
    python = Path(sys.executable).resolve()
    from bpfkit.kernel.attach.usdt import read_usdt_probes

    if read_usdt_probes(str(python)):  # Debian's python has USDT probes
        patterns += [f"usdt:{python}:*", f"U:{python}:*gc*", f"usdt:{python}:python:function*"]
    for pattern in patterns:
        ours = run([*BPFKIT, "-l", pattern])
        ref = run([bpftrace(), "-l", pattern])
        assert ours.returncode == 0 and ours.stdout == ref.stdout and ours.stdout, (pattern, ours.stderr)
    missing = run([*BPFKIT, "-l", "uprobe:/no/such/binary:*"])
    assert missing.returncode == 1
    assert missing.stderr == ("ERROR: uprobe target file '/no/such/binary' does not exist or is not "
                              "executable\n")


def test_hardware_probes_attach_or_say_why_not() -> None:
    """bpftrace fails to attach without a PMU too ("perf_event_open failed: No such file or directory")."""
    from bpfkit.kernel.attach.perf_event import probe_hardware_events

    out = run([*BPFKIT, "-e", "hardware:cpu-cycles:100000 { @c = count(); if (@c > 2) { exit(); } }"])
    if probe_hardware_events() is None:
        assert out.returncode == 0 and re.search(r"^@c: \d+$", out.stdout, re.M), out
    else:
        assert out.returncode == 1
        assert out.stderr.startswith("stdin:1:1-27: ERROR: hardware probes cannot be attached here: this "
                                     "machine's perf has no hardware events"), out.stderr


def test_address_of_fields_in_the_kernel() -> None:
    """bpftrace 0.17 has no ``&``: checked against what the same fields read directly give."""
    out = run([*BPFKIT, "-e", 'BEGIN { printf("%d %d %d %d\\n", *&curtask->pid == pid, '
               'str(&curtask->comm) == comm, (&curtask->se)->on_rq == curtask->se.on_rq, '
               '(uint64)&curtask->pid > (uint64)curtask); exit(); }'])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Attaching 1 probe...\n1 1 1 1\n\n\n"


def test_path_outside_kfunc_probes_is_refused_like_bpftrace() -> None:
    script = 'tracepoint:syscalls:sys_enter_openat { printf("%s\\n", path(args->filename)); }'
    ours = run([*BPFKIT, "-e", script])
    ref = run([bpftrace(), "-e", script])
    assert ours.returncode == 1 and ref.returncode != 0
    message = ("stdin:1:55-75: ERROR: The path function can only be used with 'kfunc', 'kretfunc', 'iter' "
               "probes")
    assert ours.stderr.splitlines()[0] == message and message in ref.stderr.splitlines()


def test_btf_arrays_match_bpftrace() -> None:
    compare(["-e", 'BEGIN { @a = curtask->cpus_mask.bits; printf("%d\\n", curtask->cpus_mask.bits[0]); '
             '@r = curtask->signal->rlim[7].rlim_cur; print(curtask->cpus_mask.bits); '
             '@b[curtask->cpus_mask.bits] = 1; $v = curtask->cpus_mask.bits; printf("%d\\n", $v[0]); '
             "exit(); }"])


def test_tracepoint_array_arguments_match_bpftrace() -> None:
    out = compare(["-c", "/usr/bin/sleep 0.1", "-e",
                   "tracepoint:raw_syscalls:sys_enter /pid == cpid && args->id == 230/ { "
                   'printf("%d %d %d\\n", args->id, args->args[0], args->args[1]); '
                   "@[args->args[0]] = count(); exit(); }"])
    assert "\n230 0 0\n" in out


def test_iter_probes_walk_the_kernel_tasks() -> None:
    """bpftrace 0.17 refuses iter probes on this kernel ("iter task not available for your kernel
    version"): checked against /proc for a child whose pid, name and open files are known."""
    sleeper = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        pid = sleeper.pid
        out = run([*BPFKIT, "-e", 'iter:task /ctx->task->pid == $1/ { printf("%d %s\\n", ctx->task->tgid, '
                   "ctx->task->comm); } iter:task_file /ctx->task->tgid == $1/ { @files = count(); } "
                   "iter:task { @tasks = count(); }", str(pid)])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Attaching 3 probes...\n{pid} sleep\n\n\n@files: {fds}\n"), out.stdout
    tasks = int(re.search(r"^@tasks: (\d+)$", out.stdout, re.M)[1])  # type: ignore[index]
    assert tasks > 10


def test_struct_values_match_bpftrace() -> None:
    compare(["-e", 'BEGIN { @x = curtask->signal->rlim[3]; print(curtask->signal->rlim[3]); '
             '$r = curtask->signal->rlim[3]; printf("%d\\n", $r.rlim_cur); '
             "@z = curtask->se.load; @k[curtask->signal->rlim[3]] = 1; @c = curtask->cpus_mask; "
             "@u = curtask->nsproxy->uts_ns->name; @m[curtask->cpus_mask] = 1; exit(); }"])


def test_array_and_struct_values_in_json_match_bpftrace() -> None:
    compare(["-f", "json", "-e", "BEGIN { @c = curtask->cpus_mask.bits; @z = curtask->se.load; "
             "@k[curtask->cpus_mask.bits] = 1; @s[curtask->se.load] = 2; "
             "@u = curtask->nsproxy->uts_ns->name; exit(); }"])


def test_pointer_casts_in_uprobes_read_user_memory_like_bpftrace(globals_target: Path) -> None:
    out = compare(["-c", f"{globals_target} 1", "-e",
                   f'uprobe:{globals_target}:bpfkit_target {{ $a = (uint64)uaddr("glob_int"); '
                   'printf("%d %d %d\\n", *(int32 *)$a, ((int32 *)uaddr("glob_int"))[0], '
                   '*(int16 *)((uint64)uaddr("glob_short"))); exit(); }'])
    assert "\n42 42 7\n" in out


def test_path_in_iter_task_file_probes_names_the_open_files() -> None:
    """bpf_d_path is allowed in iterator programs: each file a child holds open, by its path (bpftrace
    0.17 cannot run iter probes here; the oracle is /proc/PID/fd). The path is short: like bpftrace,
    path() keeps 64 bytes."""
    log = Path(f"/tmp/bpfkit_{os.getpid()}.txt")
    with open(log, "w") as err:
        sleeper = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err)
    try:
        out = run([*BPFKIT, "-q", "-e", "iter:task_file /ctx->task->tgid == $1/ { "
                   'printf("%d %s\\n", ctx->fd, path(ctx->file->f_path)); }', str(sleeper.pid)])
        expected = {f"{fd} {os.readlink(f'/proc/{sleeper.pid}/fd/{fd}')}"
                    for fd in os.listdir(f"/proc/{sleeper.pid}/fd")}
    finally:
        sleeper.kill()
        sleeper.wait()
        log.unlink()
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split("\n\n\n")[0].splitlines()) == expected
    assert f"2 {log}" in expected
