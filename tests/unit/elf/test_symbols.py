"""ELF symbol tables for symbolization, checked against pyelftools on real binaries and fuzzed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.elf.symbols import ET_DYN, Symbol, SymbolTable
from bpfkit.errors import ElfError

SOURCE = """
int counter[4];
static int helper(int x) { return x * 3 + counter[x & 3]; }
int shared_fn(int x) { return helper(x) + 1; }
__attribute__((weak)) int weak_fn(void) { return 7; }
"""


def _libc() -> Path:
    for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6",
              "/usr/lib64/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"):
        if os.path.exists(p):
            return Path(p)
    pytest.skip("no libc.so.6 at a known path")


@pytest.fixture(scope="module")
def shared_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("clang") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a shared object")
    d = tmp_path_factory.mktemp("so")
    (d / "lib.c").write_text(SOURCE)
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(d / "lib.so"), str(d / "lib.c")], check=True)
    return d / "lib.so"


def oracle(path: Path) -> dict[str, set[tuple[int, int]]]:
    """name -> {(address, size)} of defined function/object symbols, by pyelftools (a name has several
    entries when it has several symbol versions)."""
    out: dict[str, set[tuple[int, int]]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for s in sec.iter_symbols():
                kind = s["st_info"]["type"]
                if kind in ("STT_FUNC", "STT_OBJECT", "STT_LOOS") and s["st_shndx"] != "SHN_UNDEF" \
                        and s["st_value"] and s.name:
                    out.setdefault(s.name, set()).add((s["st_value"], s["st_size"]))
    return out


def test_shared_object_symbols_match_pyelftools(shared_object: Path) -> None:
    table = SymbolTable.load(shared_object)
    want = oracle(shared_object)
    assert table.elf_type == ET_DYN and table.is_pie
    for name in ("shared_fn", "weak_fn", "counter"):
        ((addr, _size),) = want[name]
        assert table.address_of(name) == addr
        sym, off = table.lookup(addr + 1) or (None, None)
        assert sym is not None and sym.name == name and off == 1
    assert {n: {table.address_of(n)} for n in want} == {n: {a for a, _ in v} for n, v in want.items()}


def test_libc_matches_pyelftools() -> None:
    path = _libc()
    table = SymbolTable.load(path)
    want = oracle(path)
    assert len(want) > 500
    for name, entries in want.items():
        assert table.address_of(name) in {a for a, _ in entries}
        for addr, size in entries:
            found = table.lookup(addr + max(size, 1) - 1)
            assert found is not None and found[0].address == addr and found[1] == max(size, 1) - 1


def test_lookup_edges() -> None:
    t = SymbolTable([Symbol("a", 0x1000, 0x10), Symbol("b", 0x1010, 0), Symbol("c", 0x2000, 0x8),
                     Symbol("inner", 0x2002, 0x2)])
    assert t.lookup(0xFFF) is None
    assert t.lookup(0x100F) == (Symbol("a", 0x1000, 0x10), 0xF)
    assert t.lookup(0x1FFF) == (Symbol("b", 0x1010, 0), 0xFEF)  # unsized: up to the next symbol
    assert t.lookup(0x2005) == (Symbol("c", 0x2000, 0x8), 5)  # past the nested symbol, inside c
    assert t.lookup(0x2003) == (Symbol("inner", 0x2002, 0x2), 1)
    assert t.lookup(0x2008) is None


def test_aliases_prefer_public_names_but_all_are_addressable() -> None:
    t = SymbolTable([Symbol("__getpid", 0x10, 8), Symbol("getpid", 0x10, 8, binding=2)])
    assert t.lookup(0x12) == (Symbol("getpid", 0x10, 8, binding=2), 2)
    assert t.address_of("__getpid") == t.address_of("getpid") == 0x10
    with pytest.raises(KeyError):
        t.address_of("nope")


def test_file_offsets_map_through_load_segments() -> None:
    table = SymbolTable.load(os.path.realpath(sys.executable))
    seg = next(s for s in table.segments if s.flags & 1)  # the executable segment
    assert table.vaddr_of_offset(seg.offset + 5) == seg.vaddr + 5
    assert table.vaddr_of_offset(1 << 40) is None


@pytest.mark.parametrize(("data", "message"), [
    (b"MZ\0\0" + bytes(60), "bad magic"),
    (b"\x7fELF\x01\x01\x01" + bytes(60), "not an ELF64"),
    (b"\x7fELF\x02\x01\x01" + bytes(20), "not an ELF64"),
])
def test_bad_headers(data: bytes, message: str) -> None:
    with pytest.raises(ElfError, match=message):
        SymbolTable.from_bytes(data, "bad.so")


def test_missing_file() -> None:
    with pytest.raises(ElfError, match="cannot read"):
        SymbolTable.load("/nonexistent/lib.so")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_only_elf_errors(shared_object: Path, data: st.DataObject) -> None:
    blob = bytearray(shared_object.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, min(len(blob) - 1, 4096)))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    try:
        table = SymbolTable.from_bytes(bytes(blob[:cut] if cut is not None else blob), "fuzz.so")
    except ElfError:
        return
    table.lookup(0x1000)
