"""CO-RE relocation: rewrite a program's instructions for the target kernel's types (pure).

A CO-RE record says "instruction N holds a fact about local type T reached through access path A"
(a member's byte offset, a type's size, an enumerator's value...). The compiler wrote the fact for
the object's own (local) BTF; `relocate` finds the target types that correspond to T, computes the
same fact on them and writes it into the instruction. The semantics follow the kernel's and libbpf's
documented rules (Documentation/bpf/llvm_reloc.rst, libbpf's "BPF CO-RE" reference):

- candidates are target types of the same kind whose name equals the local name with any
  `___flavor` suffix removed (`task_struct___local` -> `task_struct`);
- field access paths are walked member by member, by name, looking through anonymous members, with
  array indices checked against the target's bounds; member types must stay compatible;
- every matching candidate must give the same answer;
- a relocation with no match is "poisoned": the instruction becomes a call to helper 0xbad2310, which
  the verifier refuses only if the instruction is reachable; existence checks instead yield 0.

Nothing here touches the kernel: the target is a `Spec` (e.g. `/sys/kernel/btf/vmlinux` read as a file).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Protocol

from bpfkit._records import record
from bpfkit.btf.spec import Spec
from bpfkit.btf.types import (
    Array,
    Composite,
    Const,
    EnumBase,
    Float,
    FuncProto,
    Fwd,
    Int,
    Member,
    Ptr,
    Restrict,
    Type,
    Typedef,
    TypeTag,
    Volatile,
)
from bpfkit.errors import CoreRelocationError
from bpfkit.uapi.btf import CoreReloKind, IntEncoding, Kind

POISON_HELPER = 0xBAD2310
"""The helper id a failed relocation's instruction is made to call (libbpf's convention)."""

_FIELD_KINDS = frozenset({CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE,
                          CoreReloKind.FIELD_EXISTS, CoreReloKind.FIELD_SIGNED,
                          CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64})
_TYPE_KINDS = frozenset({CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET, CoreReloKind.TYPE_EXISTS,
                         CoreReloKind.TYPE_SIZE, CoreReloKind.TYPE_MATCHES})
_ENUM_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})
_EXISTENCE = frozenset({CoreReloKind.FIELD_EXISTS, CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES,
                        CoreReloKind.ENUMVAL_EXISTS})
_MODIFIERS = (Const, Volatile, Restrict, Typedef, TypeTag)
_MAX_DEPTH = 32

# Instruction classes (low 3 bits of the opcode) and the lddw opcode.
_LDX, _ST, _STX, _ALU, _ALU64 = 1, 2, 3, 4, 7
_LDDW = 0x18
_K = 0x00
_SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}  # BPF_W, BPF_H, BPF_B, BPF_DW
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}
_INSN = struct.Struct("<BBhi")


class Relocation(Protocol):
    """What `relocate` needs of a CO-RE record (`bpfkit.obj.CoreRelocation` fits)."""

    @property
    def index(self) -> int: ...
    @property
    def kind(self) -> CoreReloKind: ...
    @property
    def type_id(self) -> int: ...
    @property
    def access(self) -> str: ...


@record
class CoreResult:
    """How one relocation was resolved: the value the compiler wrote (`local`), the value written
    (`target`), the target type it came from (0: none) and whether the instruction was poisoned."""

    index: int
    kind: CoreReloKind
    local_type_id: int
    access: str
    local: int
    target: int
    target_type_id: int = 0
    poisoned: bool = False
    description: str = ""


def essential_name(name: str) -> str:
    """`name` without its `___flavor` suffix: the last `X___Y` separator (X, Y not '_') ends it."""
    for i in range(len(name) - 5, -1, -1):
        if (name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_"):
            return name[: i + 1]
    return name


def _skip_mods(spec: Spec, type_id: int) -> tuple[int, Type]:
    """`type_id` with typedefs and qualifiers skipped: (id, type)."""
    t = spec.type_by_id(type_id)
    for _ in range(_MAX_DEPTH):
        if not isinstance(t, _MODIFIERS):
            return type_id, t
        type_id = t.type_id
        t = spec.type_by_id(type_id)
    raise CoreRelocationError(f"type chain of id {type_id} is too deep (a loop?)")


def _kind_group(t: Type) -> Kind:
    """The kind used to compare types: ENUM64 counts as ENUM."""
    return Kind.ENUM if t.kind == Kind.ENUM64 else t.kind


# ------------------------------------------------------------------------------------------ specs


@record(frozen=False)
class _Access:
    """One step of an access path: a named member (`name`) of `type_id`, or an array index."""

    type_id: int
    idx: int
    name: str | None
    member: Member | None = None


@record(frozen=False)
class _Spec:
    """An access path resolved in one BTF: its steps, the final type and the bit offset reached."""

    spec: Spec
    root_id: int
    steps: list[_Access]
    raw: list[int]
    bit_offset: int = 0
    final_id: int = 0
    member: Member | None = None  # set when the last step is a member (bitfield information)
    enum_value: int = 0


def _parse_access(access: str) -> list[int]:
    try:
        out = [int(p) for p in access.split(":")]
    except ValueError:
        raise CoreRelocationError(f"malformed access string {access!r}") from None
    if not out or any(i < 0 for i in out):
        raise CoreRelocationError(f"malformed access string {access!r}")
    return out


def _local_spec(spec: Spec, type_id: int, kind: CoreReloKind, access: str) -> _Spec:
    """Resolve the local side of a relocation (the compiler's view)."""
    raw = _parse_access(access)
    out = _Spec(spec, type_id, [], raw, final_id=type_id)
    if kind in _TYPE_KINDS:
        if raw != [0]:
            raise CoreRelocationError(f"type relocation with access {access!r} (expected '0')")
        return out
    if kind in _ENUM_KINDS:
        _, t = _skip_mods(spec, type_id)
        if not isinstance(t, EnumBase) or len(raw) != 1 or raw[0] >= len(t.values):
            raise CoreRelocationError(f"enum relocation: {access!r} is not an enumerator of "
                                      f"{spec.type_str(type_id)!r}")
        ev = t.values[raw[0]]
        out.steps.append(_Access(type_id, raw[0], ev.name))
        out.enum_value = ev.value
        return out
    # Field: the first index steps over whole objects (pointer arithmetic), the rest go inside.
    out.steps.append(_Access(type_id, raw[0], None))
    out.bit_offset = raw[0] * spec.sizeof(type_id) * 8
    cur = type_id
    for depth, idx in enumerate(raw[1:]):
        cur, t = _skip_mods(spec, cur)
        if isinstance(t, Composite):
            if idx >= len(t.members):
                raise CoreRelocationError(f"access {access!r}: {spec.type_str(cur)!r} has no member #{idx}")
            m = t.members[idx]
            out.bit_offset += m.bit_offset
            if m.name:
                out.steps.append(_Access(cur, idx, m.name, m))
                out.member = m
            else:
                out.member = None
            cur = m.type_id
        elif isinstance(t, Array):
            flexible = t.nelems == 0
            if not flexible and idx >= t.nelems:
                raise CoreRelocationError(f"access {access!r}: index {idx} is past {spec.type_str(cur)!r}")
            out.steps.append(_Access(cur, idx, None))
            out.bit_offset += idx * spec.sizeof(t.type_id) * 8
            out.member = None
            cur = t.type_id
        else:
            raise CoreRelocationError(f"access {access!r}: step {depth + 1} goes into "
                                      f"{spec.type_str(cur)!r}, which is not a struct, union or array")
    out.final_id = cur
    return out


# ------------------------------------------------------------------------------------ compatibility


def _fields_compatible(local: Spec, lid: int, target: Spec, tid: int, depth: int = 0) -> bool:
    """Whether a member of type `lid` can be relocated to one of type `tid` (names of composites
    are not compared: the path already matched them)."""
    if depth > _MAX_DEPTH:
        return False
    _, lt = _skip_mods(local, lid)
    _, tt = _skip_mods(target, tid)
    if isinstance(lt, Composite) and isinstance(tt, Composite):
        return True
    if _kind_group(lt) != _kind_group(tt):
        return False
    if isinstance(lt, (Ptr, Float)):
        return True
    if isinstance(lt, (Fwd, EnumBase)):
        return essential_name(lt.name) == essential_name(getattr(tt, "name", ""))
    if isinstance(lt, Int) and isinstance(tt, Int):
        return lt.offset == 0 and tt.offset == 0  # old-style bitfield ints cannot be relocated
    if isinstance(lt, Array) and isinstance(tt, Array):
        return _fields_compatible(local, lt.type_id, target, tt.type_id, depth + 1)
    return False


def types_compatible(local: Spec, lid: int, target: Spec, tid: int, depth: int = 0) -> bool:
    """Loose compatibility of TYPE_EXISTS/TYPE_SIZE/TYPE_ID_TARGET: same kinds all the way down through
    pointers, arrays and prototypes; structs, unions, enums and forward declarations match by kind."""
    if depth > _MAX_DEPTH:
        return False
    _, lt = _skip_mods(local, lid)
    _, tt = _skip_mods(target, tid)
    if _kind_group(lt) != _kind_group(tt):
        return False
    if lt.kind in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.FWD) or isinstance(lt, EnumBase):
        return True
    if isinstance(lt, Int) and isinstance(tt, Int):
        return lt.offset == 0 and tt.offset == 0
    if isinstance(lt, Ptr) and isinstance(tt, Ptr):
        return types_compatible(local, lt.type_id, target, tt.type_id, depth + 1)
    if isinstance(lt, Array) and isinstance(tt, Array):
        return types_compatible(local, lt.type_id, target, tt.type_id, depth + 1)
    if isinstance(lt, FuncProto) and isinstance(tt, FuncProto):
        if len(lt.params) != len(tt.params) or lt.variadic != tt.variadic:
            return False
        return all(types_compatible(local, a.type_id, target, b.type_id, depth + 1)
                   for a, b in zip(lt.params, tt.params, strict=True)) and \
            types_compatible(local, lt.return_type_id, target, tt.return_type_id, depth + 1)
    return lt.kind == Kind.FLOAT


def types_match(local: Spec, lid: int, target: Spec, tid: int, depth: int = 0) -> bool:
    """The strict TYPE_MATCHES relation: names (flavors stripped) of named types agree, every local
    member exists in the target with a matching type, integers agree in size and sign, every local
    enumerator exists in the target."""
    if depth > _MAX_DEPTH:
        return False
    lt = local.type_by_id(lid)
    tt = target.type_by_id(tid)
    # Qualifiers are skipped on both sides; typedefs must be typedefs on both sides.
    while isinstance(lt, (Const, Volatile, Restrict, TypeTag)):
        lt = local.type_by_id(lt.type_id)
    while isinstance(tt, (Const, Volatile, Restrict, TypeTag)):
        tt = target.type_by_id(tt.type_id)
    if _kind_group(lt) != _kind_group(tt) and not (isinstance(lt, Fwd) or isinstance(tt, Fwd)):
        return False
    lname = getattr(lt, "name", "")
    if lname and essential_name(lname) != essential_name(getattr(tt, "name", "")):
        return False
    if isinstance(lt, Typedef) and isinstance(tt, Typedef):
        return types_match(local, lt.type_id, target, tt.type_id, depth + 1)
    if isinstance(lt, Fwd) or isinstance(tt, Fwd):
        want = Kind.UNION if (isinstance(lt, Fwd) and lt.union) else Kind.STRUCT
        other = tt if isinstance(lt, Fwd) else lt
        if isinstance(other, Fwd):
            return True
        return other.kind == (want if isinstance(lt, Fwd) else
                              (Kind.UNION if isinstance(tt, Fwd) and tt.union else Kind.STRUCT))
    if isinstance(lt, Int) and isinstance(tt, Int):
        return lt.size == tt.size and lt.signed == tt.signed
    if isinstance(lt, Float) and isinstance(tt, Float):
        return lt.size == tt.size
    if isinstance(lt, EnumBase) and isinstance(tt, EnumBase):
        names = {essential_name(v.name) for v in tt.values}
        return lt.size == tt.size and all(essential_name(v.name) in names for v in lt.values)
    if isinstance(lt, Composite) and isinstance(tt, Composite):
        by_name = {m.name: m for m in tt.members}
        for m in lt.members:
            tm = by_name.get(m.name)
            if tm is None or not types_match(local, m.type_id, target, tm.type_id, depth + 1):
                return False
        return True
    if isinstance(lt, Ptr) and isinstance(tt, Ptr):
        return types_match(local, lt.type_id, target, tt.type_id, depth + 1)
    if isinstance(lt, Array) and isinstance(tt, Array):
        return lt.nelems == tt.nelems and types_match(local, lt.type_id, target, tt.type_id, depth + 1)
    if isinstance(lt, FuncProto) and isinstance(tt, FuncProto):
        return len(lt.params) == len(tt.params) and all(
            types_match(local, a.type_id, target, b.type_id, depth + 1)
            for a, b in zip(lt.params, tt.params, strict=True)
        ) and types_match(local, lt.return_type_id, target, tt.return_type_id, depth + 1)
    return False


# ------------------------------------------------------------------------------------------ matching


def _find_member(target: Spec, comp: Composite, name: str, depth: int = 0
                 ) -> tuple[Member, int] | None:
    """Member `name` of `comp`, looking into anonymous members: (member, bit offset from comp)."""
    if depth > _MAX_DEPTH:
        return None
    for m in comp.members:
        if m.name == name:
            return m, m.bit_offset
    for m in comp.members:
        if not m.name:
            _, t = _skip_mods(target, m.type_id)
            if isinstance(t, Composite):
                found = _find_member(target, t, name, depth + 1)
                if found is not None:
                    return found[0], m.bit_offset + found[1]
    return None


def _match(local: _Spec, kind: CoreReloKind, target: Spec, cand_id: int) -> _Spec | None:
    """The target side of `local` on candidate type `cand_id`, or None when it does not match."""
    out = _Spec(target, cand_id, [], local.raw, final_id=cand_id)
    if kind in _TYPE_KINDS:
        if kind is CoreReloKind.TYPE_MATCHES:
            ok = types_match(local.spec, local.root_id, target, cand_id)
        else:
            ok = types_compatible(local.spec, local.root_id, target, cand_id)
        return out if ok else None
    if kind in _ENUM_KINDS:
        _, t = _skip_mods(target, cand_id)
        if not isinstance(t, EnumBase):
            return None
        want = essential_name(local.steps[0].name or "")
        for i, v in enumerate(t.values):
            if essential_name(v.name) == want:
                out.steps.append(_Access(cand_id, i, v.name))
                out.enum_value = v.value
                return out
        return None
    first = local.steps[0]
    out.steps.append(_Access(cand_id, first.idx, None))
    out.bit_offset = first.idx * target.sizeof(cand_id) * 8
    cur = cand_id
    prev_comp: Composite | None = None
    for step in local.steps[1:]:
        cur, t = _skip_mods(target, cur)
        if step.name is not None:
            if not isinstance(t, Composite):
                return None
            found = _find_member(target, t, step.name)
            if found is None:
                return None
            m, off = found
            assert step.member is not None
            if not _fields_compatible(local.spec, step.member.type_id, target, m.type_id):
                return None
            out.bit_offset += off
            out.steps.append(_Access(cur, 0, m.name, m))
            out.member = m
            prev_comp = t
            cur = m.type_id
        else:
            if not isinstance(t, Array):
                return None
            flexible = t.nelems == 0 and prev_comp is not None and bool(prev_comp.members) \
                and prev_comp.members[-1].type_id == cur
            if not flexible and step.idx >= t.nelems:
                return None
            out.bit_offset += step.idx * target.sizeof(t.type_id) * 8
            out.steps.append(_Access(cur, step.idx, None))
            out.member = None
            prev_comp = None
            cur = t.type_id
    out.final_id = cur
    return out


def _flavored_names(target: Spec, name: str) -> list[str]:
    """Names `name___*` in the string sections of `target` (and its bases) whose essential name is
    `name`: one search of the raw strings, no decoding of types."""
    out: list[str] = []
    pat = b"\0" + name.encode("utf-8", "surrogateescape") + b"___"
    spec: Spec | None = target
    while spec is not None:
        raw = spec.raw_strings
        at = raw.find(pat)
        while at != -1:
            end = raw.find(b"\0", at + 1)
            full = raw[at + 1 : end if end != -1 else len(raw)].decode("utf-8", "surrogateescape")
            if essential_name(full) == name and full not in out:
                out.append(full)
            at = raw.find(pat, at + 1)
        spec = spec.base
    return out


def candidates(local: Spec, type_id: int, target: Spec) -> list[int]:
    """Ids of target types that may correspond to local type `type_id`: same essential name (the
    target's flavors stripped too), same kind (ENUM and ENUM64 alike), in id order."""
    lt = local.type_by_id(type_id)
    name = essential_name(getattr(lt, "name", ""))
    if not name:
        return []
    want = _kind_group(lt)
    ids = set(target.find_ids(name))
    for full in _flavored_names(target, name):
        ids.update(target.find_ids(full))
    return [i for i in sorted(ids) if _kind_group(target.type_by_id(i)) == want]


# ------------------------------------------------------------------------------------------- values


@record(frozen=False)
class _Value:
    value: int
    size: int = 0  # FIELD_BYTE_OFFSET of a non-bitfield: the field's byte size (for load size fixes)
    type_id: int = 0
    ok_resize: bool = True  # whether a load/store of this field may change width to the target's


def _field_value(s: _Spec, kind: CoreReloKind, byteorder: str) -> _Value:
    spec = s.spec
    if kind is CoreReloKind.FIELD_EXISTS:
        return _Value(1)
    m = s.member
    bitfield = m is not None and m.bitfield_size > 0
    _, ft = _skip_mods(spec, s.final_id)
    bit_off = s.bit_offset
    if bitfield:
        assert m is not None
        bit_sz = m.bitfield_size
        byte_sz = spec.sizeof(ft)
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreRelocationError("bitfield does not fit in 8 bytes")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        if bit_off % 8:
            raise CoreRelocationError("field is not byte-aligned")
        byte_sz = spec.sizeof(s.final_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    if kind is CoreReloKind.FIELD_BYTE_OFFSET:
        return _Value(byte_off, 0 if bitfield else byte_sz, s.final_id)
    if kind is CoreReloKind.FIELD_BYTE_SIZE:
        return _Value(byte_sz)
    if kind is CoreReloKind.FIELD_SIGNED:
        if isinstance(ft, EnumBase):
            return _Value(int(ft.signed))
        return _Value(int(isinstance(ft, Int) and bool(ft.encoding & IntEncoding.SIGNED)))
    if kind is CoreReloKind.FIELD_LSHIFT_U64:
        if byteorder == "little":
            return _Value(64 - (bit_off + bit_sz - byte_off * 8))
        return _Value((8 - byte_sz) * 8 + (bit_off - byte_off * 8))
    if kind is CoreReloKind.FIELD_RSHIFT_U64:
        return _Value(64 - bit_sz)
    raise CoreRelocationError(f"unknown field relocation kind {kind}")


def _value(s: _Spec, kind: CoreReloKind, byteorder: str, local_id: int) -> _Value:
    if kind in _FIELD_KINDS:
        return _field_value(s, kind, byteorder)
    if kind is CoreReloKind.TYPE_ID_LOCAL:
        return _Value(local_id)
    if kind is CoreReloKind.TYPE_ID_TARGET:
        return _Value(s.root_id)
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES, CoreReloKind.ENUMVAL_EXISTS):
        return _Value(1)
    if kind is CoreReloKind.TYPE_SIZE:
        return _Value(s.spec.sizeof(s.root_id))
    if kind is CoreReloKind.ENUMVAL_VALUE:
        return _Value(s.enum_value)
    raise CoreRelocationError(f"unknown relocation kind {kind}")


# ----------------------------------------------------------------------------------------- patching


def _describe(local: Spec, r: Relocation) -> str:
    try:
        tname = local.type_str(r.type_id)
    except Exception:  # only for the message
        tname = f"type id {r.type_id}"
    return f"{CoreReloKind(r.kind).name.lower()} of {tname!r} access {r.access}"


def _poison(buf: bytearray, index: int) -> None:
    code = buf[index * 8]
    _INSN.pack_into(buf, index * 8, 0x85, 0, 0, POISON_HELPER)  # call 0xbad2310
    if code == _LDDW and (index + 1) * 8 < len(buf):
        _INSN.pack_into(buf, (index + 1) * 8, 0x85, 0, 0, POISON_HELPER)


def _patch(buf: bytearray, index: int, orig: int, new: _Value, local: _Value, validate: bool,
           where: str) -> None:
    if index < 0 or index * 8 + 8 > len(buf):
        raise CoreRelocationError(f"{where}: instruction {index} is outside the program")
    code, regs, off, imm = _INSN.unpack_from(buf, index * 8)
    cls = code & 7
    value = new.value
    if cls in (_ALU, _ALU64):
        if code & 0x08 != _K:
            raise CoreRelocationError(f"{where}: instruction {index} is an ALU op on a register, "
                                      "not on an immediate")
        if validate and imm != _s32(orig):
            raise CoreRelocationError(f"{where}: instruction {index} holds {imm}, expected {orig}")
        if not -(1 << 31) <= value < (1 << 32):
            raise CoreRelocationError(f"{where}: value {value} does not fit in a 32-bit immediate")
        _INSN.pack_into(buf, index * 8, code, regs, off, _s32(value))
    elif cls in (_LDX, _ST, _STX):
        if validate and off != orig:
            raise CoreRelocationError(f"{where}: instruction {index} has offset {off}, expected {orig}")
        if not -(1 << 15) <= value < (1 << 15):
            raise CoreRelocationError(f"{where}: offset {value} does not fit in 16 bits")
        if new.size and local.size and new.size != local.size:
            code = _resize(code, index, local, new, where)
        _INSN.pack_into(buf, index * 8, code, regs, value, imm)
    elif code == _LDDW:
        if (index + 1) * 8 + 8 > len(buf):
            raise CoreRelocationError(f"{where}: lddw at {index} is cut short")
        hi = _INSN.unpack_from(buf, (index + 1) * 8)[3]
        cur = (imm & 0xFFFFFFFF) | (hi & 0xFFFFFFFF) << 32
        if validate and cur != orig & 0xFFFFFFFFFFFFFFFF:
            raise CoreRelocationError(f"{where}: lddw at {index} holds {cur}, expected {orig}")
        v = value & 0xFFFFFFFFFFFFFFFF
        _INSN.pack_into(buf, index * 8, code, regs, off, _s32(v & 0xFFFFFFFF))
        c2, r2, o2, _ = _INSN.unpack_from(buf, (index + 1) * 8)
        _INSN.pack_into(buf, (index + 1) * 8, c2, r2, o2, _s32(v >> 32))
    else:
        raise CoreRelocationError(f"{where}: instruction {index} (opcode {code:#04x}) cannot take a "
                                  "CO-RE value")


def _resize(code: int, index: int, local: _Value, new: _Value, where: str) -> int:
    """A load/store of a field whose size changed: adjust its width when that is safe (unsigned
    integers, pointers), as libbpf does; refuse otherwise."""
    width = _SIZE_BYTES.get(code & 0x18)
    if width != local.size:
        raise CoreRelocationError(f"{where}: instruction {index} accesses {width} bytes, the field has "
                                  f"{local.size}")
    if not new.ok_resize:
        raise CoreRelocationError(f"{where}: field size changed from {local.size} to {new.size} bytes "
                                  "and the access cannot be adjusted safely")
    if new.size not in _BYTES_SIZE:
        raise CoreRelocationError(f"{where}: field of {new.size} bytes cannot be loaded directly")
    return (code & ~0x18) | _BYTES_SIZE[new.size]


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _safe_resize(local: Spec, lid: int, target: Spec, tid: int) -> bool:
    _, lt = _skip_mods(local, lid)
    _, tt = _skip_mods(target, tid)
    if isinstance(lt, Ptr) and isinstance(tt, Ptr):
        return True
    return isinstance(lt, Int) and isinstance(tt, Int) and not lt.signed and not tt.signed


def relocate(insns: bytes, relos: Iterable[Relocation], local: Spec, target: Spec | None, *,
             where: str = "", cache: dict[int, list[int]] | None = None) -> tuple[bytes, list[CoreResult]]:
    """Apply CO-RE `relos` to `insns` (bytecode) for `target` BTF; returns the patched bytecode and
    how each relocation was resolved.

    `target` None means "no target BTF": only TYPE_ID_LOCAL resolves; other relocations are
    treated as unmatched. `where` (e.g. "prog.o: program 'x' (section s)") prefixes error messages.
    `cache` maps local type ids to their candidate lists, shared across calls on the same pair.
    Raises `CoreRelocationError` for malformed records, instructions that do not hold the compiler's
    value, and candidates that disagree.
    """
    buf = bytearray(insns)
    results: list[CoreResult] = []
    cands_cache = cache if cache is not None else {}
    byteorder = local.byteorder
    for r in relos:
        try:
            kind = CoreReloKind(r.kind)
        except ValueError:
            raise CoreRelocationError(f"{where or 'CO-RE'}: instruction {r.index}: unknown relocation kind "
                                      f"{int(r.kind)}") from None
        desc = _describe(local, r)
        label = f"{where}: CO-RE {desc} at instruction {r.index}" if where else \
            f"CO-RE {desc} at instruction {r.index}"
        if r.index < 0 or r.index * 8 + 8 > len(buf):
            raise CoreRelocationError(f"{label}: instruction {r.index} is outside the program "
                                      f"({len(buf) // 8} instructions)")
        try:
            lspec = _local_spec(local, r.type_id, kind, r.access)
            lval = _value(lspec, kind, byteorder, r.type_id)
        except CoreRelocationError as e:
            raise CoreRelocationError(f"{label}: {e}") from None
        if kind is CoreReloKind.TYPE_ID_LOCAL:
            _patch(buf, r.index, lval.value, lval, lval, True, label)
            results.append(CoreResult(r.index, kind, r.type_id, r.access, lval.value, lval.value, r.type_id,
                                      description=desc))
            continue
        # The compiler and the loader may size a bitfield's storage differently (the compiler from
        # the record's alignment), so bitfield values are not checked against the instruction.
        validate = not (kind in _FIELD_KINDS and lspec.member is not None and lspec.member.bitfield_size > 0)
        matched: list[tuple[_Spec, _Value]] = []
        if target is not None:
            if r.type_id not in cands_cache:
                cands_cache[r.type_id] = candidates(local, r.type_id, target)
            for cid in cands_cache[r.type_id]:
                tspec = _match(lspec, kind, target, cid)
                if tspec is None:
                    continue
                try:
                    tval = _value(tspec, kind, byteorder, r.type_id)
                except CoreRelocationError as e:
                    raise CoreRelocationError(f"{label}: target type id {cid}: {e}") from None
                tval.ok_resize = (lval.size == tval.size or
                                  _safe_resize(local, lval.type_id, target, tval.type_id))
                matched.append((tspec, tval))
        if matched:
            first_spec, first = matched[0]
            for other_spec, other in matched[1:]:
                if other.value != first.value:
                    raise CoreRelocationError(
                        f"{label}: candidates disagree: type id {first_spec.root_id} gives {first.value}, "
                        f"type id {other_spec.root_id} gives {other.value}")
            _patch(buf, r.index, lval.value, first, lval, validate, label)
            results.append(CoreResult(r.index, kind, r.type_id, r.access, lval.value, first.value,
                                      first_spec.root_id, description=desc))
        elif kind in _EXISTENCE:
            zero = _Value(0)
            _patch(buf, r.index, lval.value, zero, lval, validate, label)
            results.append(CoreResult(r.index, kind, r.type_id, r.access, lval.value, 0, description=desc))
        else:
            _poison(buf, r.index)
            results.append(CoreResult(r.index, kind, r.type_id, r.access, lval.value, 0, poisoned=True,
                                      description=desc))
    return bytes(buf), results


def relocate_all(programs: Sequence[tuple[str, bytes, Sequence[Relocation]]], local: Spec,
                 target: Spec | None) -> list[tuple[bytes, list[CoreResult]]]:
    """`relocate` for several programs of one object, sharing the candidate search."""
    cache: dict[int, list[int]] = {}
    return [relocate(code, relos, local, target, where=name, cache=cache) for name, code, relos in programs]
