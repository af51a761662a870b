"""ELF symbols, segments and sections of executables and libraries, for uprobe placement (`read_image`,
`ElfImage`: name -> file offset) and symbolization (`SymbolTable`: address -> name); checked against
pyelftools on real binaries and fuzzed."""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfkit.elf.symbols import (
    ET_DYN,
    ElfImage,
    ElfSymbol,
    Segment,
    Symbol,
    SymbolSection,
    SymbolTable,
    image_from_bytes,
    prefer_global,
    read_image,
)
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
def shared_object(build_c: Callable[..., Path]) -> Path:
    return build_c("lib.so", {"lib.c": SOURCE}, "-O1", "-shared", "-fPIC")


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


# --- uprobe placement: ElfImage (moved from tests/unit/kernel/attach/test_elfsyms_auto.py) -------------


def raw_symtab(*syms: tuple[str, int, int, int]) -> SymbolSection:
    """A symbol table of (name, value, STT type, STB binding); names share a tail-merged string table."""
    strings = b"\0x_dup\0f\0g\0f@@LIB_1.0\0"
    entries = bytes(24)
    for name, value, stype, bind in syms:
        off = strings.find(name.encode() + b"\0")
        entries += struct.pack("<IBBHQQ", off, bind << 4 | stype, 0, 1, value, 4)
    return SymbolSection(entries, strings)


def image() -> ElfImage:
    segs = (Segment(0x0, 0x800, 0x0, 0x800, False), Segment(0x1000, 0x500, 0x1000, 0x500, True),
            Segment(0x3DF0, 0x300, 0x2DF0, 0x220, False))
    table = raw_symtab(("f@@LIB_1.0", 0x1139, 2, 1), ("dup", 0x1100, 2, 0), ("dup", 0x1200, 2, 0),
                   ("g", 0x1300, 2, 0), ("g", 0x1310, 10, 1), ("x_dup", 0x1400, 1, 1))  # x_dup: an object
    return ElfImage("/x/bin", "ET_DYN", segs, (table,), {})


def test_offsets_follow_segments() -> None:
    im = image()
    assert im.offset_of(0x1139) == 0x1139
    assert im.offset_of(0x3E00) == 0x2E00  # data segment: vaddr and offset differ by a page
    assert im.address_of(0x2E00) == 0x3E00
    with pytest.raises(ElfError, match=r"/x/bin: address 0x9000 is in no loadable segment"):
        im.offset_of(0x9000)


def test_symbol_choice() -> None:
    im = image()
    assert im.symbol_offset("f") == 0x1139 and im.symbol_offset("f+0x8") == 0x1141
    assert im.symbol("f@@LIB_1.0").address == 0x1139
    assert im.symbol("g").address == 0x1310  # the global definition wins
    with pytest.raises(ElfError, match=r"'dup' is ambiguous \(at 0x1100, 0x1200\)"):
        im.symbol("dup")
    with pytest.raises(ElfError, match="no symbol 'nope'"):
        im.symbol("nope")
    with pytest.raises(ElfError, match="no symbol 'x_dup'"):
        im.symbol("x_dup")  # not code
    assert im.symbol("g").type == "STT_GNU_IFUNC"
    assert im.symbol_names() == {"f", "dup", "g"}


LOCAL, GLOBAL, WEAK, UNIQUE = 0, 1, 2, 10  # STB_*


@pytest.mark.parametrize(("bindings", "winners"), [
    ((LOCAL, GLOBAL, LOCAL), [1]), ((LOCAL, LOCAL), [0, 1]), ((LOCAL, WEAK, GLOBAL), [1, 2]),
    ((LOCAL, UNIQUE), [1]), ((GLOBAL,), [0]), ((), [])])
def test_prefer_global_keeps_the_global_definitions_in_order(bindings: tuple[int, ...],
                                                            winners: list[int]) -> None:
    objects = [Symbol("dup", 0x1000 + 8 * i, 8, "object", b) for i, b in enumerate(bindings)]
    assert prefer_global(objects) == [objects[i] for i in winners]
    names = {LOCAL: "STB_LOCAL", GLOBAL: "STB_GLOBAL", WEAK: "STB_WEAK", UNIQUE: "STB_GNU_UNIQUE"}
    code = [ElfSymbol("dup", 0x1000 + 8 * i, 8, "STT_FUNC", names[b]) for i, b in enumerate(bindings)]
    assert prefer_global(iter(code)) == [code[i] for i in winners]


def test_definition_takes_functions_and_objects_and_prefers_the_global_one() -> None:
    im = image()
    assert im.definition("g") == Symbol("g", 0x1310, 4, "func", GLOBAL)  # the IFUNC, global
    assert im.definition("x_dup") == Symbol("x_dup", 0x1400, 4, "object", GLOBAL)
    assert im.definition("x_dup", kinds=("func",)) is None
    assert im.definition("dup") == Symbol("dup", 0x1100, 4, "func", LOCAL)  # all local: the first
    assert im.definition("f") == Symbol("f@@LIB_1.0", 0x1139, 4, "func", GLOBAL)
    assert im.definition("nope") is None
    objects = raw_symtab(("dup", 0x2000, 1, LOCAL), ("dup", 0x2100, 1, UNIQUE), ("x_dup", 0x2200, 1, LOCAL),
                         ("x_dup", 0x2300, 1, WEAK), ("g", 0x2400, 1, LOCAL), ("g", 0x2500, 1, LOCAL))
    lib = ElfImage("/x/lib.so", "ET_DYN", image().segments, (objects,), {})
    assert lib.definition("dup") == Symbol("dup", 0x2100, 4, "object", UNIQUE)
    assert lib.definition("x_dup") == Symbol("x_dup", 0x2300, 4, "object", WEAK)
    assert lib.definition("g") == Symbol("g", 0x2400, 4, "object", LOCAL)
    assert lib.definition("dup", kinds=("func",)) is None


def _pyelftools_functions(path: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and sym["st_shndx"] != "SHN_UNDEF" \
                            and sym.name:
                        out.setdefault(sym.name.split("@")[0], set()).add(sym["st_value"])
    return out


@pytest.mark.parametrize("binary", ["python", "libc"])
def test_read_image_agrees_with_pyelftools(binary: str) -> None:
    path = os.path.realpath(sys.executable) if binary == "python" else str(_libc())
    im = read_image(path)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert [(s.vaddr, s.offset, s.memsz) for s in im.segments] == \
            [(s["p_vaddr"], s["p_offset"], s["p_memsz"]) for s in loads]
        assert im.elf_type == elf["e_type"]
        assert {s.name for s in elf.iter_sections()} == set(im.sections)
    oracle = _pyelftools_functions(path)
    assert im.symbol_names() == set(oracle)
    for name in sorted(oracle)[:: max(1, len(oracle) // 300)]:  # a few hundred, spread out
        assert {s.address for s in im.lookup(name)} == oracle[name], name
    assert read_image(path) is im  # cached


@given(st.binary(min_size=0, max_size=400))
@settings(max_examples=200, deadline=None)
def test_fuzz_read_image_only_elf_errors(data: bytes) -> None:
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"\x7fELF\x02\x01" + data if data[:1] != b"!" else data)
        f.flush()
        try:
            im = read_image(f.name)
            im.symbol_names()
            im.lookup("main")
        except ElfError:
            pass


# --- one reader for both: the two views of a file agree -----------------------------------------------


def test_symbolizer_and_placement_agree_on_libc() -> None:
    path = _libc()
    im = read_image(path)
    table = SymbolTable.from_image(im)
    assert SymbolTable.load(path).symbols == table.symbols
    assert table.segments == im.segments and table.is_pie == im.pie
    funcs = [s for s in table.symbols if s.kind == "func"]
    assert len(funcs) > 500
    for sym in funcs[:: max(1, len(funcs) // 200)]:
        assert sym.address in {s.address for s in im.lookup(sym.name.split("@")[0])}, sym
        offset = im.offset_of(sym.address)
        assert table.vaddr_of_offset(offset) == sym.address and im.address_of(offset) == sym.address


def test_bytes_and_file_read_the_same(shared_object: Path) -> None:
    assert image_from_bytes(shared_object.read_bytes(), str(shared_object)) == read_image(shared_object)


def _naive_find(table: SymbolSection, name: str) -> list[tuple[str, int, int, str, str]]:
    """What `SymbolSection.find` must return, by decoding every entry: code symbols whose name is `name`
    followed by NUL (first) or "@", in string-table then entry order."""
    key = name.encode()
    out = []
    for end in (b"\0", b"@"):
        starts = [i for i in range(len(table.strings)) if table.strings.startswith(key + end, i)]
        for start in starts:
            for pos in range(0, len(table.entries) - 23, 24):
                st_name, info, _o, shndx, value, size = struct.unpack_from("<IBBHQQ", table.entries, pos)
                if st_name == start and (info & 0xF) in (2, 10) and shndx != 0:
                    kind = "STT_FUNC" if info & 0xF == 2 else "STT_GNU_IFUNC"
                    bind = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}.get(info >> 4, str(info >> 4))
                    out.append((name, value, size, kind, bind))
    return out


@settings(max_examples=300, deadline=None)
@given(st.text("ab@\0", max_size=24), st.text("ab", max_size=3),
       st.lists(st.tuples(st.integers(0, 30), st.sampled_from([0x12, 0x1A, 0x02, 0x11, 0x22]),
                          st.integers(0, 2)), max_size=12))
def test_find_matches_a_full_decode(strings: str, name: str, entries: list[tuple[int, int, int]]) -> None:
    blob = b"".join(struct.pack("<IBBHQQ", st_name, info, 0, shndx, 0x1000 + i, 8)
                    for i, (st_name, info, shndx) in enumerate(entries))
    table = SymbolSection(blob, strings.encode())
    got = [(s.name, s.address, s.size, s.type, s.binding) for s in table.find(name)]
    assert got == _naive_find(table, name)


def test_find_on_libc_matches_a_full_decode() -> None:
    (table, *_) = read_image(_libc()).symtabs
    names = sorted(set(table.names()))
    for name in [*names[:: max(1, len(names) // 40)], "malloc", "nope_not_there"]:
        assert [(s.name, s.address, s.size, s.type, s.binding) for s in table.find(name)] == \
            _naive_find(table, name), name
