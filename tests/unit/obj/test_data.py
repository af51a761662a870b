"""Global data: variables, initial values, `set_global` and the views, and data references."""

from __future__ import annotations

import io
import struct

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bpfkit.btf import Datasec
from bpfkit.errors import BtfError
from bpfkit.obj import RefKind, load_object
from bpfkit.uapi.enums import MapFlags

from .oracle import OBJ_DIR, llvm_objdump, section_bytes


def test_variables_and_their_values_as_in_the_source() -> None:
    obj = load_object(OBJ_DIR / "global_data.o")
    # global_data.c: the initialisers
    assert obj.get_global("data_init") == 0x1122334455667788
    assert obj.get_global("data_index") == 3
    assert obj.get_global("bss_zero") == 0 and obj.get_global("bss_runs") == 0
    assert obj.get_global("rodata_table") == [10, 11, 12, 13, 14, 15, 16, 17]
    assert obj.get_global("rodata_magic") == 0xFEEDBEEF
    assert obj.get_global("foo_counter") == 0
    assert obj.get_global("foo_table") == [0x100, 0x200, 0x300, 0x400]
    v = obj.variables["rodata_magic"]
    assert (v.section, v.size, v.readonly, v.static) == (".rodata", 4, True, False)
    assert obj.variables["data_init"].readonly is False
    assert obj.get_global("rodata_magic", raw=True) == struct.pack("<I", 0xFEEDBEEF)


def test_variable_offsets_are_their_symbol_values() -> None:
    data = (OBJ_DIR / "global_data.o").read_bytes()
    elf = ELFFile(io.BytesIO(data))
    symtab = elf.get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    syms = {s.name: s for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_OBJECT"}
    obj = load_object(data)
    for name, var in obj.variables.items():
        s = syms[name]
        assert elf.get_section(s["st_shndx"]).name == var.section
        assert (var.offset, var.size) == (s["st_value"], s["st_size"])
    # The fixed BTF DATASECs agree: sizes are the ELF section sizes, offsets the symbol values.
    assert obj.btf is not None
    sizes = section_bytes(OBJ_DIR / "global_data.o")
    for sec in (".data", ".rodata", ".bss", ".data.foo", ".rodata.foo"):
        ds = obj.btf.find(sec, Datasec)
        assert ds.size == len(sizes[sec])
        offsets = [vi.offset for vi in ds.vars]
        assert offsets == sorted(offsets)
        for vi in ds.vars:
            name = obj.btf.type_by_id(vi.type_id).name  # type: ignore[attr-defined]
            assert vi.offset == syms[name]["st_value"]
        assert obj.maps[sec].btf_value_type_id == ds.id


def test_data_references_point_at_the_variable() -> None:
    obj = load_object(OBJ_DIR / "global_data.o")
    listing = llvm_objdump("global_data.o")["socket"]
    p = obj.programs["global_data"]
    by_slot = {off // 8: sym for off, (_, sym) in listing.relocs.items()}
    for r in p.references:
        assert r.kind is RefKind.MAP_VALUE
        assert by_slot[r.index] == r.symbol
        original_imm = struct.unpack_from("<i", listing.insns[r.index], 4)[0]
        if r.symbol in obj.variables:
            var = obj.variables[r.symbol]
            assert (r.target, r.offset) == (var.section, var.offset + original_imm)
        else:  # a section symbol: string literals, addressed by the lddw's own immediate
            assert r.symbol == r.target == ".rodata.str1.1"
            assert r.offset == original_imm
            literal = obj.maps[".rodata.str1.1"].contents[0][1][r.offset :]
            assert literal.split(b"\0")[0] in (b"bpfkit", b"bpfkiu")


def test_set_global_rewrites_the_map_contents() -> None:
    obj = load_object(OBJ_DIR / "rodata_config.o")
    ro = obj.rodata
    assert dict(ro) == {"cfg_enabled": 0, "cfg_value": 0x5EED, "cfg_scale": 0x100000001,
                        "cfg_name": b"default\0"}
    ro["cfg_enabled"] = 1
    ro["cfg_value"] = 1234
    obj.set_global("cfg_name", "xyz")
    value = obj.maps[".rodata"].contents[0][1]
    v = obj.variables
    assert value[v["cfg_enabled"].offset : v["cfg_enabled"].offset + 4] == struct.pack("<I", 1)
    assert value[v["cfg_value"].offset : v["cfg_value"].offset + 4] == struct.pack("<I", 1234)
    assert value[v["cfg_name"].offset : v["cfg_name"].offset + 8] == b"xyz\0\0\0\0\0"
    assert obj.get_global("cfg_scale") == 0x100000001  # untouched
    assert obj.maps[".rodata"].freeze
    assert obj.maps[".rodata"].flags & MapFlags.RDONLY_PROG


def test_set_global_refuses_what_does_not_fit() -> None:
    obj = load_object(OBJ_DIR / "rodata_config.o")
    with pytest.raises(BtfError, match="does not fit in a unsigned 4-byte integer"):
        obj.set_global("cfg_value", 1 << 32)
    with pytest.raises(BtfError, match="does not fit in a unsigned 4-byte integer"):
        obj.set_global("cfg_value", -1)
    with pytest.raises(BtfError, match=r"9 bytes do not fit in char\[8\]"):
        obj.set_global("cfg_name", "123456789")
    with pytest.raises(BtfError, match="expected an integer"):
        obj.set_global("cfg_value", "12")
    with pytest.raises(KeyError, match="no global variable 'nope'"):
        obj.set_global("nope", 1)
    with pytest.raises(KeyError, match=r"no variable 'cfg_value' in \.data"):
        load_object(OBJ_DIR / "global_data.o").data["cfg_value"] = 1
    with pytest.raises(KeyError, match=r"no data section '\.data'"):
        obj.datasec(".data")
    assert obj.get_global("cfg_value") == 0x5EED  # nothing changed


def test_set_global_on_bss_makes_contents() -> None:
    obj = load_object(OBJ_DIR / "global_data.o")
    assert obj.maps[".bss"].contents == ()  # all zero: nothing to write at load
    obj.bss["bss_runs"] = 7
    assert obj.get_global("bss_runs") == 7
    assert obj.maps[".bss"].contents[0][1] == bytes(8) + struct.pack("<Q", 7)
    obj.set_global("rodata_table", [1, 2])  # a shorter list zero-fills the rest, like C
    assert obj.get_global("rodata_table") == [1, 2, 0, 0, 0, 0, 0, 0]
    obj.set_global("data_init", bytes(range(8)))
    assert obj.get_global("data_init", raw=True) == bytes(range(8))


def test_string_literal_section_has_no_btf_and_is_not_mmapable() -> None:
    obj = load_object(OBJ_DIR / "global_data.o")
    m = obj.maps[".rodata.str1.1"]
    assert m.btf_value_type_id == 0
    assert m.flags == MapFlags.RDONLY_PROG
    assert obj.maps[".rodata"].flags == MapFlags.RDONLY_PROG | MapFlags.MMAPABLE
    assert obj.maps[".data"].flags == MapFlags.MMAPABLE
