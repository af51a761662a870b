""".BTF.ext: per-section function info, line info and CO-RE relocation records of a BPF object.

Layout (as LLVM writes it and libbpf reads it): a header (`magic`, `version`, `flags`, `hdr_len`, then
offset/length pairs of the func_info, line_info and, when `hdr_len >= 32`, core_relo subsections,
offsets counted from the end of the header). Each subsection starts with a u32 record size, followed
by blocks of `{u32 sec_name_off; u32 num_info; record[num_info]}`. Records are `struct bpf_func_info`,
`struct bpf_line_info` and `struct bpf_core_relo` (linux/bpf.h); a larger record size than these is
allowed (newer producers), a smaller one is not. Instruction offsets are in bytes from the start of the
ELF section; every string offset refers to the string section of the object's .BTF (the `Spec`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

from bpfkit._records import record
from bpfkit.errors import BtfError
from bpfkit.uapi.btf import (
    BTF_MAGIC,
    BTF_VERSION,
    CORE_RELO_SIZE,
    EXT_HEADER_CORE_SIZE,
    EXT_HEADER_SIZE,
    FUNC_INFO_SIZE,
    LINE_INFO_COL_MASK,
    LINE_INFO_LINE_SHIFT,
    LINE_INFO_SIZE,
    CoreReloKind,
)

from .spec import Spec

__all__ = ["BtfExt", "CoreRelo", "FuncInfo", "LineInfo", "load_btf_ext"]

R = TypeVar("R")


@record
class FuncInfo:
    """`struct bpf_func_info`: the function (FUNC type `type_id`) starting at byte `insn_off`."""

    insn_off: int
    type_id: int


@record
class LineInfo:
    """`struct bpf_line_info` with its strings resolved: source `file_name`, `line` and `column`,
    and the source line's text (`line_text`) for the instruction at byte `insn_off`."""

    insn_off: int
    file_name: str
    line_text: str
    line: int
    column: int
    file_name_off: int
    line_off: int


@record
class CoreRelo:
    """`struct bpf_core_relo`: relocate the instruction at byte `insn_off` against root type `type_id`
    following `access` (e.g. "0:1:0": field indices, or an enumerator index), by `kind`."""

    insn_off: int
    type_id: int
    access: str
    kind: CoreReloKind
    access_str_off: int


@record
class BtfExt:
    """The decoded .BTF.ext of one object, records grouped by ELF section name in file order."""

    func_info: dict[str, tuple[FuncInfo, ...]]
    line_info: dict[str, tuple[LineInfo, ...]]
    core_relos: dict[str, tuple[CoreRelo, ...]]
    func_info_rec_size: int = FUNC_INFO_SIZE
    line_info_rec_size: int = LINE_INFO_SIZE
    core_relo_rec_size: int = CORE_RELO_SIZE


class _Reader:
    def __init__(self, data: bytes, spec: Spec) -> None:
        self.data = data
        self.spec = spec
        if len(data) < EXT_HEADER_SIZE:
            raise BtfError(f".BTF.ext: truncated header: {len(data)} bytes, need {EXT_HEADER_SIZE}", 0)
        if data[:2] == BTF_MAGIC.to_bytes(2, "little"):
            self.order = "<"
        elif data[:2] == BTF_MAGIC.to_bytes(2, "big"):
            self.order = ">"
        else:
            raise BtfError(f".BTF.ext: bad magic 0x{data[0]:02x}{data[1]:02x}", 0)
        _magic, version, flags, hdr_len = struct.unpack_from(self.order + "HBBI", data)
        if version != BTF_VERSION:
            raise BtfError(f".BTF.ext: unsupported version {version}", 2)
        if flags:
            raise BtfError(f".BTF.ext: unsupported flags 0x{flags:x}", 3)
        if hdr_len < EXT_HEADER_SIZE or hdr_len > len(data):
            raise BtfError(
                f".BTF.ext: header length {hdr_len} out of range {EXT_HEADER_SIZE}..{len(data)}", 4
            )
        self.hdr_len = hdr_len

    def u32s(self, offset: int, count: int) -> tuple[int, ...]:
        if offset + 4 * count > len(self.data):
            raise BtfError(
                f".BTF.ext: {4 * count} bytes needed past the end ({len(self.data)} bytes)", offset
            )
        return struct.unpack_from(f"{self.order}{count}I", self.data, offset)

    def string(self, off: int, where: int, what: str) -> str:
        try:
            return self.spec.string(off)
        except BtfError as e:
            raise BtfError(f".BTF.ext: {what}: {e.message}", where) from None

    def subsection(
        self, field: int, label: str, min_rec: int, build: Callable[[tuple[int, ...], int], R]
    ) -> tuple[dict[str, tuple[R, ...]], int]:
        """Decode one info subsection whose (off, len) pair sits at header offset `field`."""
        off, length = self.u32s(field, 2)
        if not length:
            return {}, min_rec
        start = self.hdr_len + off
        end = start + length
        if end > len(self.data):
            raise BtfError(f".BTF.ext: {label} (off {off}, len {length}) overruns the section", field)
        if length < 4:
            raise BtfError(f".BTF.ext: {label} has no record size", start)
        (rec_size,) = self.u32s(start, 1)
        if rec_size < min_rec or rec_size % 4:
            raise BtfError(
                f".BTF.ext: {label} record size {rec_size} (need a multiple of 4 >= {min_rec})", start
            )
        words = min_rec // 4
        out: dict[str, tuple[R, ...]] = {}
        pos = start + 4
        while pos < end:
            if pos + 8 > end:
                raise BtfError(f".BTF.ext: {label}: truncated section block header", pos)
            name_off, count = self.u32s(pos, 2)
            name = self.string(name_off, pos, f"{label} section name")
            if not name:
                raise BtfError(f".BTF.ext: {label}: empty section name", pos)
            pos += 8
            if pos + count * rec_size > end:
                raise BtfError(
                    f".BTF.ext: {label} of section {name!r}: {count} records of {rec_size} bytes overrun "
                    f"the subsection",
                    pos - 4,
                )
            records = [build(self.u32s(pos + i * rec_size, words), pos + i * rec_size) for i in range(count)]
            out[name] = out.get(name, ()) + tuple(records)
            pos += count * rec_size
        return out, rec_size

    def func_info(self, w: tuple[int, ...], at: int) -> FuncInfo:
        if w[1] >= self.spec.type_count:
            raise BtfError(f".BTF.ext: func_info type id {w[1]} out of range", at + 4)
        return FuncInfo(w[0], w[1])

    def line_info(self, w: tuple[int, ...], at: int) -> LineInfo:
        file_name = self.string(w[1], at + 4, "line_info file name")
        text = self.string(w[2], at + 8, "line_info line")
        return LineInfo(w[0], file_name, text, w[3] >> LINE_INFO_LINE_SHIFT, w[3] & LINE_INFO_COL_MASK,
                        w[1], w[2])

    def core_relo(self, w: tuple[int, ...], at: int) -> CoreRelo:
        if w[1] >= self.spec.type_count:
            raise BtfError(f".BTF.ext: core_relo type id {w[1]} out of range", at + 4)
        if w[3] > max(CoreReloKind):
            raise BtfError(f".BTF.ext: unknown CO-RE relocation kind {w[3]}", at + 12)
        access = self.string(w[2], at + 8, "core_relo access string")
        return CoreRelo(w[0], w[1], access, CoreReloKind(w[3]), w[2])


def load_btf_ext(data: bytes, spec: Spec) -> BtfExt:
    """Decode a .BTF.ext section; `spec` is the object's .BTF (for strings and type ids)."""
    r = _Reader(bytes(data), spec)
    funcs, func_size = r.subsection(8, "func_info", FUNC_INFO_SIZE, r.func_info)
    lines, line_size = r.subsection(16, "line_info", LINE_INFO_SIZE, r.line_info)
    relos: dict[str, tuple[CoreRelo, ...]] = {}
    relo_size = CORE_RELO_SIZE
    if r.hdr_len >= EXT_HEADER_CORE_SIZE:
        relos, relo_size = r.subsection(24, "core_relo", CORE_RELO_SIZE, r.core_relo)
    return BtfExt(funcs, lines, relos, func_size, line_size, relo_size)
