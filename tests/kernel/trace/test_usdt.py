"""usdt probes in `bpfkit trace`, on a program gcc builds with <sys/sdt.h>, with bpftrace as the oracle:
the same script runs under both tools (the target started with -c) and stdout must be identical.

The probe's arguments have different sizes and signs and sit in different places (a register, stack
memory, a constant), so each fetch path of the argument code is exercised in the kernel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.kernel.attach.usdt import find_usdt
from bpfkit.kernel.attach.usdt_args import ArgKind

pytestmark = pytest.mark.kernel

SDT_HEADERS = (Path("/usr/include/sys/sdt.h"), Path("/usr/include/x86_64-linux-gnu/sys/sdt.h"))
BPFKIT = [sys.executable, "-m", "bpfkit", "trace"]
SOURCE = r"""
#include <sys/sdt.h>
int main(int argc, char **argv) {
    (void)argv;
    long n = argc + 6;                                   /* 7: not a compile-time constant */
    volatile short vs = (short)(-n * 3);                 /* volatile: passed as a stack operand */
    for (long k = 0; k < 3; k++) {
        long big = -n * 100000000000L + k;
        DTRACE_PROBE4(bpfkit_prov, tick, big, vs, (unsigned char)(n + 200 + k), 250);
    }
    return 0;
}
"""

#: One probe at two sites whose arguments are in different places: read per site (the attach cookie).
TWO_SITES = r"""
#include <sys/sdt.h>
int main(int argc, char **argv) {
    (void)argv;
    long n = argc + 6;
    volatile int vi = -5;
    DTRACE_PROBE2(bpfkit_prov, twice, n, 3);
    DTRACE_PROBE2(bpfkit_prov, twice, vi, n * 2);
    return 0;
}
"""


def build(tmp_path_factory: pytest.TempPathFactory, source: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root to load and attach BPF programs")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (needed to build the probe target)")
    if not any(h.exists() for h in SDT_HEADERS):
        pytest.skip("sys/sdt.h is missing (apt install systemtap-sdt-dev)")
    d = tmp_path_factory.mktemp("usdt_trace")
    (d / "t.c").write_text(source)
    subprocess.run(["gcc", "-O2", "-o", "t", "t.c"], cwd=d, check=True, capture_output=True)
    return str(d / "t")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build(tmp_path_factory, SOURCE)


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build(tmp_path_factory, TWO_SITES)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def compare(target: str, script: str) -> str:
    bpftrace = shutil.which("bpftrace")
    if bpftrace is None:
        pytest.skip("bpftrace is not installed (the oracle for these tests)")
    ref = run([bpftrace, "-c", target, "-e", script])
    assert ref.returncode == 0, ref.stderr
    ours = run([*BPFKIT, "-c", target, "-e", script])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == ref.stdout
    return ours.stdout


def test_target_has_register_memory_and_constant_arguments(target: str) -> None:
    (site,) = find_usdt(target, "bpfkit_prov", "tick")
    assert {a.kind for a in site.args} == {ArgKind.REG, ArgKind.REG_DEREF, ArgKind.CONST}, site.arg_spec
    assert [(a.size, a.signed) for a in site.args][:3] == [(8, True), (2, True), (1, False)], site.arg_spec


@pytest.mark.parametrize("fmt", ['"%d %d %d %d\\n", arg0, arg1, arg2, arg3',
                                 '"%ld %u %x %lu\\n", arg0, arg1, arg2, arg3'])
def test_arguments_match_bpftrace(target: str, fmt: str) -> None:
    out = compare(target, f"usdt:{target}:bpfkit_prov:tick {{ printf({fmt}); }}")
    assert out.count("\n") == 3 + 3  # "Attaching 1 probe...", three hits, the trailing blank lines


@pytest.mark.parametrize("spelling", ["U:{t}:bpfkit_prov:tick", "usdt:{t}:tick"])
def test_alias_and_omitted_provider_match_bpftrace(target: str, spelling: str) -> None:
    probe = spelling.format(t=target)
    out = compare(target, probe + ' { printf("%d %d %d\\n", arg0, arg1, arg1 < 0); @s = sum(arg2); '
                  '@n = count(); }')
    assert "-700000000000" not in out  # %d is 32 bits in bpftrace: the oracle truncates, and so must we
    assert " -21 0\n" in out  # argN is a u64 in bpftrace: -21 < 0 is false
    assert "@s: 624\n" in out and "@n: 3\n" in out  # 207 + 208 + 209: the unsigned char argument


def test_argument_beyond_the_probes_count_is_a_caret_error(target: str) -> None:
    script = f'usdt:{target}:bpfkit_prov:tick {{ printf("%d\\n", arg4); }}'
    r = run([*BPFKIT, "-c", target, "-e", script])
    assert r.returncode != 0
    assert f"ERROR: arg4 is not available: usdt probe usdt:{target}:bpfkit_prov:tick has 4 arguments" \
        in r.stderr
    assert "~~~~" in r.stderr and "Traceback" not in r.stderr


def test_unknown_probe_names_the_probes_there_are(target: str) -> None:
    r = run([*BPFKIT, "-c", target, "-e", f'usdt:{target}:bpfkit_prov:nope {{ printf("x\\n"); }}'])
    assert r.returncode != 0
    assert "no USDT probe bpfkit_prov:nope (it has bpfkit_prov:tick)" in r.stderr
    assert "Traceback" not in r.stderr


def test_sites_with_different_argument_places_match_bpftrace(two_sites: str) -> None:
    first, second = find_usdt(two_sites, "bpfkit_prov", "twice")
    assert first.args != second.args, (first.arg_spec, second.arg_spec)
    out = compare(two_sites, f'usdt:{two_sites}:bpfkit_prov:twice {{ printf("%d %d\\n", arg0, arg1); }}')
    assert out.startswith("Attaching 2 probes...\n7 3\n-5 14\n")
