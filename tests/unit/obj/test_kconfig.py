"""`bpfkit.obj.kconfig`: the pure `.kconfig` facts shared by the kernel loader and the VM (the
encodings themselves are also exercised through `bpfkit.kernel.collection` in
tests/unit/kernel/test_collection.py)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from bpfkit.errors import LinkError
from bpfkit.obj import ExternKind, ExternSpec, KconfigType, load_object
from bpfkit.obj import kconfig as kc

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"


def _field(value: bytes, e: ExternSpec) -> bytes:
    return value[e.offset : e.offset + e.size]


def test_parse_kconfig_lines() -> None:
    text = "CONFIG_A=y\n  # CONFIG_B is not set\nCONFIG_C=\"x=y\"\n# other comment\nNOT_CONFIG=1\n"
    assert kc.parse_kconfig(text) == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x=y"'}


@pytest.mark.parametrize(("value", "want"), [(True, "y"), (False, "n"), (250, "250"), ("m", "m"),
                                             ('"host"', '"host"')])
def test_config_text(value: object, want: str) -> None:
    assert kc.config_text(value) == want


def test_loader_facts_can_be_given() -> None:
    """LINUX_KERNEL_VERSION comes from uname unless the config names it (the VM describes a kernel)."""
    obj = load_object(OBJ / "kconfig.o")
    size = obj.maps[".kconfig"].value_size
    base = {"CONFIG_HZ": "100", "CONFIG_BPF_SYSCALL": "y"}
    lkv = obj.externs["LINUX_KERNEL_VERSION"]
    live = kc.kconfig_value(obj.externs, size, base)
    assert int.from_bytes(_field(live, lkv), "little") == kc.kernel_version()
    given = kc.kconfig_value(obj.externs, size, {**base, "LINUX_KERNEL_VERSION": str(0x050A00)})
    assert int.from_bytes(_field(given, lkv), "little") == 0x050A00
    with pytest.raises(LinkError, match="LINUX_KERNEL_VERSION: value 'y' is not a number"):
        kc.kconfig_value(obj.externs, size, {**base, "LINUX_KERNEL_VERSION": "y"})


def test_loader_fact_bool_defaults_to_yes() -> None:
    e = ExternSpec("LINUX_HAS_BPF_COOKIE", ExternKind.KCONFIG, 1, 1, size=1, kconfig_type=KconfigType.BOOL)
    assert kc.kconfig_value({e.name: e}, 1, {}) == b"\x01"
    assert kc.kconfig_value({e.name: e}, 1, {e.name: "n"}) == b"\x00"


def test_kernel_version_caps_the_patch_level() -> None:
    assert kc.kernel_version("6.18.300-x") == (6 << 16) + (18 << 8) + 255
    assert kc.kernel_version("5") == 5 << 16


def test_read_kconfig_is_the_live_config() -> None:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        path = Path(f"/boot/config-{os.uname().release}")
        if not path.is_file():
            assert kc.read_kconfig() == {}
            return
        text = path.read_text()
    cfg = kc.read_kconfig()
    assert cfg == kc.parse_kconfig(text) and cfg.get("CONFIG_BPF_SYSCALL") == "y"


def test_the_kernel_loader_uses_the_same_functions() -> None:
    from bpfkit.kernel import collection

    for name in ("kconfig_value", "kernel_version", "parse_kconfig", "read_kconfig"):
        assert getattr(collection, name) is getattr(kc, name)
