"""perf UAPI constants and layouts against their oracles: the installed `linux/perf_event.h` and the
running kernel's BTF (`struct perf_event_mmap_page`, `struct perf_event_header`, `enum perf_event_type`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bpfkit.btf import Enum, Struct
from bpfkit.btf.spec import load_btf
from bpfkit.uapi import c_names
from bpfkit.uapi.perf import PERF_EVENT_HEADER, PerfFlag, PerfMmapPage, PerfRecordType

HEADER = Path("/usr/include/linux/perf_event.h")
VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def header() -> str:
    if not HEADER.exists():
        pytest.skip(f"{HEADER} is not installed (linux-libc-dev)")
    return re.sub(r"/\*.*?\*/", " ", HEADER.read_text(encoding="utf-8", errors="replace"), flags=re.S)


def test_record_types_match_the_header(header: str) -> None:
    body = re.search(r"enum perf_event_type\s*\{(.*?)\}", header, re.S)
    assert body is not None
    values = {m[1]: int(m[2]) for m in re.finditer(r"(PERF_RECORD_\w+)\s*=\s*(\d+)", body[1])}
    ours = {c: int(PerfRecordType[n]) for n, c in c_names(PerfRecordType).items()}
    assert ours.items() <= values.items()
    assert PerfRecordType.SAMPLE.c_name == "PERF_RECORD_SAMPLE"


def test_flags_match_the_header(header: str) -> None:
    defines = {m[1]: 1 << int(m[2]) for m in re.finditer(r"#define\s+(PERF_FLAG_\w+)\s+\(1UL << (\d+)\)",
                                                         header)}
    ours = {c: int(PerfFlag[n]) for n, c in c_names(PerfFlag).items()}
    assert ours == defines and int(PerfFlag.FD_CLOEXEC) == 8


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"no {VMLINUX}")
def test_layouts_match_kernel_btf() -> None:
    spec = load_btf(VMLINUX)
    page = spec.find("perf_event_mmap_page", Struct)
    for member in PerfMmapPage:
        ref = spec.member(page, member.name.lower())
        assert (ref.bit_offset // 8, spec.sizeof(ref.member.type_id)) == (int(member), 8), member
    hdr = spec.find("perf_event_header", Struct)
    assert spec.sizeof(hdr) == PERF_EVENT_HEADER.size == 8
    assert [spec.member(hdr, f).bit_offset // 8 for f in ("type", "misc", "size")] == [0, 4, 6]
    kinds = {m.name: m.value for m in spec.find("perf_event_type", Enum).values}
    assert {c: int(PerfRecordType[n]) for n, c in c_names(PerfRecordType).items()}.items() <= kinds.items()
