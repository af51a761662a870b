"""dump_raw against its oracle, `bpftool btf dump file X format raw` (bpftool 7.1 here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bpfkit.btf import dump_raw, load_btf

from .blobs import VMLINUX, Strings, all_kinds, blob, info, vmlinux_bytes

BPFTOOL = shutil.which("bpftool")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed")


def _bpftool_raw(path: Path, base: Path | None = None) -> list[str]:
    assert BPFTOOL is not None
    cmd = [BPFTOOL, "btf", "dump", "file", str(path)]
    if base is not None:
        cmd += ["-B", str(base)]
    out = subprocess.run([*cmd, "format", "raw"], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def test_raw_lines_of_every_kind() -> None:
    lines = list(dump_raw(load_btf(all_kinds()[0])))
    # Spot checks that hold without bpftool; the whole text is compared with bpftool below.
    assert lines[0] == "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED"
    assert "[6] STRUCT 'pair' size=16 vlen=4" in lines
    assert "\t'b' type_id=2 bits_offset=32 bitfield_size=3" in lines
    assert "\t'MINUS_ONE' val=-1" in lines
    assert "\t'NEG' val=-5LL" in lines
    assert "[20] FUNC_PROTO '(anon)' ret_type_id=1 vlen=2" in lines
    assert "\t'(anon)' type_id=0" in lines
    assert "[21] VAR 'counter' type_id=2, linkage=global" in lines
    assert "\ttype_id=21 offset=0 size=4 (VAR 'counter')" in lines
    assert "[12] FWD 'funion' fwd_kind=union" in lines


@needs_bpftool
@pytest.mark.parametrize("order", ["<", ">"])
def test_every_kind_matches_bpftool(tmp_path: Path, order: str) -> None:
    data, _ = all_kinds(order)
    path = tmp_path / "all.btf"
    path.write_bytes(data)
    assert list(dump_raw(load_btf(data))) == _bpftool_raw(path)


@needs_bpftool
def test_odd_encodings_match_bpftool(tmp_path: Path) -> None:
    s = Strings()
    n = s.add("x")
    words = [
        n, info(1), 1, 3 << 24 | 8,  # SIGNED|CHAR: bpftool says UNKN
        n, info(1), 4, 3 << 16 | 5,  # an INT bitfield
        n, info(6, 1), 4, n, 0x80000000,  # unsigned enum with the top bit set
        n, info(19, 1, 1), 8, n, 0, 0x80000000,  # signed enum64 minimum
        n, info(4, 1, 1), 4, n, 1, 0,  # kind_flag struct whose member is no bitfield
    ]
    data = blob(words, bytes(s.data))
    path = tmp_path / "odd.btf"
    path.write_bytes(data)
    assert list(dump_raw(load_btf(data))) == _bpftool_raw(path)


@needs_bpftool
def test_split_btf_matches_bpftool(tmp_path: Path) -> None:
    base_data, _ = all_kinds()
    base = load_btf(base_data)
    s = Strings(first=b"")
    s.base = base.str_end
    n = s.add("mod")
    words = [n, info(4, 1), 8, n, 4, 0, 0, info(2), 29]
    split_data = blob(words, bytes(s.data))
    (tmp_path / "base.btf").write_bytes(base_data)
    (tmp_path / "split.btf").write_bytes(split_data)
    expected = _bpftool_raw(tmp_path / "split.btf", tmp_path / "base.btf")
    assert list(dump_raw(load_btf(split_data, base=base))) == expected
    assert expected[0].startswith("[29] STRUCT 'mod'")


@needs_bpftool
@pytest.mark.skipif(vmlinux_bytes() is None, reason="no readable /sys/kernel/btf/vmlinux")
def test_whole_vmlinux_matches_bpftool() -> None:
    expected = _bpftool_raw(VMLINUX)
    got = list(dump_raw(load_btf(VMLINUX)))
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"line {i + 1}"


MODULES = sorted(p for p in Path("/sys/kernel/btf").glob("*") if p.name != "vmlinux")[:3]


@needs_bpftool
@pytest.mark.skipif(not MODULES, reason="no kernel module BTF under /sys/kernel/btf on this machine")
@pytest.mark.parametrize("module", MODULES, ids=[p.name for p in MODULES])
def test_kernel_module_split_btf_matches_bpftool(module: Path) -> None:
    base = load_btf(VMLINUX)
    split = load_btf(module, base=base)
    assert split.first_id == base.type_count
    assert list(dump_raw(split)) == _bpftool_raw(module, VMLINUX)
