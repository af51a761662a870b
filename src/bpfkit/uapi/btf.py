"""BTF ABI facts: kinds, encodings, linkages and on-disk record layouts.

Facts come from `include/uapi/linux/btf.h` (checked against the 6.18 kernel's own BTF, whose anonymous
enum lists the same kinds 0..19) and, for .BTF.ext, from `include/uapi/linux/bpf.h`
(`bpf_func_info`, `bpf_line_info`, `bpf_core_relo`) and the ELF section layout LLVM emits.
Layouts are `struct` format strings without a byte-order prefix; readers add `<` or `>`.
"""

from __future__ import annotations

import enum
from typing import Final

BTF_MAGIC: Final = 0xEB9F
"""`BTF_MAGIC`: first u16 of a BTF blob, in the blob's byte order."""
BTF_VERSION: Final = 1
"""`BTF_VERSION`."""
BTF_MAX_TYPE: Final = 0x000FFFFF
"""`BTF_MAX_TYPE`: largest type id."""
BTF_MAX_NAME_OFFSET: Final = 0x00FFFFFF
"""`BTF_MAX_NAME_OFFSET`: largest offset into the string section."""
BTF_MAX_VLEN: Final = 0xFFFF
"""`BTF_MAX_VLEN`: most members, enumerators or parameters of one type."""

HEADER_FORMAT: Final = "HBBIIIII"
"""`struct btf_header`: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len."""
HEADER_SIZE: Final = 24
TYPE_FORMAT: Final = "III"
"""`struct btf_type`: name_off, info, size-or-type."""
TYPE_SIZE: Final = 12

INFO_KIND_SHIFT: Final = 24
INFO_KIND_MASK: Final = 0x1F
INFO_VLEN_MASK: Final = 0xFFFF
INFO_KFLAG_SHIFT: Final = 31


def btf_info(kind: int, vlen: int = 0, kind_flag: bool = False) -> int:
    """Pack the `info` word of `struct btf_type` (`BTF_INFO_KIND`/`VLEN`/`KFLAG` in reverse)."""
    return (int(kind_flag) << INFO_KFLAG_SHIFT) | ((kind & INFO_KIND_MASK) << INFO_KIND_SHIFT) | (
        vlen & INFO_VLEN_MASK
    )


class Kind(enum.IntEnum):
    """`BTF_KIND_*`: what a `struct btf_type` describes (bits 24-28 of `info`)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


KIND_MAX: Final = Kind.ENUM64
"""`BTF_KIND_MAX`."""


class IntEncoding(enum.IntFlag):
    """`BTF_INT_*`: the encoding nibble of a BTF_KIND_INT (`BTF_INT_ENCODING`)."""

    NONE = 0
    SIGNED = 1 << 0
    CHAR = 1 << 1
    BOOL = 1 << 2


class FuncLinkage(enum.IntEnum):
    """`enum btf_func_linkage` (`BTF_FUNC_*`), stored in the vlen of a BTF_KIND_FUNC."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(enum.IntEnum):
    """`BTF_VAR_*`: `struct btf_var.linkage` of a BTF_KIND_VAR."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


# Trailing data after `struct btf_type`, per kind, in 32-bit words: (fixed words, words per vlen item).
# INT: u32 encoding; ARRAY: struct btf_array (3); STRUCT/UNION: struct btf_member (3) each;
# ENUM: struct btf_enum (2) each; FUNC_PROTO: struct btf_param (2) each; VAR: struct btf_var (1);
# DATASEC: struct btf_var_secinfo (3) each; DECL_TAG: struct btf_decl_tag (1); ENUM64: struct btf_enum64 (3).
KIND_EXTRA_WORDS: Final[dict[Kind, tuple[int, int]]] = {
    Kind.INT: (1, 0),
    Kind.PTR: (0, 0),
    Kind.ARRAY: (3, 0),
    Kind.STRUCT: (0, 3),
    Kind.UNION: (0, 3),
    Kind.ENUM: (0, 2),
    Kind.FWD: (0, 0),
    Kind.TYPEDEF: (0, 0),
    Kind.VOLATILE: (0, 0),
    Kind.CONST: (0, 0),
    Kind.RESTRICT: (0, 0),
    Kind.FUNC: (0, 0),
    Kind.FUNC_PROTO: (0, 2),
    Kind.VAR: (1, 0),
    Kind.DATASEC: (0, 3),
    Kind.FLOAT: (0, 0),
    Kind.DECL_TAG: (1, 0),
    Kind.TYPE_TAG: (0, 0),
    Kind.ENUM64: (0, 3),
}

# --- .BTF.ext (LLVM's ELF section; libbpf and the kernel's bpf_attr consume its records) ---

EXT_HEADER_FORMAT: Final = "HBBIIIII"
"""`struct btf_ext_header` up to line_info: magic, version, flags, hdr_len, func_info_off/len,
line_info_off/len."""
EXT_HEADER_SIZE: Final = 24
EXT_HEADER_CORE_FORMAT: Final = "II"
"""The header's extension with core_relo_off, core_relo_len (hdr_len >= 32)."""
EXT_HEADER_CORE_SIZE: Final = 32
EXT_SECTION_FORMAT: Final = "II"
"""Per-ELF-section block header in each info subsection: sec_name_off, num_info."""
FUNC_INFO_FORMAT: Final = "II"
"""`struct bpf_func_info`: insn_off, type_id."""
FUNC_INFO_SIZE: Final = 8
LINE_INFO_FORMAT: Final = "IIII"
"""`struct bpf_line_info`: insn_off, file_name_off, line_off, line_col."""
LINE_INFO_SIZE: Final = 16
LINE_INFO_LINE_SHIFT: Final = 10
"""`BPF_LINE_INFO_LINE_NUM(line_col)` is `line_col >> 10`."""
LINE_INFO_COL_MASK: Final = 0x3FF
"""`BPF_LINE_INFO_LINE_COL(line_col)` is `line_col & 0x3ff`."""
CORE_RELO_FORMAT: Final = "IIII"
"""`struct bpf_core_relo`: insn_off, type_id, access_str_off, kind."""
CORE_RELO_SIZE: Final = 16


class CoreReloKind(enum.IntEnum):
    """`enum bpf_core_relo_kind` (`BPF_CORE_*`, linux/bpf.h)."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12
