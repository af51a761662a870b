"""The compiler driver: compiles run in bpfkit's VM, errors render with source lines, the cache hits and
misses when it should, and zig cc works as the second compiler. Needs a BPF compiler, not root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit.cc import toolchain
from bpfkit.cc.cache import cache_dir
from bpfkit.cc.driver import compile, compile_to_file
from bpfkit.errors import CompileError
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import Vm

CLASSIFY = r"""#include "bpfkit_helpers.h"
struct xdp_md { __u32 data; __u32 data_end; };
SEC("xdp") int classify(struct xdp_md *ctx) {
    unsigned char *d = (void *)(long)ctx->data, *e = (void *)(long)ctx->data_end;
    if (d + 2 > e) return 0;
    return d[0] + d[1] > LIMIT ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _no_compiler() -> str | None:
    try:
        toolchain.find_compiler()
    except toolchain.CompilerNotFoundError as e:
        return str(e)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "no /sys/kernel/btf/vmlinux to generate vmlinux.h from"
    return None


pytestmark = pytest.mark.skipif(_no_compiler() is not None, reason=str(_no_compiler()))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("bpfkit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPFKIT_CACHE_DIR", str(root))
        yield root


def _run(spec: object, data: bytes) -> int:
    prog = Vm().load(spec.programs["classify"], prog_type=ProgType.XDP)  # type: ignore[attr-defined]
    return int(prog.test_run(data=data).retval)


def test_compiled_program_runs(cache_root: Path) -> None:
    spec = compile(CLASSIFY, cflags=["-DLIMIT=10"])
    assert [_run(spec, d) for d in (b"\x05\x09", b"\x01\x02", b"\x01")] == [1, 2, 0]
    assert spec.btf is not None and spec.programs["classify"].lines  # -g: BTF and line info
    assert (cache_root / "vmlinux").is_dir()  # vmlinux.h generated into the cache


def test_cflags_change_the_program_and_the_cache_key(cache_root: Path) -> None:
    a = compile_to_file(CLASSIFY, cflags=["-DLIMIT=10"])
    b = compile_to_file(CLASSIFY, cflags=["-DLIMIT=100"])
    assert a.path != b.path
    assert _run(compile(CLASSIFY, cflags=["-DLIMIT=100"]), b"\x05\x09") == 2


def test_second_compile_is_a_cache_hit(cache_root: Path, tmp_path: Path) -> None:
    src = CLASSIFY.replace("LIMIT", "11")
    first = compile_to_file(src)
    second = compile_to_file(src)
    assert not first.cached and second.cached and first.path == second.path
    out = compile_to_file(src, tmp_path / "x.o")
    assert out.cached and (tmp_path / "x.o").read_bytes() == first.path.read_bytes()
    assert not compile_to_file(src, cache=False).cached


def test_local_header_change_misses_the_cache(cache_root: Path, tmp_path: Path) -> None:
    (tmp_path / "limit.h").write_text("#define LIMIT 3\n")
    src = tmp_path / "prog.c"
    src.write_text('#include "limit.h"\n' + CLASSIFY)
    first = compile_to_file(src)
    assert compile_to_file(src).cached
    (tmp_path / "limit.h").write_text("#define LIMIT 200\n")
    again = compile_to_file(src)
    assert not again.cached and again.path != first.path
    assert _run(compile(src), b"\x05\x09") == 2


def test_error_shows_file_line_column_and_source(cache_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.c"
    src.write_text('#include "bpfkit_helpers.h"\nSEC("xdp") int f(void *ctx) {\n'
                   '\treturn undefined_thing;\n}\n')
    with pytest.raises(CompileError) as ei:
        compile(src)
    text = str(ei.value)
    assert f"{src.resolve()}:3:9: error: use of undeclared identifier 'undefined_thing'" in text
    assert " 3 |     return undefined_thing;\n   |            ^" in text


def test_text_errors_are_named_text(cache_root: Path) -> None:
    with pytest.raises(CompileError, match=r"^<text>:1:11: error: expected parameter declarator\n 1 \| int"):
        compile("int main( { return 0; }\n")


def test_missing_source_file(cache_root: Path, tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"nope\.c: cannot read"):
        compile(tmp_path / "nope.c")


def test_libbpf_style_headers_and_core_macros(cache_root: Path) -> None:
    spec = compile(r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, u32); __type(value, u64);
         __uint(max_entries, 8); } m SEC(".maps");
SEC("uprobe") int BPF_UPROBE(probe, int a, const char *b)
{
    u64 v = a;
    u32 k = 0;
    bpf_map_update_elem(&m, &k, &v, 0);
    return 0;
}
SEC("tp_btf/sched_switch") int BPF_PROG(sw, bool preempt, struct task_struct *prev) {
    bpf_printk("%d %d", BPF_CORE_READ(prev, pid), BPF_CORE_READ(prev, mm, map_count));
    return preempt;
}
char LICENSE[] SEC("license") = "GPL";
""")
    assert set(spec.programs) == {"probe", "sw"}
    assert spec.maps["m"].max_entries == 8
    assert spec.programs["sw"].core_relos  # BPF_CORE_READ made CO-RE records


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BPFKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "bpfkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "bpfkit"


@pytest.mark.skipif(toolchain.zig_compiler() is None, reason="zig cc needs the ziglang package")
def test_zig_cc_compiles_the_same_program(cache_root: Path) -> None:
    spec = compile(CLASSIFY, cflags=["-DLIMIT=10"], compiler="zig")
    assert [_run(spec, d) for d in (b"\x05\x09", b"\x01\x02", b"\x01")] == [1, 2, 0]
    assert spec.btf is not None


def test_unknown_compiler_is_a_clear_error(cache_root: Path) -> None:
    with pytest.raises(toolchain.CompilerNotFoundError, match="compiler 'no-such-cc' not found"):
        compile(CLASSIFY, compiler="no-such-cc")
