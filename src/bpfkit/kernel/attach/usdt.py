"""USDT probes (sys/sdt.h, DTRACE_PROBE): read them from `.note.stapsdt` and attach uprobes to them.

Each probe site is an ELF note (owner ``stapsdt``, type 3) whose descriptor holds three addresses (the
probe's pc, the link-time address of `.stapsdt.base`, the semaphore or 0) then three NUL-terminated
strings: provider, name, argument spec. When the file was prelinked the `.stapsdt.base` section moved;
the difference moves the pc too. A probe with a semaphore is attached with ``ref_ctr_offset`` so the
kernel counts attached probes in it (Linux 4.20); programs test the semaphore to skip argument setup.
Arguments come parsed (`bpfkit.kernel.attach.usdt_args`) for a BPF-side fetch to use.
"""

from __future__ import annotations

import os
import platform
import struct
from collections.abc import Sequence
from typing import Any

from bpfkit._records import record
from bpfkit.elf.symbols import read_image
from bpfkit.errors import ElfError
from bpfkit.kernel.attach.base import LinkGroup
from bpfkit.kernel.attach.elfsyms import find_binary
from bpfkit.kernel.attach.uprobe import attach_uprobe
from bpfkit.kernel.attach.usdt_args import UsdtArg, parse_usdt_args

NT_STAPSDT = 3
STAPSDT_NOTE = ".note.stapsdt"
STAPSDT_BASE = ".stapsdt.base"


@record
class UsdtProbe:
    """One USDT probe site: where it is (virtual `address`, file `offset`), its semaphore (virtual
    address and file offset, 0 when none) and its arguments."""

    path: str
    provider: str
    name: str
    address: int
    offset: int
    semaphore: int
    semaphore_offset: int
    arg_spec: str
    args: tuple[UsdtArg, ...]

    @property
    def full_name(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_stapsdt_notes(data: bytes, where: str = STAPSDT_NOTE) -> list[tuple[int, int, int, str, str, str]]:
    """The (pc, base, semaphore, provider, name, args) of every stapsdt note in section bytes `data`
    (64-bit, little endian); ElfError naming the byte offset of a malformed note."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_end = pos + 12 + namesz
        desc_start = pos + 12 + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(data):
            raise ElfError(f"{where}: note at offset {pos:#x} runs past the section end", pos)
        owner = data[pos + 12:name_end].rstrip(b"\0")
        if owner == b"stapsdt" and ntype == NT_STAPSDT:
            desc = data[desc_start:desc_end]
            if len(desc) < 24:
                raise ElfError(f"{where}: stapsdt note at offset {pos:#x} is too short ({len(desc)} bytes)",
                               pos)
            pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
            strings = desc[24:].split(b"\0")
            if len(strings) < 3:
                raise ElfError(f"{where}: stapsdt note at offset {pos:#x} lacks provider/name/args", pos)
            provider, name, args = (s.decode(errors="replace") for s in strings[:3])
            out.append((pc, base, sem, provider, name, args))
        pos = (desc_end + 3) & ~3
    return out


def read_usdt_probes(binary: str, pid: int | None = None, arch: str | None = None) -> list[UsdtProbe]:
    """Every USDT probe site in `binary` (a path or a name `find_binary` finds)."""
    path = find_binary(binary, pid)
    image = read_image(path)
    note = image.sections.get(STAPSDT_NOTE)
    if note is None:
        return []
    _addr, offset, size = note
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        raise ElfError(f"{path}: {e.strerror}") from None
    notes = parse_stapsdt_notes(data, f"{path} {STAPSDT_NOTE}")
    base_sec = image.sections.get(STAPSDT_BASE)
    base_addr = base_sec[0] if base_sec is not None else None
    arch = arch or platform.machine()
    probes = []
    for pc, base, sem, provider, name, args in notes:
        if base_addr is not None and base:
            pc += base_addr - base  # prelink moved .stapsdt.base; the probe moved with it
        where = f"{path}: USDT {provider}:{name}"
        probes.append(UsdtProbe(path, provider, name, pc, image.offset_of(pc), sem,
                                image.offset_of(sem) if sem else 0, args, parse_usdt_args(args, arch, where)))
    return probes


def find_usdt(binary: str, provider: str, name: str, pid: int | None = None) -> list[UsdtProbe]:
    """The sites of probe `provider:name` in `binary`; ElfError listing what is there when none."""
    probes = read_usdt_probes(binary, pid)
    sites = [p for p in probes if p.provider == provider and p.name == name]
    if not sites:
        known = sorted({p.full_name for p in probes})
        have = f"it has {', '.join(known)}" if known else "it has no USDT probes"
        raise ElfError(f"{find_binary(binary, pid)}: no USDT probe {provider}:{name} ({have})")
    return sites


def attach_usdt(program: Any, binary: str, provider: str, name: str, *, pid: int | None = None,
                cookies: Sequence[int] | None = None, legacy: bool | None = None) -> LinkGroup:
    """Attach `program` (kprobe type) at every site of USDT probe `provider:name` in `binary`, with the
    semaphore counted while attached. `cookies` (one per site, default the site index) reach the
    program through bpf_get_attach_cookie() so it can tell sites (and their argument specs) apart."""
    sites = find_usdt(binary, provider, name, pid)
    if cookies is not None and len(cookies) != len(sites):
        raise ValueError(f"attach_usdt: {len(cookies)} cookies for {len(sites)} sites of {provider}:{name}")
    group = LinkGroup()
    try:
        for i, site in enumerate(sites):
            cookie = cookies[i] if cookies is not None else i
            group.add(attach_uprobe(program, site.path, offset=site.offset, pid=pid,
                                    ref_ctr_offset=site.semaphore_offset, cookie=cookie, legacy=legacy))
    except BaseException:
        group.close()
        raise
    for link in group:
        link.kind = "usdt"
        link.target = f"{os.path.basename(sites[0].path)}:{provider}:{name}"
    return group
