"""Semantic checks for kernel types and map iteration: struct fields through BTF, ``*ptr``, typed
tracepoint pointers, ``kstack(mode, n)`` and ``for ($kv : @m)``.

`KernelChecks` is a mixin of the analyzer in `bpfkit.lang.semantic`; it relies on the analyzer's
`expr`, `block`, `error`, `const_int`, `nargs` and state (`result`, `vars`, `btf`, `loop_depth`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from bpfkit.errors import BpfkitError
from bpfkit.lang import ast, walk
from bpfkit.lang.btftypes import BtfLookup, named_type
from bpfkit.lang.btftypes import field as btf_field
from bpfkit.lang.source import Span
from bpfkit.lang.types import (
    AGGREGATIONS,
    INT64,
    KSTACK,
    STACK_FRAMES,
    UINT64,
    USTACK,
    Kind,
    Type,
    normalise,
    pointer_to,
    tuple_type,
)

if TYPE_CHECKING:
    from bpfkit.btf import Spec
    from bpfkit.lang.semantic import Analysis

_STRUCT_POINTER = re.compile(r"(?:const\s+)?(struct|union)\s+(\w+)\s*\*")


class KernelChecks:
    """Analyzer methods for kernel structs, pointers, stack modes and for loops."""

    btf: BtfLookup | None
    result: Analysis
    vars: dict[str, Type]
    loop_depth: int

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
        if decl.value.kind in (Kind.AVG, Kind.STATS, Kind.HIST, Kind.LHIST):
            self.error(f"for loops over {decl.value.kind.value}() maps are not supported yet", m.span)
            return
        value = decl.value if decl.value.kind not in AGGREGATIONS else \
            (UINT64 if decl.value.kind is Kind.COUNT else INT64)
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

    def struct_field(self, e: ast.FieldAccess) -> Type:
        """``ptr->field`` / ``record.field`` on a kernel struct typed from BTF."""
        base = self.expr(e.expr, record_ok=True)
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
        return t.target


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

