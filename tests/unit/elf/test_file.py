"""`bpfkit.elf.file.ElfFile` against pyelftools (the oracle) on every fixture, and its errors."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from bpfkit.elf.file import SHF_EXECINSTR, ElfFile, RelocType, SectionType, SymbolBinding, SymbolType
from bpfkit.errors import ElfError

OBJ_DIR = Path(__file__).resolve().parents[2] / "data" / "obj"
OBJECTS = sorted(p.name for p in OBJ_DIR.glob("*.o"))

_SHT = {"SHT_NULL": 0, "SHT_PROGBITS": 1, "SHT_SYMTAB": 2, "SHT_STRTAB": 3, "SHT_RELA": 4, "SHT_NOBITS": 8,
        "SHT_REL": 9, "SHT_LLVM_ADDRSIG": SectionType.LLVM_ADDRSIG}
_STT = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_SECTION": 3, "STT_FILE": 4}
_STB = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2}


def _pyelf(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


@pytest.mark.parametrize("name", OBJECTS)
def test_sections_symbols_and_relocations_match_pyelftools(name: str) -> None:
    data = (OBJ_DIR / name).read_bytes()
    ours = ElfFile(data, name)
    ref = _pyelf(data)
    assert ours.byteorder == "little"
    ref_sections = list(ref.iter_sections())
    assert [s.name for s in ours.sections] == [s.name for s in ref_sections]
    for mine, theirs in zip(ours.sections, ref_sections, strict=True):
        stype = theirs["sh_type"]
        assert mine.type == (_SHT[stype] if isinstance(stype, str) else stype), mine.name
        assert (mine.offset, mine.size, mine.link, mine.info, mine.entsize, mine.addralign) == (
            theirs["sh_offset"], theirs["sh_size"], theirs["sh_link"], theirs["sh_info"],
            theirs["sh_entsize"], theirs["sh_addralign"]), mine.name
        assert ours.data(mine) == theirs.data(), mine.name
        assert mine.is_code == bool(theirs["sh_flags"] & SHF_EXECINSTR and stype == "SHT_PROGBITS")
    symtab = ref.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    ref_syms = list(symtab.iter_symbols())
    assert len(ours.symbols) == len(ref_syms)
    for mine_sym, s in zip(ours.symbols, ref_syms, strict=True):
        shndx = s["st_shndx"]
        expected_shndx = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}.get(shndx, shndx)
        assert (mine_sym.name, mine_sym.value, mine_sym.size, mine_sym.shndx) == (
            s.name, s["st_value"], s["st_size"], expected_shndx)
        assert mine_sym.type == _STT[s["st_info"]["type"]]
        assert mine_sym.bind == _STB[s["st_info"]["bind"]]
    for sec in ref_sections:
        if not isinstance(sec, RelocationSection):
            continue
        target = ours.sections[sec["sh_info"]]
        theirs_rel = [(r["r_offset"], r["r_info_type"], r["r_info_sym"]) for r in sec.iter_relocations()]
        assert [(r.offset, r.type, r.symbol) for r in ours.relocations(target)] == theirs_rel, sec.name


def test_code_relocation_types_are_the_bpf_ones() -> None:
    elf = ElfFile((OBJ_DIR / "subprogs.v3.o").read_bytes(), "subprogs.v3.o")
    sec = elf.section("socket")
    assert sec is not None
    rels = elf.relocations(sec)
    assert {r.type for r in rels} == {RelocType.R_64_32}
    names = [elf.symbol_name(elf.symbol(r.symbol)) for r in rels]
    assert names == [".text", ".text", ".text", "global_mix", "global_mix", "global_len"]
    sym = elf.symbol(rels[-1].symbol)
    assert sym.is_func and sym.bind == SymbolBinding.GLOBAL and sym.type == SymbolType.FUNC


def test_code_sections_lists_functions_by_offset() -> None:
    from bpfkit.elf import code_sections

    data = (OBJ_DIR / "subprogs.v3.o").read_bytes()
    secs = {s.name: s for s in code_sections(data, "subprogs.v3.o")}
    assert list(secs) == [".text", "socket"]
    ref = _pyelf(data)
    symtab = ref.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    funcs = {(ref.get_section(s["st_shndx"]).name, s["st_value"]): s.name for s in symtab.iter_symbols()
             if s["st_info"]["type"] == "STT_FUNC"}
    for name, sec in secs.items():
        assert sec.data == ref.get_section_by_name(name).data()
        assert sec.symbols == {off: n for (where, off), n in funcs.items() if where == name}


# ------------------------------------------------------------------------------- malformed input


def _fixture() -> bytes:
    return (OBJ_DIR / "maps_btf.o").read_bytes()


def _shoff(data: bytes) -> int:
    return int(struct.unpack_from("<Q", data, 0x28)[0])


def _raises(data: bytes, *fragments: str) -> ElfError:
    with pytest.raises(ElfError) as info:
        elf = ElfFile(data, "bad.o")
        for sec in elf.sections:
            elf.relocations(sec)
    text = str(info.value)
    assert text.startswith("bad.o"), text
    for frag in fragments:
        assert frag in text, text
    return info.value


def test_not_elf() -> None:
    _raises(b"\x00" * 100, "not an ELF file")


def test_truncated_header() -> None:
    _raises(_fixture()[:40], "truncated ELF header")


def test_wrong_class_and_machine_and_type() -> None:
    data = bytearray(_fixture())
    data[4] = 1
    _raises(bytes(data), "ELFCLASS64")
    data = bytearray(_fixture())
    struct.pack_into("<H", data, 0x12, 62)  # x86-64
    _raises(bytes(data), "machine is 62")
    data = bytearray(_fixture())
    struct.pack_into("<H", data, 0x10, 2)  # ET_EXEC
    _raises(bytes(data), "relocatable")


def test_section_table_past_the_end() -> None:
    data = bytearray(_fixture())
    struct.pack_into("<Q", data, 0x28, len(data) - 10)
    _raises(bytes(data), "section header table")


def test_section_data_overruns_file() -> None:
    data = bytearray(_fixture())
    shoff = _shoff(data)
    struct.pack_into("<Q", data, shoff + 3 * 64 + 0x20, 1 << 40)  # sh_size of section 3 ('socket')
    _raises(bytes(data), "section 'socket'", "overruns the file")


def test_bad_section_name_offset() -> None:
    data = bytearray(_fixture())
    struct.pack_into("<I", data, _shoff(data) + 3 * 64, 0xFFFFFF)
    _raises(bytes(data), "name offset")


def test_relocation_symbol_out_of_range() -> None:
    data = bytearray(_fixture())
    ref = _pyelf(bytes(data))
    rel = ref.get_section_by_name(".relsocket")
    struct.pack_into("<Q", data, rel["sh_offset"] + 8, (5000 << 32) | 1)
    _raises(bytes(data), "section '.relsocket'", "symbol index 5000 out of range")


def test_symbol_section_index_out_of_range() -> None:
    data = bytearray(_fixture())
    symtab = _pyelf(bytes(data)).get_section_by_name(".symtab")
    struct.pack_into("<H", data, symtab["sh_offset"] + 24 * 3 + 6, 900)
    with pytest.raises(ElfError, match="section index 900 out of range"):
        _ = ElfFile(bytes(data), "bad.o").symbols
