"""BTF types as frozen records (`bpfkit._records`), one class per BTF kind.

Types refer to other types by id (`type_id` fields), never by object, so a spec can decode one type
without touching the rest. A type decoded from a `Spec` carries its `id` and the `spec` (neither takes part
in equality), which lets `str(t)` render C declarations such as `int *` or `u32 (*)(void *, int)`.
Types built by hand (for `BtfBuilder`) have `id == 0` and no spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from bpfkit._records import field, record
from bpfkit.uapi.btf import FuncLinkage, IntEncoding, Kind, VarLinkage

if TYPE_CHECKING:
    from bpfkit.btf.spec import Spec

__all__ = [
    "Array",
    "Composite",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumBase",
    "EnumValue",
    "Float",
    "Func",
    "FuncProto",
    "Fwd",
    "Int",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "Type",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarSecinfo",
    "Void",
    "Volatile",
]


@record
class Type:
    """Base of all BTF types. `kind` is the BTF_KIND_* of the class."""

    kind: ClassVar[Kind] = Kind.UNKN
    id: int = field(default=0, compare=False, kw_only=True)
    spec: Spec | None = field(default=None, compare=False, repr=False, kw_only=True)

    @property
    def name_or_anon(self) -> str:
        """The type's name, or `(anon)` as bpftool prints nameless types."""
        return getattr(self, "name", "") or "(anon)"

    def __str__(self) -> str:
        from bpfkit.btf.format import type_str

        return type_str(self)


@record
class Void(Type):
    """Type id 0: `void`. Never stored in a blob."""

    name: str = ""


@record
class Int(Type):
    """BTF_KIND_INT: an integer of `size` bytes, `bits` wide (default: all of them) starting `offset`
    bits in (old-style bitfields); `encoding` says signed, char or bool."""

    kind: ClassVar[Kind] = Kind.INT
    name: str
    size: int
    encoding: IntEncoding = IntEncoding.NONE
    offset: int = 0
    bits: int = -1

    def __post_init__(self) -> None:
        if self.bits < 0:
            object.__setattr__(self, "bits", self.size * 8)

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@record
class Ptr(Type):
    """BTF_KIND_PTR: a pointer to `type_id`."""

    kind: ClassVar[Kind] = Kind.PTR
    type_id: int
    name: str = ""


@record
class Array(Type):
    """BTF_KIND_ARRAY: `nelems` elements of `type_id`, indexed by `index_type_id`."""

    kind: ClassVar[Kind] = Kind.ARRAY
    type_id: int
    index_type_id: int
    nelems: int
    name: str = ""


@record
class Member:
    """A struct/union member. `bitfield_size` is 0 for a plain member.

    In a blob a struct whose members include a bitfield has kind_flag set and each `btf_member.offset`
    packs `bitfield_size << 24 | bit_offset`; otherwise the offset word is the bit offset alone.
    """

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8

    @property
    def is_bitfield(self) -> bool:
        return self.bitfield_size != 0


@record
class Composite(Type):
    """Shared shape of structs and unions."""

    name: str
    size: int
    members: tuple[Member, ...] = ()

    def member(self, name: str) -> Member:
        """The direct member called `name` (see `Spec.member` for nested and anonymous members)."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


@record
class Struct(Composite):
    """BTF_KIND_STRUCT."""

    kind: ClassVar[Kind] = Kind.STRUCT


@record
class Union(Composite):
    """BTF_KIND_UNION."""

    kind: ClassVar[Kind] = Kind.UNION


@record
class EnumValue:
    """One enumerator."""

    name: str
    value: int


@record
class EnumBase(Type):
    """Shared shape of 32- and 64-bit enums; `signed` is the kind_flag."""

    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False


@record
class Enum(EnumBase):
    """BTF_KIND_ENUM: enumerators of up to 32 bits."""

    kind: ClassVar[Kind] = Kind.ENUM


@record
class Enum64(EnumBase):
    """BTF_KIND_ENUM64: enumerators of up to 64 bits."""

    kind: ClassVar[Kind] = Kind.ENUM64


@record
class Fwd(Type):
    """BTF_KIND_FWD: a forward declaration of a struct (or of a union, when `union`, the kind_flag)."""

    kind: ClassVar[Kind] = Kind.FWD
    name: str
    union: bool = False


@record
class Typedef(Type):
    """BTF_KIND_TYPEDEF."""

    kind: ClassVar[Kind] = Kind.TYPEDEF
    name: str
    type_id: int


@record
class Volatile(Type):
    """BTF_KIND_VOLATILE."""

    kind: ClassVar[Kind] = Kind.VOLATILE
    type_id: int
    name: str = ""


@record
class Const(Type):
    """BTF_KIND_CONST."""

    kind: ClassVar[Kind] = Kind.CONST
    type_id: int
    name: str = ""


@record
class Restrict(Type):
    """BTF_KIND_RESTRICT."""

    kind: ClassVar[Kind] = Kind.RESTRICT
    type_id: int
    name: str = ""


@record
class Func(Type):
    """BTF_KIND_FUNC: a function `name` of prototype `type_id` (linkage is stored in the vlen)."""

    kind: ClassVar[Kind] = Kind.FUNC
    name: str
    type_id: int
    linkage: FuncLinkage = FuncLinkage.STATIC


@record
class Param:
    """A function prototype parameter (`name` may be empty)."""

    name: str
    type_id: int


@record
class FuncProto(Type):
    """BTF_KIND_FUNC_PROTO. `variadic` stands for the trailing (name 0, type 0) parameter."""

    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    return_type_id: int
    params: tuple[Param, ...] = ()
    variadic: bool = False
    name: str = ""


@record
class Var(Type):
    """BTF_KIND_VAR: a global or static variable."""

    kind: ClassVar[Kind] = Kind.VAR
    name: str
    type_id: int
    linkage: VarLinkage = VarLinkage.STATIC


@record
class VarSecinfo:
    """`struct btf_var_secinfo`: where variable `type_id` sits in a data section."""

    type_id: int
    offset: int
    size: int


@record
class Datasec(Type):
    """BTF_KIND_DATASEC: an ELF data section and the variables in it."""

    kind: ClassVar[Kind] = Kind.DATASEC
    name: str
    size: int
    vars: tuple[VarSecinfo, ...] = ()


@record
class Float(Type):
    """BTF_KIND_FLOAT."""

    kind: ClassVar[Kind] = Kind.FLOAT
    name: str
    size: int


@record
class DeclTag(Type):
    """BTF_KIND_DECL_TAG: tag `name` on `type_id`, or on its member/parameter `component_idx` (-1: whole).

    `attribute` is the kind_flag (Linux 6.13+): the tag is a plain C attribute, not `btf_decl_tag`.
    """

    kind: ClassVar[Kind] = Kind.DECL_TAG
    name: str
    type_id: int
    component_idx: int = -1
    attribute: bool = False


@record
class TypeTag(Type):
    """BTF_KIND_TYPE_TAG: tag `name` on `type_id`; `attribute` is the kind_flag (Linux 6.13+)."""

    kind: ClassVar[Kind] = Kind.TYPE_TAG
    name: str
    type_id: int
    attribute: bool = False
