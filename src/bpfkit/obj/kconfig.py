"""Kernel config facts for `.kconfig` externs: parse a kernel config, encode the `.kconfig` map value.

Pure functions shared by the kernel loader (`bpfkit.kernel.collection`) and the userspace VM
(`bpfkit.vm.objects`): neither needs the other to fill `.kconfig`. `read_kconfig` only reads a file
(/proc/config.gz or /boot/config-$(uname -r)); it makes no system call beyond open/read.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Mapping
from pathlib import Path

from bpfkit.errors import LinkError
from bpfkit.obj.externs import ExternKind, ExternSpec, KconfigType

_NOT_SET = re.compile(r"# (CONFIG_\w+) is not set$")
LOADER_FACTS = ("LINUX_KERNEL_VERSION", "LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER")
"""`.kconfig` names a loader provides itself rather than reading them from the config."""


def kernel_version(release: str | None = None) -> int:
    """LINUX_KERNEL_VERSION of `release` (default: uname -r): KERNEL_VERSION(a, b, min(c, 255))."""
    rel = release if release is not None else os.uname().release
    nums = [int(x) for x in re.findall(r"\d+", rel)[:3]] + [0, 0, 0]
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)


def parse_kconfig(text: str) -> dict[str, str]:
    """`CONFIG_X=value` lines of a kernel config; `# CONFIG_X is not set` gives "n"."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        m = _NOT_SET.match(line)
        if m:
            out[m.group(1)] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def read_kconfig() -> dict[str, str]:
    """The running kernel's config from /proc/config.gz, else /boot/config-$(uname -r); {} if neither."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return parse_kconfig(f.read())
    except OSError:
        pass
    try:
        return parse_kconfig(Path(f"/boot/config-{os.uname().release}").read_text())
    except OSError:
        return {}


def config_text(value: object) -> str:
    """A config value as the config file spells it: True/False -> y/n, numbers in decimal, strings
    as given (a char array's value keeps its quotes: '"name"')."""
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def _kconfig_bytes(e: ExternSpec, value: str) -> bytes:
    """The bytes of extern `e` for config `value` (y/m/n, a number or a quoted string)."""
    kt = e.kconfig_type
    tri = {"y": 1, "n": 0, "m": 2}
    if kt is KconfigType.BOOL:
        if value not in ("y", "n"):
            raise LinkError(f"value {value!r} does not fit a bool", e.name)
        return bytes([tri[value]])
    if kt is KconfigType.TRISTATE:
        if value not in tri:
            raise LinkError(f"value {value!r} is not a tristate (y, n or m)", e.name)
        return tri[value].to_bytes(e.size, "little")
    if kt is KconfigType.CHAR:
        if value not in tri:
            raise LinkError(f"value {value!r} does not fit a char (y, n or m)", e.name)
        return value.encode()
    if kt is KconfigType.CHAR_ARRAY:
        if not (len(value) >= 2 and value[0] == value[-1] == '"'):
            raise LinkError(f"value {value!r} is not a string", e.name)
        raw = value[1:-1].encode()[: e.size - 1]
        return raw + bytes(e.size - len(raw))
    if value in tri:
        raise LinkError(f"value {value!r} is not a number", e.name)
    try:
        n = int(value, 0)
    except ValueError:
        raise LinkError(f"value {value!r} is not a number", e.name) from None
    try:
        return n.to_bytes(e.size, "little", signed=e.signed and n < 0)
    except OverflowError:
        raise LinkError(f"value {value!r} does not fit in {e.size} bytes", e.name) from None


def kconfig_value(externs: Mapping[str, ExternSpec], size: int, config: Mapping[str, str]) -> bytes:
    """The `.kconfig` map value: each KCONFIG extern from `config` (plus LINUX_* facts); missing weak
    externs stay zero, missing strong ones raise `LinkError`.

    The LINUX_* facts come from the running system (LINUX_KERNEL_VERSION from uname) unless `config`
    has them, which lets a caller describe another kernel (the VM does).
    """
    out = bytearray(size)
    for e in externs.values():
        if e.kind is not ExternKind.KCONFIG:
            continue
        if e.name in LOADER_FACTS and e.name in config:
            raw = _kconfig_bytes(e, config[e.name])
        elif e.name == "LINUX_KERNEL_VERSION":
            raw = kernel_version().to_bytes(e.size, "little") if e.size in (4, 8) else b""
            if not raw:
                raise LinkError("LINUX_KERNEL_VERSION must be a 4- or 8-byte integer", e.name)
        elif e.name in ("LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER"):
            raw = _kconfig_bytes(e, "y" if e.kconfig_type is KconfigType.BOOL else "1")
        elif e.name in config:
            raw = _kconfig_bytes(e, config[e.name])
        elif e.weak:
            continue
        else:
            raise LinkError("not set in the kernel config (declare it __weak to allow that)", e.name)
        out[e.offset : e.offset + len(raw)] = raw
    return bytes(out)


__all__ = ["LOADER_FACTS", "config_text", "kconfig_value", "kernel_version", "parse_kconfig", "read_kconfig"]
