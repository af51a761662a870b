""".BTF.ext: hand-encoded records, malformed input, and objects compiled by clang (both byte orders),
checked against the source they were compiled from and the ELF symbol table."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.btf import Func, Struct, load_btf
from bpfkit.btf.ext import CoreRelo, FuncInfo, LineInfo, load_btf_ext
from bpfkit.errors import BtfError
from bpfkit.uapi.btf import CoreReloKind

from .blobs import Strings, blob, info

# A .BTF with a FUNC_PROTO, a FUNC, and the strings .BTF.ext refers to.
_S = Strings()
N_INT, N_F, N_SEC, N_SEC2, N_FILE, N_LINE, N_ACC = (
    _S.add(x) for x in ("int", "f", "xdp", ".text", "a.c", "return 0;", "0:1")
)
BTF = load_btf(blob([N_INT, info(1), 4, 1 << 24 | 32, 0, info(13), 1, N_F, info(12, 1), 2], bytes(_S.data)))


def ext_blob(order: str = "<", *, line_rec: int = 16, core: bool = True) -> bytes:
    def u32(*v: int) -> bytes:
        return struct.pack(f"{order}{len(v)}I", *v)

    funcs = u32(8) + u32(N_SEC, 1) + u32(0, 3) + u32(N_SEC2, 2) + u32(0, 3, 16, 3)
    pad = b"\0" * (line_rec - 16)
    lines = u32(line_rec) + u32(N_SEC, 2) + u32(0, N_FILE, N_LINE, 7 << 10 | 5) + pad
    lines += u32(8, N_FILE, N_LINE, 8 << 10 | 2) + pad
    relos = u32(16) + u32(N_SEC, 1) + u32(8, 2, N_ACC, 0) if core else b""
    hdr_len = 32 if core else 24
    fields = [0, len(funcs), len(funcs), len(lines)] + ([len(funcs) + len(lines), len(relos)] if core else [])
    hdr = struct.pack(f"{order}HBBI{len(fields)}I", 0xEB9F, 1, 0, hdr_len, *fields)
    return hdr + funcs + lines + relos


@pytest.mark.parametrize("order", ["<", ">"])
def test_records_decode(order: str) -> None:
    ext = load_btf_ext(ext_blob(order), BTF)
    assert ext.func_info == {"xdp": (FuncInfo(0, 3),), ".text": (FuncInfo(0, 3), FuncInfo(16, 3))}
    assert ext.line_info == {"xdp": (
        LineInfo(0, "a.c", "return 0;", 7, 5, N_FILE, N_LINE),
        LineInfo(8, "a.c", "return 0;", 8, 2, N_FILE, N_LINE),
    )}
    assert ext.core_relos == {"xdp": (CoreRelo(8, 2, "0:1", CoreReloKind.FIELD_BYTE_OFFSET, N_ACC),)}


def test_larger_records_and_an_old_header_are_accepted() -> None:
    ext = load_btf_ext(ext_blob(line_rec=24, core=False), BTF)
    assert ext.line_info_rec_size == 24
    assert [li.line for li in ext.line_info["xdp"]] == [7, 8]
    assert ext.core_relos == {}


def _patched(offset: int, value: int, fmt: str = "<I") -> bytes:
    data = bytearray(ext_blob())
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


FUNCS = 32  # the func_info subsection starts right after the 32-byte header
LINES = FUNCS + 4 + (8 + 8) + (8 + 16)  # record size, then two section blocks of func_info


@pytest.mark.parametrize(
    ("data", "message", "offset"),
    [
        (ext_blob()[:10], "truncated header", 0),
        (b"\0\0" + ext_blob()[2:], "bad magic", 0),
        (_patched(2, 3, "<B"), "unsupported version 3", 2),
        (_patched(4, 9999), "header length 9999 out of range", 4),
        (_patched(12, 9999), "func_info (off 0, len 9999) overruns", 8),
        (_patched(FUNCS, 4), "func_info record size 4", FUNCS),
        (_patched(FUNCS + 8, 50), "50 records of 8 bytes overrun", FUNCS + 8),
        (_patched(FUNCS + 4, 9999), "func_info section name: string offset 9999 out of range", FUNCS + 4),
        (_patched(FUNCS + 16, 77), "func_info type id 77 out of range", FUNCS + 16),
        (_patched(LINES + 12 + 4, 9999), "line_info file name", LINES + 16),
        (_patched(len(ext_blob()) - 4, 99), "unknown CO-RE relocation kind 99", len(ext_blob()) - 4),
    ],
)
def test_malformed(data: bytes, message: str, offset: int) -> None:
    with pytest.raises(BtfError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_btf_ext(data, BTF)
    assert e.value.offset == offset


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_only_btf_errors(data: st.DataObject) -> None:
    good = ext_blob()
    if data.draw(st.booleans()):
        buf = good[: data.draw(st.integers(0, len(good)))]
    else:
        b = bytearray(good)
        for _ in range(data.draw(st.integers(1, 4))):
            b[data.draw(st.integers(0, len(b) - 1))] ^= data.draw(st.integers(1, 255))
        buf = bytes(b)
    try:
        load_btf_ext(buf, BTF)
    except BtfError as e:
        assert e.offset is None or 0 <= e.offset <= len(buf)


# ---------------------------------------------------------------------------- clang-compiled objects

CLANG = shutil.which("clang")
SOURCE = """\
struct task { int pid; struct { long a; int b; } inner; } __attribute__((preserve_access_index));
enum color { RED, GREEN = 5 };

static __attribute__((noinline)) int helper(int x)
{
\treturn x * 2;
}

__attribute__((section("tracepoint/sched/x"), used))
int prog_one(struct task *t)
{
\tint v = t->inner.b;
\tv += __builtin_preserve_field_info(t->pid, 2);
\tv += __builtin_preserve_enum_value(*(typeof(enum color) *)GREEN, 1);
\treturn helper(v);
}

__attribute__((section("xdp"), used))
int prog_two(void *ctx)
{
\treturn 2;
}
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.mark.skipif(CLANG is None, reason="clang is not installed")
@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_clang_object(tmp_path: Path, target: str) -> None:
    from elftools.elf.elffile import ELFFile

    assert CLANG is not None
    src = tmp_path / "prog.c"
    src.write_text(SOURCE)
    obj = tmp_path / "prog.o"
    subprocess.run([CLANG, "-g", "-O2", "-target", target, "-c", str(src), "-o", str(obj)], check=True)
    elf = ELFFile(io.BytesIO(obj.read_bytes()))
    spec = load_btf(elf.get_section_by_name(".BTF").data())
    assert spec.byteorder == ("little" if target == "bpfel" else "big")
    ext = load_btf_ext(elf.get_section_by_name(".BTF.ext").data(), spec)

    # func_info: each names the FUNC whose symbol starts at that offset of that section
    symbols = {}
    for sym in elf.get_section_by_name(".symtab").iter_symbols():
        if sym["st_info"]["type"] == "STT_FUNC":
            symbols[(elf.get_section(sym["st_shndx"]).name, sym["st_value"])] = sym.name
    got = {
        (sec, fi.insn_off): spec.type_by_id(fi.type_id) for sec, fis in ext.func_info.items() for fi in fis
    }
    assert {k: t.name for k, t in got.items() if isinstance(t, Func)} == symbols
    assert set(ext.func_info) == {".text", "tracepoint/sched/x", "xdp"}

    # line_info: the recorded text is the source line at that line number
    lines = SOURCE.splitlines()
    for infos in ext.line_info.values():
        for li in infos:
            assert li.file_name == str(src)
            assert li.line_text == lines[li.line - 1]
    assert [li.line for li in ext.line_info["xdp"]] == [21]

    # CO-RE: t->inner.b, field existence of t->pid, the value of GREEN
    relos = ext.core_relos["tracepoint/sched/x"]
    task = spec.find("task", Struct)
    assert [(r.kind, r.access, r.type_id) for r in relos] == [
        (CoreReloKind.FIELD_BYTE_OFFSET, "0:1:1", task.id),
        (CoreReloKind.FIELD_EXISTS, "0:0", task.id),
        (CoreReloKind.ENUMVAL_VALUE, "1", spec.find("color").id),
    ]
    assert spec.member(task, "inner.b").byte_offset == 16
