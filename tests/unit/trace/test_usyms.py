"""uaddr()'s symbol lookup (`user_symbol`) on a real executable, against pyelftools: a global definition
wins over static ones of the same name, for objects and functions alike; local-only names give the
first definition; anything missing gives None."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bpfkit.trace.usyms import user_symbol

# Two files define statics named like the other's globals: the executable's .symtab has both.
FIRST = """
static int dup_obj = 1;
__attribute__((noinline, used)) static int dup_fn(void) { return dup_obj; }
static long twin = 5;
int first(void) { return dup_fn() + (int)twin; }
"""
SECOND = """
int dup_obj = 2;
__attribute__((noinline)) int dup_fn(void) { return dup_obj + 1; }
static long twin = 6;
char glob_arr[10] = "hello";
int first(void);
int main(void) { return first() + dup_fn() + (int)twin + glob_arr[0]; }
"""


@pytest.fixture(scope="module")
def program(build_c: Callable[..., Path]) -> Path:
    return build_c("prog", {"first.c": FIRST, "second.c": SECOND}, "-O0")


def definitions(path: Path, name: str) -> list[tuple[str, int, int]]:
    """(binding, address, size) of every defined function/object `name` of .symtab, by pyelftools."""
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        return [(s["st_info"]["bind"], s["st_value"], s["st_size"]) for s in symtab.iter_symbols()
                if s.name == name and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT")
                and s["st_shndx"] != "SHN_UNDEF"]


@pytest.mark.parametrize("name", ["dup_obj", "dup_fn"])
def test_the_global_definition_wins_over_a_static_one(program: Path, name: str) -> None:
    found = definitions(program, name)
    assert {bind for bind, _, _ in found} == {"STB_LOCAL", "STB_GLOBAL"}  # the case is really there
    (glob,) = [(addr, size) for bind, addr, size in found if bind == "STB_GLOBAL"]
    assert user_symbol(str(program), name) == glob


def test_local_only_names_give_the_first_definition(program: Path) -> None:
    found = definitions(program, "twin")
    assert len(found) == 2 and all(bind == "STB_LOCAL" for bind, _, _ in found)
    assert user_symbol(str(program), "twin") == found[0][1:]


def test_a_plain_global_object(program: Path) -> None:
    ((_, addr, size),) = definitions(program, "glob_arr")
    assert user_symbol(str(program), "glob_arr") == (addr, size) and size == 10


def test_missing_symbols_and_binaries_give_none(program: Path, tmp_path: Path) -> None:
    assert user_symbol(str(program), "no_such_symbol") is None
    assert user_symbol(str(tmp_path / "no_such_binary"), "main") is None
    (tmp_path / "junk").write_bytes(b"not an ELF file")
    assert user_symbol(str(tmp_path / "junk"), "main") is None
