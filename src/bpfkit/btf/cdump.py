"""BTF to C: `dump_c(spec)` writes the types of a blob as a C header (the `vmlinux.h` of CO-RE programs).

The text is the one `bpftool btf dump file X format c` writes: the same types, names, order and
spelling, so headers from either tool are interchangeable. Where bpftool 7.1's header would not give
the layout the BTF describes, this one adds what C needs to get it:

- enums whose size is not the compiler's default (a 1-byte `enum rw_hint`, an 8-byte enum of small
  values) get `__attribute__((mode(byte|HI|word)))`;
- unions that the BTF records as packed (size not a multiple of their alignment) get
  `__attribute__((packed))`, and unions larger than their largest member get `aligned(N)`;
- a typedef of GCC's `__builtin_va_list` is spelled as what the BTF says it is (x86-64's
  `struct __va_list_tag [1]`), since the BPF target's builtin is 8 bytes;
- a type tag is written where C allows it (`const int __attribute__((btf_type_tag("user"))) *`).

On the 6.18 kernel's BTF that fixes the layout of 36 structs (inode, bio, request_queue...), and the
header is otherwise line for line bpftool's.

`cdump_order` decides which types are defined at top level and in what order; this module writes
them, adding forward declarations where a type is pointed to before it is defined. Struct layouts are
reproduced with explicit padding (`long: 64;`), zero-width bitfields that force alignment, and
`__attribute__((packed))` where the BTF offsets cannot arise from natural alignment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit.errors import BtfError

from .cdump_order import order_types
from .types import (
    Array,
    Composite,
    Const,
    Enum64,
    EnumBase,
    Float,
    FuncProto,
    Fwd,
    Int,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Void,
    Volatile,
)

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["HEADER_GUARD", "dump_c"]

HEADER_GUARD = "__VMLINUX_H__"
"""The include guard bpftool writes (and BPF programs test for)."""

_PROLOGUE = (
    "#ifndef {guard}\n#define {guard}\n\n"
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
    "#endif\n\n"
)
_EPILOGUE = (
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
    "#endif /* {guard} */\n"
)

_NOT_STARTED, _STARTED, _DONE = 0, 1, 2
_POINTER_BITS = 64
# Padding types from the widest: a gap is filled with unnamed bitfields of these.
_PADS = (("long", 64), ("int", 32), ("short", 16), ("char", 8))
_MAX_CHAIN = 4096  # longest pointer/array/modifier chain followed in one declaration
_QUALIFIER_WORDS = {Const: "const", Volatile: "volatile", Restrict: "restrict"}
_MODIFIERS = (Const, Volatile, Restrict, TypeTag)
_ENUM_MODES = {1: "byte", 2: "HI", 4: "SI", 8: "word"}
# `__builtin_va_list` is the compiler's own: redefining it (as GCC's BTF describes it) breaks clang.
_COMPILER_BUILTINS = frozenset({"__builtin_va_list"})
_HOLE = "\0"  # stands for the declared name in a declaration template (names cannot hold a NUL)


def _tag_attribute(t: TypeTag) -> str:
    """A type tag as clang spells it: `btf_type_tag("user")`, or a plain attribute (kind_flag set)."""
    return f"__attribute__(({t.name}))" if t.attribute else f'__attribute__((btf_type_tag("{t.name}")))'


def _roundup(value: int, to: int) -> int:
    return (value + to - 1) // to * to


class _CWriter:
    """Writes definitions into `out`, tracking what has been declared and the names handed out."""

    def __init__(self, spec: Spec) -> None:
        n = spec.type_count
        self.spec = spec
        self.get = spec.type_by_id
        self.out: list[str] = []
        self.emitted = bytearray(n)
        self.emitted[0] = _DONE
        self.declared = bytearray(n)  # a forward declaration (or an early typedef) is out
        self.names: list[str | None] = [None] * n
        self.tag_counts: dict[str, int] = {}  # struct/union/enum tags
        self.ident_counts: dict[str, int] = {}  # typedef names and enumerators share one namespace
        self._align: dict[int, int] = {}
        self._size: dict[int, int] = {}
        self._decls: dict[int, tuple[str, str]] = {}  # (type id, named?) -> text around the name
        self._inline = 0  # inline definitions written so far

    # ------------------------------------------------------------------ names

    def tag_name(self, tid: int, t: Composite | EnumBase | Fwd) -> str:
        """The tag of a struct, union or enum: its BTF name, `___N` added for the N-th of a name."""
        name = self.names[tid]
        if name is not None:
            return name
        name = t.name
        if name and not isinstance(t, Fwd) and not (isinstance(t, EnumBase) and not t.values):
            count = self.tag_counts.get(name, 0) + 1
            self.tag_counts[name] = count
            if count > 1:
                name = f"{name}___{count}"
        self.names[tid] = name
        return name

    def ident_name(self, tid: int, t: Typedef) -> str:
        name = self.names[tid]
        if name is None:
            name = self._ident(t.name)
            self.names[tid] = name
        return name

    def _ident(self, name: str) -> str:
        count = self.ident_counts.get(name, 0) + 1
        self.ident_counts[name] = count
        return name if count == 1 else f"{name}___{count}"

    # ------------------------------------------------------------------ layout

    def size(self, tid: int) -> int:
        size = self._size.get(tid)
        if size is None:
            try:
                size = self.spec.sizeof(tid)
            except BtfError:
                size = 0
            self._size[tid] = size
        return size

    def align(self, tid: int) -> int:
        """Alignment as the compiler will see the emitted type (a packed struct aligns to 1)."""
        align = self._align.get(tid)
        if align is not None:
            return align
        t = self.get(tid)
        if isinstance(t, (Int, EnumBase, Float)):
            align = min(t.size & -t.size, 16) if t.size > 0 else 1
        elif isinstance(t, Ptr):
            align = _POINTER_BITS // 8
        elif isinstance(t, Array):
            align = self.align(t.type_id)
        elif isinstance(t, (Typedef, *_MODIFIERS)):
            align = self.align(t.type_id)  # type: ignore[union-attr]
        elif isinstance(t, Composite):
            self._align[tid] = 1  # a struct containing itself is malformed: keep going
            natural, packed, grown = self._layout(t)
            align = grown or (1 if packed else natural)
        else:
            align = 1
        self._align[tid] = align
        return align

    def _layout(self, t: Composite) -> tuple[int, bool, int]:
        """(natural alignment, packed?, alignment to add or 0) of a struct or union as written."""
        natural = self._natural_align(t)
        packed = self._is_packed(t, natural)
        grown = 0 if isinstance(t, Struct) else self._union_alignment(t, 1 if packed else natural)
        return natural, packed, grown

    def _natural_align(self, t: Composite) -> int:
        align = 1
        for m in t.members:
            a = self.align(m.type_id)
            if a > align:
                align = a
        return align

    def _is_packed(self, t: Composite, natural: int) -> bool:
        """True if `t`'s offsets or size cannot come from natural alignment (it was declared packed)."""
        if t.size % natural:
            return True
        for m in t.members:
            if not m.bitfield_size and m.bit_offset % (self.align(m.type_id) * 8):
                return True
        return False

    # ------------------------------------------------------------------ top level

    def emit(self, tid: int, container: int) -> None:
        """Write what `tid` needs before it can be used, and its definition if `container` is 0.

        `container` is the struct or typedef being defined when `tid` is reached through its members
        (0 at top level): a struct then gets only a forward declaration.
        """
        state = self.emitted[tid]
        if state == _DONE:
            return
        t = self.get(tid)
        out = self.out
        if state == _STARTED:
            if self.declared[tid]:
                return
            if isinstance(t, Composite):
                if tid == container or not t.name:
                    return  # a member pointing back at its struct, or a malformed anonymous loop
                self._struct_fwd(tid, t)
                out.append(";\n\n")
                self.declared[tid] = 1
            elif isinstance(t, Typedef):
                if t.name not in _COMPILER_BUILTINS:
                    self._typedef_def(tid, t, 0)
                    out.append(";\n\n")
                self.declared[tid] = 1
            return
        if isinstance(t, (Ptr, Array, *_MODIFIERS)):
            self.emit(t.type_id, container)  # type: ignore[union-attr]
        elif isinstance(t, Composite):
            self.emitted[tid] = _STARTED
            if container == 0 or not t.name:
                inner = container if not t.name else tid
                for m in t.members:
                    self.emit(m.type_id, inner)
            elif not self.declared[tid] and tid != container:
                self._struct_fwd(tid, t)
                out.append(";\n\n")
                self.declared[tid] = 1
            if container == 0:
                self._struct_def(tid, t, 0)
                out.append(";\n\n")
                self.emitted[tid] = _DONE
            else:
                self.emitted[tid] = _NOT_STARTED
        elif isinstance(t, Typedef):
            self.emitted[tid] = _STARTED
            self.emit(t.type_id, tid)
            if not self.declared[tid] and t.name not in _COMPILER_BUILTINS:
                self._typedef_def(tid, t, 0)
                out.append(";\n\n")
            self.emitted[tid] = _DONE
        elif isinstance(t, FuncProto):
            self.emit(t.return_type_id, container)
            for p in t.params:
                self.emit(p.type_id, container)
        elif isinstance(t, EnumBase):
            if container == 0:
                self._enum_def(tid, t, 0)
                out.append(";\n\n")
            self.emitted[tid] = _DONE
        elif isinstance(t, Fwd):
            self.out.append(f"{'union' if t.union else 'struct'} {self.tag_name(tid, t)};\n\n")
            self.emitted[tid] = _DONE
        elif isinstance(t, (Int, Float)):
            self.emitted[tid] = _DONE

    # ------------------------------------------------------------------ definitions

    def _struct_fwd(self, tid: int, t: Composite) -> None:
        word = "struct" if isinstance(t, Struct) else "union"
        self.out.append(f"{word} {self.tag_name(tid, t)}" if t.name else word)

    def _typedef_def(self, tid: int, t: Typedef, lvl: int) -> None:
        name = self.ident_name(tid, t)
        if t.type_id == 0 and name == "__gnuc_va_list":
            # GCC describes this typedef as void; what it names is the compiler's va_list
            self.out.append("typedef __builtin_va_list __gnuc_va_list")
            return
        self.out.append("typedef ")
        self.decl(t.type_id, name, lvl)

    def _struct_def(self, tid: int, t: Composite, lvl: int) -> None:
        out = self.out
        is_struct = isinstance(t, Struct)
        word = "struct" if is_struct else "union"
        out.append(f"{word} {self.tag_name(tid, t)} {{" if t.name else f"{word} {{")
        natural, packed, grown = self._layout(t)
        indent = "\n" + "\t" * (lvl + 1)
        bit = 0  # end of the previous member, in bits
        after_bitfield = False
        size = self.size
        align = self.align
        for m in t.members:
            if m.bit_offset > bit:
                in_bitfield = after_bitfield and m.bitfield_size != 0
                self._pad(bit, m.bit_offset, 1 if packed else align(m.type_id), in_bitfield, indent)
            out.append(indent)
            self.decl(m.type_id, m.name, lvl + 1)
            if m.bitfield_size:
                out.append(f": {m.bitfield_size};")
                bit = m.bit_offset + m.bitfield_size
                after_bitfield = True
            else:
                out.append(";")
                bit = m.bit_offset + size(m.type_id) * 8
                after_bitfield = False
        if is_struct and t.size * 8 > bit:
            self._pad(bit, t.size * 8, 1 if packed else natural, False, indent)
        out.append("\n" + "\t" * lvl + "}" if t.members or t.size else "}")
        if packed and grown:
            out.append(f" __attribute__((packed, aligned({grown})))")
        elif packed:
            out.append(" __attribute__((packed))")
        elif grown:
            out.append(f" __attribute__((aligned({grown})))")

    def _union_alignment(self, t: Composite, align: int) -> int:
        """The `aligned(N)` a union of alignment `align` needs to reach its BTF size (0: none).

        A union gets no padding members: when it is larger than its largest member, only a stronger
        alignment (from `__aligned` in the kernel source) can give it its size.
        """
        largest = max((self.size(m.type_id) for m in t.members), default=0)
        if _roundup(largest, align) >= t.size:
            return 0
        grown = align * 2
        while grown <= t.size:
            if t.size % grown == 0 and _roundup(largest, grown) == t.size:
                return grown
            grown *= 2
        return 0

    def _pad(self, cur: int, end: int, next_align: int, in_bitfield: bool, indent: str) -> None:
        """Fill bits `cur`..`end` with unnamed bitfields so the next member lands at `end`.

        The widest padding type whose alignment boundary falls inside the gap is used; when the
        compiler would not reach that boundary by itself (the next member aligns less, or the next
        bitfield would share the storage unit) a `type: 0` marker, or the exact bit count inside a
        bitfield run, gets there first. The rest is whole units of that type, and the tail the
        narrowest type that holds it.
        """
        out = self.out
        pad_type, pad_bits = _PADS[-1]
        for wide_type, wide_bits in _PADS:
            if _roundup(cur, wide_bits) <= end:
                pad_type, pad_bits = wide_type, wide_bits
                break
        boundary = _roundup(cur, pad_bits)
        if cur < boundary <= end:
            if (in_bitfield
                    or (boundary == end and _roundup(cur, next_align * 8) != boundary)
                    or (boundary != end and end - boundary <= boundary - cur)):
                out.append(f"{indent}{pad_type}: {boundary - cur if in_bitfield else 0};")
            cur = boundary
        while cur < end:
            bits = end - cur
            if bits >= pad_bits:
                out.append(f"{indent}{pad_type}: {pad_bits};")
                cur += pad_bits
                continue
            for tail_type, tail_bits in reversed(_PADS):
                if tail_bits >= bits:
                    out.append(f"{indent}{tail_type}: {bits};")
                    cur += bits
                    break

    def _enum_def(self, tid: int, t: EnumBase, lvl: int) -> None:
        out = self.out
        out.append(f"enum {self.tag_name(tid, t)}" if t.name else "enum")
        if not t.values:
            return
        out.append(" {")
        indent = "\n" + "\t" * (lvl + 1)
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        counts = self.ident_counts
        for v in t.values:
            count = counts.get(v.name, 0) + 1
            counts[v.name] = count
            name = v.name if count == 1 else f"{v.name}___{count}"
            out.append(f"{indent}{name} = {v.value}{suffix},")
        out.append("\n" + "\t" * lvl + "}")
        mode = self._enum_mode(t)
        if mode:
            out.append(f" __attribute__((mode({mode})))")

    @staticmethod
    def _enum_mode(t: EnumBase) -> str:
        """The machine mode that gives the enum its BTF size, when the compiler's default would not:
        C makes an enum an int unless a value needs 64 bits."""
        lo = min(v.value for v in t.values)
        hi = max(v.value for v in t.values)
        fits_32 = (lo >= -(1 << 31) and hi < 1 << 31) or (lo >= 0 and hi < 1 << 32)
        default = 4 if fits_32 else 8
        if t.size == default:
            return ""
        return _ENUM_MODES.get(t.size, "")

    # ------------------------------------------------------------------ declarations

    def decl(self, tid: int, name: str, lvl: int) -> None:
        """Write a declaration of `name` (may be empty) of type `tid`, e.g. `int (*name)(void)`.

        A declaration without inline definitions is the same text around whatever name it declares,
        so it is kept as a template: most member types of vmlinux recur (`int`, `struct list_head`).
        """
        key = tid << 1 | (name != "")
        parts = self._decls.get(key)
        if parts is not None:
            self.out.append(f"{parts[0]}{name}{parts[1]}")
            return
        outer = self.out
        self.out = []
        inline = self._inline
        try:
            self._write_decl(tid, _HOLE if name else "", lvl)
            text = "".join(self.out)
        finally:
            self.out = outer
        if self._inline == inline:  # an inline struct or enum is written anew each time
            before, _, after = text.partition(_HOLE)
            self._decls[key] = (before, after)
        outer.append(text.replace(_HOLE, name))

    def _write_decl(self, tid: int, name: str, lvl: int) -> None:
        """Write the declaration of `decl` (with no template).

        The chain from `tid` through pointers, qualifiers, arrays and function returns down to a named
        or inline base type is collected first, then written from the base type outwards.
        """
        chain: list[Type] = []
        get = self.get
        t = get(tid)
        while True:
            chain.append(t)
            if isinstance(t, (Ptr, Array, *_MODIFIERS)):
                t = get(t.type_id)  # type: ignore[union-attr]
            elif isinstance(t, FuncProto):
                t = get(t.return_type_id)
            elif isinstance(t, Typedef) and t.name in _COMPILER_BUILTINS and t.type_id:
                # Spell out what the BTF says the builtin is (x86-64's `struct __va_list_tag [1]`):
                # the BPF target's own va_list has another size.
                chain.pop()
                t = get(t.type_id)
            else:
                break
            if len(chain) > _MAX_CHAIN:
                raise BtfError(f"type [{tid}]: declaration chain longer than {_MAX_CHAIN} (a loop?)")
        if not isinstance(t, (Void, Int, Float, Composite, EnumBase, Fwd, Typedef)):
            raise BtfError(f"type [{t.id}] {t.kind.name} {t.name_or_anon!r} cannot be part of a "
                           f"C declaration (reached from type [{tid}])")
        self._chain(chain, len(chain), name, lvl)

    def _base_modifiers(self, chain: list[Type], n: int) -> tuple[int, list[TypeTag]]:
        """Write the qualifiers just outside the base type (`const volatile int`) and return the new n
        with the type tags among them, which C wants after the base type (`int __attribute__(...)`)."""
        out = self.out
        tags: list[TypeTag] = []
        while n:
            t = chain[n - 1]
            word = _QUALIFIER_WORDS.get(type(t))
            if word is not None:
                out.append(word + " ")
            elif isinstance(t, TypeTag):
                tags.append(t)
            else:
                break
            n -= 1
        return n, tags

    @staticmethod
    def _skip_modifiers(chain: list[Type], n: int) -> int:
        """Drop qualifiers on arrays and functions: GCC records them, C cannot express them."""
        while n and isinstance(chain[n - 1], _MODIFIERS):
            n -= 1
        return n

    def _chain(self, chain: list[Type], n: int, name: str, lvl: int) -> None:
        """Write `chain[:n]` (outermost first) as a declarator of `name`, innermost type first."""
        out = self.out
        after_ptr = True  # a lone `*` needs no space before it, as in `(*f)`
        while n:
            n -= 1
            t = chain[n]
            if isinstance(t, Ptr):
                out.append("*" if after_ptr else " *")
                after_ptr = True
                continue
            spaced = " " + name if name and not after_ptr else name
            after_ptr = False
            if isinstance(t, (Const, Volatile, Restrict)):
                out.append(" " + _QUALIFIER_WORDS[type(t)])
            elif isinstance(t, TypeTag):
                out.append(" " + _tag_attribute(t))
            elif isinstance(t, Array):
                n = self._skip_modifiers(chain, n)
                if n == 0:
                    out.append(f"{spaced}[{t.nelems}]")
                    return
                multi = isinstance(chain[n - 1], Array)
                if spaced != name:
                    out.append(" ")
                out.append("" if multi else "(")
                self._chain(chain, n, name, lvl)
                out.append(f"[{t.nelems}]" if multi else f")[{t.nelems}]")
                return
            elif isinstance(t, FuncProto):
                n = self._skip_modifiers(chain, n)
                if n:
                    out.append(" (")
                    self._chain(chain, n, name, lvl)
                    out.append(")")
                else:
                    out.append(spaced)
                self._params(t, lvl)
                return
            else:
                n, tags = self._base_modifiers(chain, n)
                self._base(t, lvl)
                for tag in tags:
                    out.append(" " + _tag_attribute(tag))
        if name:
            out.append(name if after_ptr else " " + name)

    def _params(self, t: FuncProto, lvl: int) -> None:
        out = self.out
        if not t.params:  # `f()` in BTF means no parameters, as does a lone `...` or `void`
            out.append("(void)")
            return
        out.append("(")
        for i, p in enumerate(t.params):
            if i:
                out.append(", ")
            self.decl(p.type_id, p.name, lvl)
        out.append(", ...)" if t.variadic else ")")

    def _base(self, t: Type, lvl: int) -> None:
        """The base of a declaration: a scalar or typedef name, a tag, or an inline definition."""
        if isinstance(t, Void):
            self.out.append("void")
        elif isinstance(t, (Int, Float)):
            self.out.append(t.name)
        elif isinstance(t, Typedef):
            self.out.append(self.ident_name(t.id, t))
        elif isinstance(t, Composite):
            if t.name:
                self._struct_fwd(t.id, t)
            else:
                self._inline += 1
                self._struct_def(t.id, t, lvl)
        elif isinstance(t, EnumBase):
            if t.name:
                self.out.append(f"enum {self.tag_name(t.id, t)}")
            else:
                self._inline += 1
                self._enum_def(t.id, t, lvl)
        elif isinstance(t, Fwd):
            self.out.append(f"{'union' if t.union else 'struct'} {self.tag_name(t.id, t)}")


def dump_c(spec: Spec, *, guard: str = HEADER_GUARD) -> str:
    """The types of `spec` as a C header, as `bpftool btf dump file X format c` writes it.

    Every type is visited in id order; for split BTF (a module's) that includes every type of the
    base, as bpftool does, so the header stands alone. `guard` names the include guard; an empty
    guard leaves out the guard and the `preserve_access_index` pragmas, giving the bare definitions.
    Raises `BtfError` if the types cannot be written as C (a struct that contains itself by value, a
    malformed chain).
    """
    writer = _CWriter(spec)
    queue = order_types(spec, range(1, spec.type_count))
    out = writer.out
    if guard:
        out.append(_PROLOGUE.format(guard=guard))
    try:
        for tid in queue:
            writer.emit(tid, 0)
    except RecursionError:
        raise BtfError("types nest too deeply to write as C (a reference loop?)") from None
    if guard:
        out.append(_EPILOGUE.format(guard=guard))
    return "".join(out)
