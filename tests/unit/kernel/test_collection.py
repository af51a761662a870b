"""Pure parts of `bpfkit.kernel.collection`: kernel config parsing and `.kconfig` encoding, kernel
version numbers, map names (no root; the loading itself is tested in tests/kernel/test_collection.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.errors import LinkError
from bpfkit.kernel.collection import (
    _failing_insn,
    kconfig_value,
    kernel_map_name,
    kernel_version,
    parse_kconfig,
    pin_name,
)
from bpfkit.obj import ExternKind, ExternSpec, KconfigType, load_object

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"

CONFIG = """\
# comment
CONFIG_HZ=250
CONFIG_BPF_SYSCALL=y
CONFIG_MODULE=m
# CONFIG_DEBUG is not set
CONFIG_DEFAULT_HOSTNAME="(none)"
CONFIG_HEX=0x10
"""


def test_parse_kconfig() -> None:
    cfg = parse_kconfig(CONFIG)
    assert cfg == {"CONFIG_HZ": "250", "CONFIG_BPF_SYSCALL": "y", "CONFIG_MODULE": "m", "CONFIG_DEBUG": "n",
                   "CONFIG_DEFAULT_HOSTNAME": '"(none)"', "CONFIG_HEX": "0x10"}


@pytest.mark.parametrize(("release", "want"), [
    ("6.18.44-fc-v657", (6 << 16) + (18 << 8) + 44),
    ("5.10.300", (5 << 16) + (10 << 8) + 255),  # patch level saturates at 255
    ("6.1", (6 << 16) + (1 << 8)),
])
def test_kernel_version(release: str, want: int) -> None:
    assert kernel_version(release) == want


def test_kconfig_value_of_the_fixture() -> None:
    obj = load_object(OBJ / "kconfig.o")
    ext = obj.externs
    size = obj.maps[".kconfig"].value_size
    value = kconfig_value(ext, size, parse_kconfig(CONFIG))
    assert len(value) == size

    def field(name: str) -> bytes:
        e = ext[name]
        return value[e.offset : e.offset + e.size]

    assert int.from_bytes(field("CONFIG_HZ"), "little") == 250
    assert field("CONFIG_BPF_SYSCALL") == b"\x01"
    assert field("CONFIG_BPFKIT_NO_SUCH_OPTION") == bytes(4)  # weak and missing: zero
    assert field("CONFIG_DEFAULT_HOSTNAME").rstrip(b"\0") == b"(none)"
    assert int.from_bytes(field("LINUX_KERNEL_VERSION"), "little") == kernel_version()


def test_missing_strong_kconfig_is_an_error() -> None:
    obj = load_object(OBJ / "kconfig.o")
    with pytest.raises(LinkError, match="CONFIG_BPF_SYSCALL"):
        kconfig_value(obj.externs, obj.maps[".kconfig"].value_size, {"CONFIG_HZ": "100"})


def ext(kind: KconfigType, size: int, signed: bool = False) -> dict[str, ExternSpec]:
    return {"CONFIG_X": ExternSpec("CONFIG_X", ExternKind.KCONFIG, 1, 1, size=size, kconfig_type=kind,
                                   signed=signed)}


@pytest.mark.parametrize(("kind", "size", "signed", "value", "want"), [
    (KconfigType.TRISTATE, 4, False, "m", (2).to_bytes(4, "little")),
    (KconfigType.TRISTATE, 4, False, "y", (1).to_bytes(4, "little")),
    (KconfigType.CHAR, 1, False, "m", b"m"),
    (KconfigType.INT, 8, False, "0x10", (16).to_bytes(8, "little")),
    (KconfigType.INT, 4, True, "-3", (-3).to_bytes(4, "little", signed=True)),
    (KconfigType.CHAR_ARRAY, 4, False, '"abcdef"', b"abc\0"),
])
def test_kconfig_encodings(kind: KconfigType, size: int, signed: bool, value: str, want: bytes) -> None:
    assert kconfig_value(ext(kind, size, signed), size, {"CONFIG_X": value}) == want


@pytest.mark.parametrize(("kind", "size", "value", "match"), [
    (KconfigType.BOOL, 1, "m", "bool"),
    (KconfigType.INT, 1, "300", "does not fit"),
    (KconfigType.INT, 4, "y", "not a number"),
    (KconfigType.INT, 4, "abc", "not a number"),
    (KconfigType.CHAR_ARRAY, 4, "y", "not a string"),
    (KconfigType.TRISTATE, 4, "7", "tristate"),
])
def test_kconfig_bad_values(kind: KconfigType, size: int, value: str, match: str) -> None:
    with pytest.raises(LinkError, match=match):
        kconfig_value(ext(kind, size), size, {"CONFIG_X": value})


@pytest.mark.parametrize(("obj", "name", "want"), [
    ("global_data", ".rodata", "global_d.rodata"),
    ("global_data", ".bss", "global_d.bss"),
    ("x", ".data", "x.data"),
    ("global_data", ".rodata.str1.1", ".rodata.str1.1"),
    ("global_data", ".kconfig", "global_.kconfig"),
    ("maps", "counts", "counts"),
])
def test_kernel_map_names_are_libbpfs(obj: str, name: str, want: str) -> None:
    assert kernel_map_name(obj, name) == want


def test_pin_names_have_no_dots() -> None:
    assert pin_name("global_d.rodata") == "global_d_rodata"


def test_failing_instruction_from_the_log() -> None:
    log = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (b7) r0 = 0\n1: (79) r0 = *(u64 *)(r9 +0)\nR9 !read_ok\n"
    assert _failing_insn(log) == 1
    assert _failing_insn("unreachable insn 7\n") == 7
    assert _failing_insn("nothing here") is None
