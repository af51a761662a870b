"""Kernel objects typed by the target BTF: loads through PTR_TO_BTF_ID pointers (the kernel's
check_ptr_to_btf_access and btf_struct_walk), and the contexts of BTF-typed programs (btf_ctx_access:
iterators, fentry/fexit, tp_btf).

A read inside a struct gives a number, or, where it reads a whole pointer member to a struct or union,
a pointer to that type (the kernel makes such loads safe at run time, so no NULL check is needed).
Writes, negative and variable offsets, and reads that straddle members are refused. The BTF is the
target's (`verify(btf=...)`); nothing here reads the running kernel.
"""

from __future__ import annotations

from typing import Any

from bpfkit._records import replace
from bpfkit.btf.types import (
    Array,
    Composite,
    EnumBase,
    Func,
    FuncProto,
    Int,
    Ptr,
    Struct,
    Type,
    Typedef,
    Union,
)
from bpfkit.errors import BtfError
from bpfkit.uapi.btf import Kind
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.vm.verifier import lsm
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.state import Reg, RegType, pointer

_MODIFIERS = frozenset({Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG})
_MAX_DEPTH = 64


def skip_modifiers(btf: Any, type_id: int) -> tuple[int, Type]:
    """(id, type) of `type_id` with typedefs, qualifiers and type tags skipped."""
    for _ in range(_MAX_DEPTH):
        t = btf.type_by_id(type_id)
        if t.kind not in _MODIFIERS:
            return type_id, t
        type_id = t.type_id
    raise Refusal(-1, f"BTF type {type_id}: modifier chain too long", "check the target BTF")


def need_btf(btf: Any, what: str) -> Any:
    """`btf`; refused, marked `needs_btf` (see `Report.needs_btf`), when there is none."""
    if btf is None:
        raise Refusal(-1, f"{what} needs the kernel's BTF",
                      "pass the target kernel's BTF to verify (btf=load_btf('/sys/kernel/btf/vmlinux'))",
                      needs_btf=True)
    return btf


def btf_pointer(btf: Any, struct_id: int, **fields: Any) -> Reg:
    """A PTR_TO_BTF_ID register to struct/union `struct_id`."""
    t = btf.type_by_id(struct_id)
    return pointer(RegType.BTF_ID, btf_id=struct_id, btf_name=getattr(t, "name", "") or "anon", **fields)


def _size(btf: Any, t: Type) -> int | None:
    try:
        return int(btf.sizeof(t))
    except (BtfError, AttributeError, TypeError):
        return None


PLAIN, TRUSTED, UNTRUSTED = 0, 1, 2
"""`Reg.trust` of a BTF_ID pointer: the kernel's plain (legacy) PTR_TO_BTF_ID, PTR_TRUSTED (the
context's arguments, a kfunc's result) or PTR_UNTRUSTED (read out of a trusted object, or through a
union): helpers take plain and trusted pointers, never untrusted ones."""
TRUST_NAMES = {PLAIN: "ptr_", TRUSTED: "trusted_ptr_", UNTRUSTED: "untrusted_ptr_"}
TRUSTED_FIELDS = frozenset({("bpf_iter_meta", "seq")})
"""Pointer members that stay trusted when read from a trusted struct (the kernel's
BTF_TYPE_SAFE_TRUSTED lists; bpfkit knows only these)."""


class _Hit:
    """Where a walk ended: a pointer member (the struct id it points to, its name) or a number;
    `loose` if the walk went through a union of several members."""

    __slots__ = ("field", "loose", "target")

    def __init__(self, target: int | None, field: str = "", loose: bool = False) -> None:
        self.target, self.field, self.loose = target, field, loose


def _walk(btf: Any, t: Composite, off: int, size: int) -> _Hit:
    """One step of btf_struct_walk inside `t`: the struct id a whole pointer member at [off, off+size)
    points to, None for a number; nested structs and arrays are entered. Inside a union of several
    members the kernel no longer knows which one holds, and lets a read run past the member's end
    (as long as it stays in the struct)."""
    loose = False
    for _ in range(_MAX_DEPTH):
        loose = loose or (isinstance(t, Union) and len(t.members) != 1)
        if off + size > t.size:
            raise Refusal(-1, f"access beyond struct {t.name_or_anon} at off {off} size {size}",
                          "the access runs past the end of the kernel struct: check the field offset")
        found: tuple[Composite, int] | None = None
        for m in t.members:
            moff = m.bit_offset // 8
            if off + size <= moff:
                break
            if m.bitfield_size:
                end = (m.bit_offset + m.bitfield_size + 7) // 8
                if off <= moff and end <= off + size:
                    return _Hit(None, loose=loose)
                continue
            if off < moff:
                break
            _, mtype = skip_modifiers(btf, m.type_id)
            msize = _size(btf, mtype)
            if msize is None:
                raise Refusal(-1, f"field {m.name} doesn't have size", "check the target BTF")
            mend = moff + msize  # for an array, the end of the whole array
            if off >= mend:
                continue
            while isinstance(mtype, Array):
                esize = _size(btf, btf.type_by_id(mtype.type_id))
                if not esize:
                    raise Refusal(-1, f"field {m.name} doesn't have size", "check the target BTF")
                moff += (off - moff) // esize * esize
                _, mtype = skip_modifiers(btf, mtype.type_id)
                msize = esize
            if isinstance(mtype, (Struct, Union)):
                found = (mtype, moff)
                break
            if isinstance(mtype, Ptr):
                if msize != size or off != moff:
                    raise Refusal(-1, f"cannot access ptr member {m.name} with moff {moff} in struct "
                                      f"{t.name_or_anon} with off {off} size {size}",
                                  "read a pointer member whole, with an 8-byte load at its offset")
                sid, stype = skip_modifiers(btf, mtype.type_id)
                if isinstance(stype, (Struct, Union)):
                    return _Hit(sid, m.name, loose)
            if off + size > mend and not loose:
                raise Refusal(-1, f"access beyond the end of member {m.name} (mend:{mend}) in "
                                  f"struct {t.name_or_anon} with off {off} size {size}",
                              "read one member at a time")
            return _Hit(None, loose=loose)
        if found is None:
            raise Refusal(-1, f"struct {t.name_or_anon} doesn't have field at offset {off}",
                          "the offset falls in a hole of the kernel struct")
        t, moff = found
        off -= moff
    raise Refusal(-1, "struct nesting too deep", "check the target BTF")


def btf_read(btf: Any, regno: int, reg: Reg, off: int, size: int, write: bool) -> Reg | None:
    """Check a load through a PTR_TO_BTF_ID register; the pointer it loads, or None when the load
    gives a number. A pointer read from a trusted object stays trusted only for the fields the kernel
    lists (`TRUSTED_FIELDS`); otherwise it is untrusted (check_ptr_to_btf_access outside an RCU read
    section; inside one bpfkit assumes the same, which only makes it stricter)."""
    if not reg.b.is_const or reg.b.value:
        raise Refusal(-1, f"R{regno} is ptr_{reg.btf_name} invalid variable offset: off={reg.off}, "
                          f"var_off={reg.b.var_off}",
                      "kernel objects are read at constant offsets only")
    off += reg.off
    if off < 0:
        raise Refusal(-1, f"R{regno} is ptr_{reg.btf_name} invalid negative access: off={off}",
                      "the offset must lie inside the kernel struct")
    if write:
        raise Refusal(-1, "only read is supported", f"kernel objects (struct {reg.btf_name}) are read-only "
                                                     f"to this program")
    t = btf.type_by_id(reg.btf_id)
    if not isinstance(t, Composite):
        raise Refusal(-1, f"Type '{t.name_or_anon}' is not a struct", "check the pointer's type")
    hit = _walk(btf, t, off, size)
    if hit.target is None:
        return None
    if hit.loose or reg.trust == UNTRUSTED:
        trust = UNTRUSTED
    elif reg.trust == TRUSTED:
        trust = TRUSTED if (reg.btf_name, hit.field) in TRUSTED_FIELDS else UNTRUSTED
    else:
        trust = PLAIN
    return btf_pointer(btf, hit.target, trust=trust)


# -- BTF-typed contexts ---------------------------------------------------------------------------------
ITER_META_OFF = 0
"""An iterator's first argument, `struct bpf_iter_meta *meta`, is never NULL; bpfkit treats every
other pointer argument of an iterator as possibly NULL (task, file, map element...), as strict as the
strictest of the kernel's per-iterator `ctx_arg_info`."""


def attach_proto(btf: Any, prog_type: ProgType, attach: AttachType | None, attach_to: str) -> FuncProto:
    """The prototype whose arguments make up a BTF-typed program's context."""
    article = "an" if prog_type == ProgType.LSM else "a"
    btf = need_btf(btf, f"{article} {prog_type.name} program's context")
    if prog_type == ProgType.LSM:
        return lsm.hook_proto(btf, attach_to)
    if attach == AttachType.TRACE_RAW_TP:
        return _raw_tp_proto(btf, attach_to)
    if attach == AttachType.TRACE_ITER:
        name = "bpf_iter_" + attach_to
    elif attach in (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT):
        name = attach_to
    else:
        raise Refusal(-1, f"bpfkit's verifier does not model {prog_type.name} programs attached as "
                          f"{attach.name if attach is not None else 'nothing'}",
                      "it models iterators (iter/...), fentry/fexit and tp_btf; load the program in the "
                      "kernel")
    if not name or not attach_to:
        raise Refusal(-1, "the program names no attach target", "load it from an object section such as "
                                                                "SEC(\"iter/task\") or pass attach_to")
    missing = Refusal(-1, f"attach target {name!r} is not a function in the kernel's BTF",
                      "check the iterator or function name")
    return func_proto(btf, find_func(btf, name, missing))


def find_func(btf: Any, name: str, missing: Refusal) -> Func:
    """Function `name` of the target BTF (the first of that name); `missing` raised when there is none."""
    funcs = [t for t in btf.find_all(name, Func) if isinstance(t, Func)]
    if not funcs:
        raise missing
    return funcs[0]


def func_proto(btf: Any, func: Func) -> FuncProto:
    """The prototype of function `func` of the target BTF."""
    proto = btf.type_by_id(func.type_id)
    if not isinstance(proto, FuncProto):
        raise Refusal(-1, f"{func.name!r} has no prototype in the kernel's BTF", "check the target BTF")
    return proto


def _raw_tp_proto(btf: Any, tracepoint: str) -> FuncProto:
    """tp_btf/NAME: the arguments of typedef btf_trace_NAME, a pointer to a prototype whose first
    argument (the tracepoint's private data) the program does not see."""
    found = btf.find_all("btf_trace_" + tracepoint, Typedef) if tracepoint else []
    if found:
        ptr = btf.type_by_id(found[0].type_id)
        proto = btf.type_by_id(ptr.type_id) if isinstance(ptr, Ptr) else None
        if isinstance(proto, FuncProto) and proto.params:
            return replace(proto, params=proto.params[1:])
    raise Refusal(-1, f"attach target btf_trace_{tracepoint} is not a tracepoint in the kernel's BTF",
                  "check the tracepoint name of SEC(\"tp_btf/...\")")


MAYBE_NULL_ARGS = frozenset({AttachType.TRACE_ITER, AttachType.TRACE_RAW_TP})
"""Attach types whose pointer arguments bpfkit treats as possibly NULL: an iterator's (except
`meta`), and every pointer of a tracepoint (the kernel lists the tracepoint arguments that may be
NULL; bpfkit does not know that list, so assumes any may be)."""


def ctx_read(btf: Any, proto: FuncProto, attach: AttachType | None, off: int, size: int,
             write: bool, new_id: Any, trusted: bool = False) -> Reg | None:
    """A read of the u64 argument array of a BTF-typed program (btf_ctx_access): the register it
    gives (None: a number), or a refusal. An LSM program (attach LSM_MAC) reads, as fexit does, the
    return value one slot past the arguments (a number; also for a void hook); `trusted` makes its
    pointer arguments trusted (`lsm.trusted_args`)."""
    if write:
        raise Refusal(-1, f"invalid bpf_context access off={off} size={size}",
                      "the arguments of a tracing program are read-only")
    if off < 0 or off % 8 or size not in (1, 2, 4, 8):
        raise Refusal(-1, f"func offset {off} is not multiple of 8" if off >= 0 else
                      f"invalid bpf_context access off={off} size={size}",
                      "read each argument as a whole u64 (ctx[i] at offset 8*i)")
    nargs = len(proto.params)
    arg = off // 8
    if attach in (AttachType.TRACE_FEXIT, AttachType.LSM_MAC) and arg == nargs:
        type_id = proto.return_type_id
        if type_id == 0:
            return None  # a void LSM hook: the slot reads as a number
    elif arg < nargs:
        type_id = proto.params[arg].type_id
    else:
        raise Refusal(-1, f"func doesn't have {arg + 1}-th argument",
                      f"the function has {nargs} argument(s)")
    _, t = skip_modifiers(btf, type_id)
    if isinstance(t, (Int, EnumBase)) and getattr(t, "size", 8) <= 8:
        return None
    if not isinstance(t, Ptr):
        raise Refusal(-1, f"func arg{arg} has type {t.kind.name.lower()}. Only pointer access is allowed",
                      "bpfkit reads scalar and pointer arguments only")
    if size != 8:
        raise Refusal(-1, f"invalid bpf_context access off={off} size={size}",
                      "read a pointer argument with an 8-byte load")
    if t.type_id == 0:
        return None  # void *: a number
    sid, stype = skip_modifiers(btf, t.type_id)
    if not isinstance(stype, (Struct, Union)):
        raise Refusal(-1, f"func arg{arg} type {stype.kind.name.lower()} is not a struct",
                      "bpfkit reads pointer arguments to structs only")
    trust = TRUSTED if attach in MAYBE_NULL_ARGS or trusted else PLAIN  # prog_args_trusted
    if attach in MAYBE_NULL_ARGS and not (attach == AttachType.TRACE_ITER and off == ITER_META_OFF):
        return btf_pointer(btf, sid, maybe_null=True, id=new_id(), trust=trust)
    return btf_pointer(btf, sid, trust=trust)
