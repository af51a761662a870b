"""BTF: lazy reading (`load_btf`, `Spec`), types, layout, formatting, writing (`BtfBuilder`) and
.BTF.ext records (`load_btf_ext`).

    spec = load_btf("/sys/kernel/btf/vmlinux")
    task = spec.find("task_struct", Struct)
    spec.member(task, "se.vruntime").byte_offset
"""

from typing import TYPE_CHECKING

from bpfkit.uapi.btf import FuncLinkage, IntEncoding, Kind, VarLinkage

if TYPE_CHECKING:
    from .cdump import dump_c
from .ext import BtfExt, CoreRelo, FuncInfo, LineInfo, load_btf_ext
from .format import describe, type_str
from .layout import MemberRef
from .marshal import BtfBuilder, marshal
from .raw import dump_raw
from .spec import Spec, load_btf
from .types import (
    Array,
    Composite,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumBase,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Void,
    Volatile,
)

__all__ = [
    "Array",
    "BtfBuilder",
    "BtfExt",
    "Composite",
    "Const",
    "CoreRelo",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumBase",
    "EnumValue",
    "Float",
    "Func",
    "FuncInfo",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "Kind",
    "LineInfo",
    "Member",
    "MemberRef",
    "Param",
    "Ptr",
    "Restrict",
    "Spec",
    "Struct",
    "Type",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarLinkage",
    "VarSecinfo",
    "Void",
    "Volatile",
    "describe",
    "dump_c",
    "dump_raw",
    "load_btf",
    "load_btf_ext",
    "marshal",
    "type_str",
]


def __getattr__(name: str) -> object:
    """`dump_c` (the C writer, a large module) loads on first use: parsing BTF does not need it."""
    if name == "dump_c":
        from .cdump import dump_c

        return dump_c
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
