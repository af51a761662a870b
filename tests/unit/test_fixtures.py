"""The committed BPF C fixtures agree with their sources and their manifest.

tests/data/obj/MANIFEST.json is written by tools/build_fixtures.py. These checks keep
the set consistent without clang: every source has objects, every listed object exists,
is a 64-bit little-endian ELF for EM_BPF and is the file the manifest describes, its
programs are where the manifest says, and no source or header changed since the build.
(Whether libbpf and the kernel load and run them as recorded is checked by
`tools/build_fixtures.py --verify`, as root.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

DATA = Path(__file__).resolve().parent.parent / "data"
SRC_DIR = DATA / "c"
OBJ_DIR = DATA / "obj"
EM_BPF = 247
REBUILD = "rebuild with: python tools/build_fixtures.py"


def _manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((OBJ_DIR / "MANIFEST.json").read_text())
    return manifest


MANIFEST = _manifest()
OBJECTS: list[dict[str, Any]] = MANIFEST["objects"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_source_has_an_object() -> None:
    sources = {p.name for p in SRC_DIR.glob("*.c")}
    built = {o["source"] for o in OBJECTS}
    assert sources, "no fixture sources found"
    assert sources - built == set(), f"sources without objects ({REBUILD})"
    assert built - sources == set(), "manifest lists objects of sources that no longer exist"


def test_every_object_is_listed() -> None:
    on_disk = {p.name for p in OBJ_DIR.glob("*.o")}
    listed = {o["object"] for o in OBJECTS}
    assert on_disk == listed


def test_sources_and_headers_unchanged_since_build() -> None:
    for entry in OBJECTS:
        assert _sha256(SRC_DIR / entry["source"]) == entry["source_sha256"], (
            f"{entry['source']} changed after {entry['object']} was built; {REBUILD}"
        )
    headers = {p.name: _sha256(p) for p in SRC_DIR.glob("*.h")}
    assert headers == MANIFEST["headers"], f"a header changed or appeared; {REBUILD}"


def test_objects_are_small() -> None:
    total = sum((OBJ_DIR / o["object"]).stat().st_size for o in OBJECTS)
    assert total < 1024 * 1024


def test_manifest_names_the_compiler() -> None:
    assert "clang version" in MANIFEST["compiler"]
    assert MANIFEST["packets"]["udp4"] and MANIFEST["packets"]["arp"]


@pytest.mark.parametrize("entry", OBJECTS, ids=[o["object"] for o in OBJECTS])
def test_object_is_bpf_elf_as_described(entry: dict[str, Any]) -> None:
    path = OBJ_DIR / entry["object"]
    assert path.is_file()
    assert _sha256(path) == entry["sha256"], f"{path.name} differs from the manifest; {REBUILD}"
    assert entry["cpu"] in ("v1", "v2", "v3")
    with path.open("rb") as f:
        assert f.read(4) == b"\x7fELF"
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_BPF"
        f.seek(18)  # e_machine, as the number
        assert int.from_bytes(f.read(2), "little") == EM_BPF
        assert elf.elfclass == 64 and elf.little_endian
        assert elf.get_section_by_name(".BTF") is not None, "built without -g: no BTF"
        assert elf.get_section_by_name("license") is not None
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        functions = {s.name: s for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"}
        assert entry["programs"], "an object without programs"
        for prog in entry["programs"]:
            sym = functions[prog["name"]]
            section = elf.get_section(sym["st_shndx"])
            assert section.name == prog["section"]
            assert section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
            assert prog["expect_load"] == entry["expect_load"]
            if not prog["expect_load"]:
                assert entry["refusal"], "an expected refusal without a reason"
            for run in prog["test_run"]:
                assert ("data_in" in run) != ("ctx_in_hex" in run)
                if "data_in" in run:
                    assert run["data_in"] in MANIFEST["packets"]
        for name in entry["maps"]:
            assert any(s.name == name for s in symtab.iter_symbols())


def test_multi_cpu_sources_cover_v1_to_v3() -> None:
    by_source: dict[str, set[str]] = {}
    for o in OBJECTS:
        by_source.setdefault(o["source"], set()).add(o["cpu"])
    multi = {s: cpus for s, cpus in by_source.items() if len(cpus) > 1}
    assert "alu32.c" in multi and "jumps.c" in multi
    for source, cpus in multi.items():
        assert cpus == {"v1", "v2", "v3"}, source
