"""Semantic checks for kernel types and map iteration: struct fields through BTF, ``*ptr``, ``&field``,
array and pointer subscripts, typed tracepoint pointers, ``uaddr()``, ``kstack(mode, n)`` and
``for ($kv : @m)``.

`KernelChecks` is a mixin of the analyzer in `bpfkit.lang.semantic`; it relies on the analyzer's
`expr`, `block`, `error`, `const_int`, `nargs` and state (`result`, `vars`, `btf`, `loop_depth`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bpfkit._records import replace
from bpfkit.errors import BpfkitError
from bpfkit.lang import ast, walk
from bpfkit.lang.big_values import is_big, too_big_message
from bpfkit.lang.btftypes import (
    BtfLookup,
    FieldInfo,
    in_user_memory,
    named_type,
    struct_value,
)
from bpfkit.lang.btftypes import field as btf_field
from bpfkit.lang.source import Span
from bpfkit.lang.types import (
    AGGREGATIONS,
    INT64,
    KSTACK,
    STACK_FRAMES,
    STRING,
    USTACK,
    Kind,
    Type,
    cgroup_path,
    int_type,
    normalise,
    pointer_to,
    tuple_type,
)

if TYPE_CHECKING:
    from bpfkit.btf import Spec
    from bpfkit.lang.semantic import Analysis, UserSymbolLookup

_STRUCT_POINTER = re.compile(r"(?:const\s+)?(struct|union)\s+(\w+)\s*\*")


def _in_space(value: Type, pointer: Type) -> Type:
    """An integer read through `pointer`: in its address space (as bpftrace), so a user address read from
    user memory stays a user address; other values are returned unchanged."""
    if value.kind is not Kind.INT or value.is_pointer:
        return value
    return replace(value, user=pointer.user, kernel=not pointer.user and not pointer.anyspace)


class KernelChecks:
    """Analyzer methods for kernel structs, pointers, stack modes and for loops."""

    btf: BtfLookup | None
    result: Analysis
    vars: dict[str, Type]
    loop_depth: int
    probe: ast.Probe | None
    usyms: UserSymbolLookup | None

    def expr(self, e: ast.Expr, statement: bool = False, record_ok: bool = False) -> Type:
        raise NotImplementedError

    def block(self, block: ast.Block) -> None:
        raise NotImplementedError

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        raise NotImplementedError

    def const_int(self, e: ast.Expr) -> int:
        raise NotImplementedError

    def nargs(self, e: ast.Call, lo: int, hi: int) -> bool:
        raise NotImplementedError

    def type_name(self, tn: ast.TypeName) -> Type | None:
        raise NotImplementedError

    def spec(self) -> Spec | None:
        """The kernel's BTF, or None when the system has none."""
        try:
            return self.btf() if self.btf is not None else None
        except (BpfkitError, OSError):
            return None


    def for_loop(self, s: ast.For) -> None:
        """``for ($kv : @m) { ... }``: the body runs as a bpf_for_each_map_elem callback, with $kv the
        (key, value) tuple. The callback has its own stack frame and no probe context, so the body may
        not use the probe's other variables nor args/retval/stacks, nor return."""
        m = s.iterable
        if not isinstance(m, ast.Map) or m.keys:
            self.error("for loops iterate over a whole map: for ($kv : @m)", s.iterable.span)
            return
        decl = self.result.maps.get(m.name)
        if decl is None:
            self.error(f"Undefined map: @{m.name}", m.span)
            return
        if decl.key is None:
            self.error(f"for loops need a map with keys; @{m.name} has none", m.span)
            return
        if decl.value.kind in (Kind.STATS, Kind.HIST, Kind.LHIST):
            self.error(f"for loops over {decl.value.kind.value}() maps are not supported yet", m.span)
            return
        value = decl.value if decl.value.kind not in AGGREGATIONS else int_type(8, decl.value.signed)
        outer = set(self.vars)
        kv = tuple_type((normalise(decl.key), normalise(value)))
        self.vars[s.var.name] = kv
        self.result.types[id(s.var)] = kv
        if s.var.name in outer:
            self.error(f"for loop variable ${s.var.name} is already used in this probe", s.var.span)
        self.loop_depth += 1
        self.block(s.body)
        self.loop_depth -= 1
        for name in set(self.vars) - outer:  # the loop variable and the body's own are scoped to it
            del self.vars[name]
        for n in walk.nodes(s.body):
            if isinstance(n, ast.Var) and n.name in outer:
                self.error(f"${n.name} is declared outside the for loop: a for body cannot use the probe's "
                           "other variables yet", n.span)
            elif walk.needs_context(n):
                self.error("a for loop body cannot read the probe context (args, retval, stacks) yet", n.span)
            elif isinstance(n, ast.Return):
                self.error("return inside a for loop is not supported yet", n.span)


    def typed_pointer(self, ctype: str, t: Type) -> Type:
        """A tracepoint pointer field typed from BTF (``struct file *``) when the kernel has the type,
        so it can be followed with ``->``; otherwise the plain integer `t`."""
        m = _STRUCT_POINTER.fullmatch(ctype.strip())
        spec = self.spec() if m is not None else None
        if m is None or spec is None:
            return t
        found = named_type(spec, f"{m[1]} {m[2]}", 1)
        if found is None:
            return t
        target = replace(found.target, user=t.user) if found.target is not None else None
        return pointer_to(target, found.cname, user=t.user)

    def struct_copy(self, rec: Type, e: ast.Expr) -> Type:
        """The STRUCT value a kernel struct (RECORD) expression gives when used as a value."""
        spec = self.spec()
        if spec is None:
            self.error("struct values need the kernel's BTF (/sys/kernel/btf/vmlinux)", e.span)
            return INT64
        try:
            return struct_value(spec, rec.btf_id, rec.cname, user=rec.user)
        except BpfkitError as exc:
            self.error(str(exc), e.span)
            return INT64

    def cast(self, e: ast.Cast) -> Type:
        """``(type)expr``, as bpftrace 0.17: an integer cast keeps the value's address space; a pointer
        cast of a user address (a ``syscalls`` tracepoint pointer, uprobe ``argN``/``retval``, a user
        pointer, a variable or map holding one) points into user memory, and so does everything reached
        through it (fields, copies, pointer members). A value of no known address space (a literal, a
        ternary, a builtin such as pid) keeps none when cast to an integer pointer (what it points to is
        read with the legacy bpf_probe_read, in every probe type), while a struct (or void, or
        pointer-to-pointer) pointer cast of it takes the probe's space: user in uprobe and usdt probes,
        kernel elsewhere. Kernel pointers and what is derived from them stay kernel ones."""
        t = self.expr(e.expr)
        target = self.type_name(e.type)
        if target is None:
            return INT64
        no_space = not t.user and not t.kernel and (not t.is_pointer or t.anyspace)
        if not t.is_int or not target.is_int:
            self.error(f"Cannot cast from '{t}' to '{target}'", e.span)
        elif target.is_pointer and no_space and target.target is not None and target.target.is_int \
                and not target.target.is_pointer:
            target = replace(target, anyspace=True)
        elif target.is_pointer:
            if t.user or (no_space and self.user_probe()):
                target = in_user_memory(target)
        else:
            kernel = t.kernel or (t.is_pointer and not t.user and not t.anyspace)
            target = replace(target, user=t.user, kernel=kernel)
        return target

    def user_probe(self) -> bool:
        """Whether values of no known address space are user addresses here: in uprobe and usdt probes."""
        assert self.probe is not None
        return {ap.provider for ap in self.probe.attach_points} <= {"uprobe", "uretprobe", "usdt"}

    def check_stack_value(self, t: Type, span: Span, what: str = "variable",
                          value: ast.Expr | None = None) -> None:
        """Map keys and tuples live on the 512-byte BPF stack: a struct too large for it cannot be one
        (bpftrace 0.17 refuses such copies too); a map value, print() and printf take it, and a variable
        holds its address when it has one (`bpfkit.lang.big_values`)."""
        addressable = isinstance(value, ast.Var | ast.Unary | ast.FieldAccess | ast.Index) and (
            not isinstance(value, ast.Unary) or value.op == "*")
        if is_big(t) and not addressable:
            self.error(too_big_message(t, what), span)

    def member_of_copy(self, e: ast.FieldAccess, base: Type) -> Type:
        """``$s.field`` on a struct copied as a value: the member's bytes in the copy."""
        if e.arrow:
            self.error(f"Can not access field '{e.field}' on type '{base}' with '->': it is not a pointer "
                       "(use '.')", e.span)
            return INT64
        for m in base.members:
            if m.name == e.field:
                self.result.fields[id(e)] = FieldInfo(m.offset, m.size, m.type, m.bit_shift, m.bit_size)
                return int_type(8, m.type.signed) if m.bit_size else m.type
        self.error(f"Struct/union of type '{base}' does not contain a field named '{e.field}'", e.span)
        return INT64

    def struct_field(self, e: ast.FieldAccess) -> Type:
        """``ptr->field`` / ``record.field`` on a kernel struct typed from BTF."""
        base = self.expr(e.expr, record_ok=True)
        if base.kind is Kind.STRUCT:
            return self.member_of_copy(e, base)
        rec = base.target if base.is_pointer else base
        if rec is None or rec.kind is not Kind.RECORD:
            what = "a struct/union pointer" if base.is_pointer else "a struct, union or pointer to one"
            self.error(f"Can not access field '{e.field}' on type '{base}': not {what}", e.span)
            return INT64
        spec = self.spec()
        if spec is None:
            self.error("struct field access needs the kernel's BTF (/sys/kernel/btf/vmlinux)", e.span)
            return INT64
        try:
            info = btf_field(spec, rec, e.field)
        except BpfkitError as exc:
            self.error(f"Struct/union of type '{rec}' does not contain a field named '{e.field}'"
                       if "has no member" in str(exc) else str(exc), e.span)
            return INT64
        self.result.fields[id(e)] = info
        if info.type.is_int and not info.type.is_pointer:  # an integer field: in its struct's space
            return replace(info.type, user=rec.user, kernel=not rec.user)
        return info.type

    def deref(self, e: ast.Unary) -> Type:
        """``*ptr``: the integer, pointer or struct that `ptr` points to."""
        t = self.expr(e.operand)
        if not t.is_pointer:
            self.error(f"Can not dereference type '{t}': not a pointer", e.span)
            return INT64
        if t.target is None:
            self.error(f"Can not dereference '{t}': it points to void", e.span)
            return INT64
        if t.target.kind is Kind.STR or (t.target.kind is Kind.INT and t.target.size not in (1, 2, 4, 8)):
            self.error(f"Can not dereference '{t}'", e.span)
            return INT64
        return _in_space(t.target, t)


    def address_of(self, e: ast.Unary) -> Type:
        """``&expr``: the address of a kernel struct or of one of its fields (BTF), as a typed pointer;
        nothing is read. (bpftrace 0.17 has no ``&``; later versions take the address of fields.)"""
        t = self.expr(e.operand, record_ok=True)
        info = self.result.fields.get(id(e.operand))
        if (info is None and t.kind is not Kind.RECORD) or (info is not None and info.bit_size):
            self.error("The & operator takes the address of a struct field or struct (through BTF) only",
                       e.span)
            return INT64
        if t.kind is Kind.STR:  # a char array: a pointer to its first char
            target: Type = int_type(1, True)
        else:
            target = t
        base = self.result.types.get(id(e.operand.expr)) if isinstance(e.operand, ast.FieldAccess) else None
        in_user = base is not None and base.kind is not Kind.STRUCT and base.user  # a field in user memory
        return pointer_to(target, f"{target} *", user=t.user or in_user)

    def index(self, e: ast.Index) -> Type:
        """``array[N]`` (a literal index within the bounds, as bpftrace 0.17) or ``ptr[i]`` (any integer
        index: ``*(ptr + i)``); the element's byte size is kept in `consts` for the code generator."""
        base = self.expr(e.expr, record_ok=True)
        if base.kind is Kind.ARRAY:
            self.expr(e.index)
            if not isinstance(e.index, ast.Int | ast.Positional):
                self.error("The array index operator [] only accepts literal integer indices.", e.span)
            elif not 0 <= self.const_int(e.index) < base.size:
                self.error(f"the index {self.const_int(e.index)} is out of bounds for array of size "
                           f"{base.size}", e.index.span)
            self.result.consts[id(e)] = base.limit
            return base.elems[0]
        target = base.target if base.is_pointer else None
        if target is None or not (target.kind is Kind.RECORD or (target.is_int
                                                                 and target.size in (1, 2, 4, 8))):
            self.error(f"The array index operator [] can not be used on expressions of type '{base}'",
                       e.span)
            return INT64
        if not self.expr(e.index).is_int:
            self.error("The array index must be an integer", e.index.span)
        size = target.size
        if target.kind is Kind.RECORD:
            spec = self.spec()
            size = spec.sizeof(target.btf_id) if spec is not None else 0
        self.result.consts[id(e)] = size
        return _in_space(target, base)

    def uaddr(self, e: ast.Call) -> Type:
        """uaddr("symbol"): the address of a symbol of the probed binary, as a pointer to a signed
        integer of the symbol's size (1, 2, 4, else 8 bytes) in user memory (as bpftrace 0.17)."""
        assert self.probe is not None
        fallback = pointer_to(INT64, "int64 *", user=True)
        if not self.nargs(e, 1, 1):
            return fallback
        a = e.args[0]
        if not isinstance(a, ast.Str):
            self.error("uaddr() expects a symbol name as a string literal", a.span)
            return fallback
        aps = self.probe.attach_points
        bad = next((ap for ap in aps if ap.provider not in ("uprobe", "uretprobe", "usdt")), None)
        if bad is not None:
            self.error(f'uaddr can not be used with "{bad.provider}" probes', e.span)
            return fallback
        sym = a.value.decode("utf-8", "replace")
        found = self.usyms(aps[0].target, sym) if self.usyms is not None else None
        if found is None:
            self.error(f"Could not resolve symbol: {aps[0].target}:{sym}", e.span)
            return fallback
        address, size = found
        self.result.consts[id(e)] = address
        target = int_type(size if size in (1, 2, 4) else 8, True)
        return pointer_to(target, f"{target} *", user=True)

    def check_iter(self, ap: ast.AttachPoint) -> None:
        """iter:NAME needs the kernel's iterator NAME: its context struct ``bpf_iter__NAME`` in BTF."""
        spec = self.spec()
        if ap.pin and "." in ap.pin.rsplit("/", 1)[-1]:  # kernel/bpf/inode.c: bpf_lookup refuses dots
            self.error(f"iter pin path '{ap.pin}': a bpf file system name cannot contain '.'", ap.span)
        if spec is None:
            self.error("iter probes need the kernel's BTF (/sys/kernel/btf/vmlinux)", ap.span)
        elif named_type(spec, f"struct bpf_iter__{ap.target}", 1) is None:
            self.error(f"iter {ap.target} not available for your kernel version (no struct "
                       f"bpf_iter__{ap.target} in its BTF)", ap.span)

    def pinned_iter_call(self, e: ast.Call) -> None:
        """In a pinned iter probe only printf can print: the iterator runs when its pin is read, after
        bpfkit exited, and writes to the reader through bpf_seq_printf (`bpfkit.lang.seq_printf`)."""
        aps = self.probe.attach_points if self.probe is not None else ()
        if not any(ap.provider == "iter" and ap.pin for ap in aps):
            return
        if e.name in ("errorf", "warnf", "system", "cat", "print", "time", "join", "exit", "clear", "zero"):
            self.error(f"{e.name}() cannot be used in a pinned iter probe: it needs bpfkit running, and only "
                       "printf() writes to the pin's readers", e.span)
            return
        if e.name != "printf" or not e.args or not isinstance(e.args[0], ast.Str):
            return
        from bpfkit.lang.seq_printf import MAX_ARGS, kernel_format

        try:
            _, convs = kernel_format(e.args[0].value.decode("utf-8", "replace"))
        except ValueError as err:
            self.error(f"printf in a pinned iter probe: {err}", e.args[0].span)
            return
        if len(e.args) - 1 > MAX_ARGS:
            self.error(f"printf in a pinned iter probe takes at most {MAX_ARGS} arguments (bpf_seq_printf)",
                       e.span)
        for a, conv in zip(e.args[1:], convs, strict=False):
            t = self.result.types.get(id(a))
            if t is None:
                continue
            want_str = conv == "s"
            if (t.kind is Kind.STR) != want_str or (not want_str and not t.is_int):
                self.error(f"printf in a pinned iter probe: %{conv} cannot print a '{t}' (the kernel "
                           "formats only integers and strings)", a.span)

    def iter_ctx(self, e: ast.Builtin) -> Type:
        """``ctx`` in an iter probe: a pointer to the iterator's context (``struct bpf_iter__task *``),
        whose object (``ctx->task``) is never NULL in the probe's body."""
        assert self.probe is not None
        aps = self.probe.attach_points
        if any(ap.provider != "iter" for ap in aps) or len({ap.target for ap in aps}) != 1:
            self.error("The ctx builtin can only be used with iter probes (of one iterator)", e.span)
            return INT64
        spec = self.spec()
        found = named_type(spec, f"struct bpf_iter__{aps[0].target}", 1) if spec is not None else None
        return found or INT64  # no such iterator: reported at the attach point

    def path_call(self, e: ast.Call) -> Type:
        """path(struct path * or struct path): the file's path through bpf_d_path, which the kernel
        allows only in tracing programs (kernel/trace/bpf_trace.c), so only in kfunc/kretfunc and
        iter probes. The argument is passed as the kernel's own (BTF-typed) pointer, so it must be
        reached from the probe's context: ``args->path``, ``ctx->file->f_path``."""
        assert self.probe is not None
        if not {ap.provider for ap in self.probe.attach_points} <= {"fentry", "fexit", "iter"}:
            self.error("The path function can only be used with 'kfunc', 'kretfunc', 'iter' probes", e.span)
        if self.nargs(e, 1, 1):
            t = self.expr(e.args[0], record_ok=True)
            if not (t.is_pointer or t.kind is Kind.RECORD):
                self.error(f"path() expects a struct path or a pointer to one, got '{t}'", e.args[0].span)
        return STRING

    def cgroup_path_call(self, e: ast.Call) -> Type:
        """cgroup_path(id[, "filter"]): the id, shown by the runtime as the cgroup's paths."""
        if not self.nargs(e, 1, 2):
            return INT64
        if not self.expr(e.args[0]).is_int:
            self.error("cgroup_path() expects an integer cgroup id", e.args[0].span)
        filt = e.args[1] if len(e.args) == 2 else ast.Str(b"")
        if not isinstance(filt, ast.Str):
            self.error("cgroup_path() filter must be a string literal", filt.span)
            return cgroup_path("")
        return cgroup_path(filt.value.decode("utf-8", "replace"))

    def stack_call(self, e: ast.Call) -> Type:
        """kstack([mode,] [limit]) / ustack(...): mode ``bpftrace`` or ``perf``, limit a literal."""
        base = KSTACK if e.name == "kstack" else USTACK
        mode, limit = "", 0
        if not self.nargs(e, 0, 2):
            return base
        args = list(e.args)
        if args and isinstance(args[0], ast.Identifier):
            name = args.pop(0).name  # type: ignore[attr-defined]
            if name not in ("bpftrace", "perf"):
                self.error(f"{e.name}(): unknown stack mode '{name}' (bpftrace or perf)", e.args[0].span)
            mode = "perf" if name == "perf" else ""
        if args:
            a = args.pop(0)
            if not isinstance(a, ast.Int | ast.Positional) or not 0 <= self.const_int(a) <= STACK_FRAMES:
                self.error(f"{e.name}(): the frame limit must be an integer literal from 0 to {STACK_FRAMES}",
                           a.span)
            else:
                limit = self.const_int(a)
        if args:
            self.error(f"{e.name}(): expected ({e.name}([mode,] [limit])", e.span)
        return replace(base, fmt=mode, limit=limit)

