"""Compiler discovery with stand-in compilers: $BPFKIT_CLANG, the BPF-target check and its cached verdict."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bpfkit.cc import toolchain


def _fake(tmp_path: Path, name: str, ok: bool) -> Path:
    p = tmp_path / name
    log = tmp_path / f"{name}.calls"
    p.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\ncat > /dev/null\nexit {0 if ok else 1}\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_env_compiler_is_checked_once_and_the_verdict_cached(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cc = _fake(tmp_path, "good-clang", ok=True)
    monkeypatch.setenv("BPFKIT_CLANG", str(cc))
    c = toolchain.find_compiler()
    assert c.argv == (str(cc),) and c.kind == "clang" and c.target == ("-target", "bpf")
    assert toolchain.find_compiler() == c
    calls = (tmp_path / "good-clang.calls").read_text().splitlines()
    assert len(calls) == 1 and calls[0].startswith("-target bpf -x c -c -")  # the probe, once
    assert (tmp_path / "cache" / "compilers.json").is_file()


def test_compiler_without_bpf_target_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFKIT_CLANG", str(_fake(tmp_path, "gcc-ish", ok=False)))
    with pytest.raises(toolchain.CompilerNotFoundError, match="cannot compile for BPF"):
        toolchain.find_compiler()


def test_explicit_argument_beats_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFKIT_CLANG", str(_fake(tmp_path, "env-cc", ok=False)))
    good = _fake(tmp_path, "arg-cc", ok=True)
    assert toolchain.find_compiler(str(good)).argv == (str(good),)


def test_nothing_found_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BPFKIT_CLANG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no clang anywhere
    monkeypatch.setattr(toolchain, "zig_compiler", lambda: None)
    with pytest.raises(toolchain.CompilerNotFoundError, match=r"apt install clang.*pip install ziglang"):
        toolchain.find_compiler()


def test_a_changed_binary_is_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cc = _fake(tmp_path, "cc1", ok=True)
    monkeypatch.setenv("BPFKIT_CLANG", str(cc))
    toolchain.find_compiler()
    cc.write_text("#!/bin/sh\nexit 1\n# now longer, so the identity (size, mtime) changes\n")
    os.utime(cc, ns=(1, 1))
    with pytest.raises(toolchain.CompilerNotFoundError):
        toolchain.find_compiler()
