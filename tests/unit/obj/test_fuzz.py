"""Fuzzing `load_object` with truncated and byte-flipped fixtures: only `BpfkitError`s naming the file
come out, and whatever loads can be summarised and disassembled."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError
from bpfkit.obj import load_object
from bpfkit.obj.show import format_summary, objdump, summarize

from .oracle import OBJ_DIR

FIXTURES = ["maps_btf.o", "global_data.o", "subprogs.v3.o", "kconfig.o", "ksym_kfunc.o", "core_task.o",
            "tail_call.o", "maps_legacy.o", "license_version.o", "rodata_config.o"]
DATA = {name: (OBJ_DIR / name).read_bytes() for name in FIXTURES}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _try(data: bytes) -> None:
    try:
        obj = load_object(data, name="fuzzed.o")
    except BpfkitError as e:
        assert "fuzzed.o" in str(e), f"error does not name the file: {e}"
        return
    format_summary(summarize(obj))
    objdump(obj)
    for name in list(obj.variables)[:3]:
        try:
            obj.get_global(name)
        except BpfkitError:
            pass


@SETTINGS
@given(name=st.sampled_from(FIXTURES), cut=st.floats(min_value=0.0, max_value=1.0))
def test_truncated(name: str, cut: float) -> None:
    data = DATA[name]
    _try(data[: int(len(data) * cut)])


@SETTINGS
@given(name=st.sampled_from(FIXTURES), flips=st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), st.integers(0, 255)),
    min_size=1, max_size=8))
def test_byte_flips(name: str, flips: list[tuple[float, int]]) -> None:
    data = bytearray(DATA[name])
    for where, value in flips:
        data[int(where * len(data))] = value
    _try(bytes(data))


def _headers_region(data: bytes) -> tuple[int, int]:
    shoff = int.from_bytes(data[0x28:0x30], "little")
    return shoff, len(data)


@SETTINGS
@given(name=st.sampled_from(FIXTURES), flips=st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), st.integers(0, 255)),
    min_size=1, max_size=4))
def test_section_header_flips(name: str, flips: list[tuple[float, int]]) -> None:
    """Flips aimed at the section header table, where one byte changes a whole section."""
    data = bytearray(DATA[name])
    lo, hi = _headers_region(bytes(data))
    for where, value in flips:
        data[lo + int(where * (hi - lo))] = value
    _try(bytes(data))


@pytest.mark.parametrize("section", [".BTF", ".BTF.ext", ".symtab", ".maps", ".relsocket", "socket"])
@SETTINGS
@given(flips=st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
                                st.integers(0, 255)), min_size=1, max_size=6))
def test_flips_in_one_section(section: str, flips: list[tuple[float, int]]) -> None:
    """Flips inside the sections the loader decodes itself."""
    from bpfkit.elf.file import ElfFile

    data = bytearray(DATA["maps_btf.o"])
    sec = ElfFile(bytes(data)).section(section)
    assert sec is not None
    for where, value in flips:
        data[sec.offset + int(where * sec.size)] = value
    _try(bytes(data))
