"""Semantic analysis: give every expression a type, declare maps and variables, report user errors.

Input: a parsed `ast.Program` and the facts about the attach points that only the system knows, passed
in as a callback (`formats`: the tracefs format of a tracepoint). Output: an `Analysis` with the type of
each expression node (keyed by the node's identity, since equal subtrees may have different types in
different probes), each map's key/value type, and each probe's variables. Errors are collected as
diagnostics with spans and raised together as one `CompileError`.

Maps get their type from their first assignment in program order; a map read in a probe that comes
before its assignment (``END`` reading what a tracepoint counted is the usual case the other way round)
is resolved by a first lenient pass that only learns map types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bpfkit._records import field, record
from bpfkit.errors import BpfkitError
from bpfkit.lang import ast
from bpfkit.lang.btftypes import BtfLookup, FieldInfo, named_type
from bpfkit.lang.diagnostics import DiagnosticSink
from bpfkit.lang.perf_events import HARDWARE_EVENTS
from bpfkit.lang.printer import unparse_expr
from bpfkit.lang.printf_format import printf_specs
from bpfkit.lang.semantic_kernel import KernelChecks
from bpfkit.lang.semantic_maps import AGG_ARGS, MapChecks
from bpfkit.lang.source import Span
from bpfkit.lang.tracepoint_format import TracepointField, TracepointFormat
from bpfkit.lang.types import (
    AGGREGATIONS,
    CAST_TYPES,
    INET,
    INT64,
    KSTACK,
    KSYM,
    NONE,
    STRING,
    STRLEN,
    UINT64,
    USTACK,
    USYM,
    Kind,
    Type,
    array_of,
    buffer,
    int_type,
    normalise,
    pointer_to,
    timestamp,
    tuple_type,
)
from bpfkit.obj.usdt import UsdtArgSpec

FormatLookup = Callable[[str, str], "TracepointFormat | None"]


@record
class KfuncInfo:
    """A kernel function as kfunc/kretfunc (fentry/fexit) probes see it: its BTF id, its parameters
    in order with their types, and its return type (None for void)."""

    btf_id: int
    params: tuple[tuple[str, Type], ...]
    ret: Type | None


KfuncLookup = Callable[[str], "KfuncInfo | None"]
#: The address of a kernel symbol (kaddr()), None when the kernel does not show it.
SymbolLookup = Callable[[str], "int | None"]
#: The (address, size) of data or code symbol `name` in user binary `binary` (uaddr()), None if missing.
UserSymbolLookup = Callable[[str, str], "tuple[int, int] | None"]
#: The parsed arguments (`bpfkit.obj.usdt.UsdtArgSpec` objects) of each site of a usdt attach point's
#: probe, in attach order, read from the binary; raises BpfkitError when there is no such probe.
UsdtLookup = Callable[[ast.AttachPoint], "Sequence[Sequence[UsdtArgSpec]]"]

_UINT_BUILTINS = frozenset({"pid", "tid", "uid", "gid", "cpu", "numaid", "nsecs", "elapsed", "cgroup", "rand",
                            "curtask", "jiffies", "ncpus", "cpid"})
_STR_BUILTINS = frozenset({"comm", "probe", "func"})
_ARGN = re.compile(r"arg([0-9]+)\Z")
#: The providers whose programs can be compiled (some may still be refused at attach time).
SUPPORTED_PROVIDERS = frozenset({"BEGIN", "END", "tracepoint", "rawtracepoint", "uprobe", "uretprobe",
                                 "usdt", "profile", "interval", "software", "hardware", "kprobe", "kretprobe",
                                 "fentry", "fexit", "iter"})


@record(frozen=False)
class MapDecl:
    """What the script does with a map: key type (None: no key), value type, lhist parameters."""

    name: str
    key: Type | None
    value: Type
    span: Span
    lhist: tuple[int, int, int] | None = None


@record(frozen=False)
class Analysis:
    """The result of `analyze`: types by node identity, maps, variables per probe index."""

    types: dict[int, Type] = field(default_factory=dict)
    maps: dict[str, MapDecl] = field(default_factory=dict)
    vars: list[dict[str, Type]] = field(default_factory=list)
    params: tuple[str, ...] = ()
    rewrites: dict[int, ast.Expr] = field(default_factory=dict)
    """Compound assignments desugared: id(Assign) -> the value expression to store."""
    consts: dict[int, int] = field(default_factory=dict)
    """Values known at compile time: id(Call) of kaddr("sym") or uaddr("sym") -> the symbol's address;
    id(Index) -> the byte size of the element it reads."""
    fields: dict[int, FieldInfo] = field(default_factory=dict)
    """Struct field accesses through BTF: id(FieldAccess) -> where and how to read the field."""

    def type_of(self, expr: ast.Expr) -> Type:
        return self.types.get(id(expr), INT64)


def tracepoint_field_type(f: TracepointField, category: str) -> Type | None:
    """The language type of a tracepoint field, or None if it cannot be read as a value."""
    if f.is_string:
        return STRING
    if f.array and not f.data_loc and f.size % f.array == 0 and f.size // f.array in (1, 2, 4, 8):
        size = f.size // f.array
        return array_of(int_type(size, f.signed), f.array, size)
    if f.array is not None or f.data_loc:
        return None
    user = category == "syscalls"  # as bpftrace: a syscall's arguments are user values, others kernel
    if f.is_pointer:
        return int_type(8, False, user=user, kernel=not user)
    if f.size in (1, 2, 4, 8):
        return int_type(f.size, f.signed, user=user, kernel=not user)
    return None


class _Analyzer(KernelChecks, MapChecks):
    def __init__(self, formats: FormatLookup, params: Sequence[str], lenient: bool,
                 maps: dict[str, MapDecl] | None = None, unsafe: bool = False,
                 kfuncs: KfuncLookup | None = None, btf: BtfLookup | None = None,
                 ksyms: SymbolLookup | None = None, usdt: UsdtLookup | None = None,
                 usyms: UserSymbolLookup | None = None) -> None:
        self.formats = formats
        self.usyms = usyms
        self.usdt = usdt
        self.ksyms = ksyms
        self.btf = btf
        self.kfuncs = kfuncs
        self.unsafe = unsafe
        self.params = tuple(params)
        self.lenient = lenient
        self.sink = DiagnosticSink()
        self.result = Analysis(params=self.params)
        if maps:
            self.result.maps.update(maps)
        self.vars: dict[str, Type] = {}
        self.probe: ast.Probe | None = None
        self.loop_depth = 0

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        if not self.lenient:
            self.sink.error(message, span, hint)

    # -- probes ------------------------------------------------------------------------------------
    def run(self, program: ast.Program) -> Analysis:
        for probe in program.probes:
            self.probe = probe
            self.vars = {}
            for ap in probe.attach_points:
                self.check_attach_point(ap)
            if probe.predicate is not None:
                t = self.expr(probe.predicate)
                if not t.is_int:
                    self.error(f"Invalid type for predicate: {t}", probe.predicate.span)
            self.block(probe.body)
            self.result.vars.append(self.vars)
        if not self.lenient:
            self.sink.check()
        return self.result

    def check_attach_point(self, ap: ast.AttachPoint) -> None:
        if ap.provider not in SUPPORTED_PROVIDERS:
            self.error(f"{ap.provider} probes are not supported by bpfkit yet", ap.span)
        elif ap.provider in ("fentry", "fexit") and self.kfunc(ap) is None:
            self.error(f"kfunc not found: {ap.func} (no such function in the kernel's BTF)", ap.span)
        elif ap.provider == "tracepoint" and not any(c in ap.raw for c in "*?[") \
                and self.formats(ap.target, ap.func) is None:
            self.error(f"tracepoint not found: {ap.target}:{ap.func}", ap.span)
        elif ap.provider == "iter":
            self.check_iter(ap)
        elif ap.provider == "hardware" and ap.target not in HARDWARE_EVENTS:
            self.error(f"{ap.target} is not a hardware probe", ap.span)
        elif ap.provider == "usdt" and self.usdt is not None:
            try:
                self.usdt(ap)
            except BpfkitError as e:
                self.error(str(e), ap.span)

    def usdt_arg_count(self, ap: ast.AttachPoint) -> int | None:
        """How many arguments the usdt probe at `ap` has (None when unknown at compile time)."""
        try:
            return min(len(site) for site in self.usdt(ap)) if self.usdt is not None else None
        except BpfkitError:
            return None  # reported at the attach point

    def kfunc(self, ap: ast.AttachPoint) -> KfuncInfo | None:
        return self.kfuncs(ap.func) if self.kfuncs is not None and ap.func else None

    def kfunc_probe(self) -> KfuncInfo | None:
        """The kernel function of this probe when all its attach points are kfuncs of one signature."""
        assert self.probe is not None
        aps = self.probe.attach_points
        if not all(ap.provider in ("fentry", "fexit") for ap in aps):
            return None
        return self.kfunc(aps[0])

    def tracepoint_format(self, span: Span) -> TracepointFormat | None:
        assert self.probe is not None
        tps = [ap for ap in self.probe.attach_points if ap.provider == "tracepoint"]
        if not tps or len(tps) != len(self.probe.attach_points):
            self.error("The args builtin can only be used with tracepoint probes", span)
            return None
        ap = tps[0]
        if any(c in ap.raw for c in "*?["):
            self.error("args with a wildcard tracepoint is not supported by bpfkit yet", span)
            return None
        return self.formats(ap.target, ap.func)

    # -- statements --------------------------------------------------------------------------------
    def block(self, block: ast.Block) -> None:
        for stmt in block.stmts:
            self.stmt(stmt)

    def stmt(self, s: ast.Stmt) -> None:
        if isinstance(s, ast.Block):
            self.block(s)
        elif isinstance(s, ast.ExprStmt):
            self.expr(s.expr, statement=True)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.VarDecl):
            self.var_decl(s)
        elif isinstance(s, ast.If):
            self.cond(s.cond)
            self.block(s.then)
            if s.orelse is not None:
                self.stmt(s.orelse)
        elif isinstance(s, ast.While):
            self.cond(s.cond)
            self.loop_depth += 1
            self.block(s.body)
            self.loop_depth -= 1
        elif isinstance(s, ast.For):
            self.for_loop(s)
        elif isinstance(s, ast.Unroll):
            if not isinstance(s.count, ast.Int | ast.Positional):
                self.error("unroll count must be an integer literal or positional parameter", s.count.span)
            elif not 1 <= self.const_int(s.count) <= 100:
                self.error("unroll count must be between 1 and 100", s.count.span)
            self.block(s.body)
        elif isinstance(s, ast.Break | ast.Continue):
            if not self.loop_depth:
                self.error(f"'{'break' if isinstance(s, ast.Break) else 'continue'}' outside of a loop",
                           s.span)
        elif isinstance(s, ast.Return):
            if s.value is not None:
                self.expr(s.value)
        else:
            self.error(f"{type(s).__name__.lower()} statements are not supported by bpfkit yet", s.span)

    def cond(self, e: ast.Expr) -> None:
        t = self.expr(e)
        if not t.is_int:
            self.error(f"Invalid condition: {t}", e.span)

    def var_decl(self, s: ast.VarDecl) -> None:
        declared: Type | None = None
        if s.type is not None:
            declared = self.type_name(s.type)
        value = self.expr(s.value) if s.value is not None else None
        t = declared or value or INT64
        if value is not None:
            self.check_stack_value(value, s.span, value=s.value)
        if value is not None and declared is not None and not value.same_shape(declared):
            self.error(f"Type mismatch for ${s.var.name}: trying to assign value of type '{value}' "
                       f"when variable is declared as '{declared}'", s.span)
        self.vars[s.var.name] = normalise(t)
        self.result.types[id(s.var)] = self.vars[s.var.name]

    def type_name(self, tn: ast.TypeName) -> Type | None:
        if tn.pointer == 0 and tn.name in CAST_TYPES:
            return CAST_TYPES[tn.name]
        if tn.name == "string" and not tn.pointer:
            return STRING
        if tn.pointer and tn.array is None:
            if tn.name in CAST_TYPES and tn.pointer == 1:
                return pointer_to(CAST_TYPES[tn.name], f"{tn.name} *")
            spec = self.spec()
            found = named_type(spec, tn.name, tn.pointer) if spec is not None else None
            if found is not None:
                return found
            if spec is not None:
                self.error(f"Unknown type: '{tn.name}' (not in the kernel's BTF)", tn.span)
                return None
        self.error(f"type '{tn.name}{'*' * tn.pointer}' is not supported by bpfkit yet", tn.span)
        return None

    def assign(self, s: ast.Assign) -> None:
        target = s.target
        value_expr: ast.Expr = s.value
        if s.op is not None:
            value_expr = ast.Binary(s.op, target, s.value, span=s.span)
            self.result.rewrites[id(s)] = value_expr
            if isinstance(target, ast.Map) and target.name not in self.result.maps:
                self.declare_map(target, self.map_key(target), INT64, None, s.span)  # starts at 0
        if isinstance(target, ast.Var):
            t = normalise(self.expr(value_expr))
            if t.kind is Kind.NONE:
                self.error("Invalid expression for assignment: the value has no type", s.value.span)
            self.check_stack_value(t, s.span, value=value_expr)
            old = self.vars.get(target.name)
            if old is not None and not old.same_shape(t):
                self.error(f"Type mismatch for ${target.name}: trying to assign value of type '{t}' when "
                           f"variable already contains a value of type '{old}'", target.span)
            self.vars.setdefault(target.name, t)
            self.result.types[id(target)] = self.vars[target.name]
            return
        key = self.map_key(target)
        value = s.value
        if isinstance(value, ast.Call) and value.name in AGG_ARGS and s.op is None:
            vt = self.aggregation(value)
            lhist = self.lhist_params(value) if value.name == "lhist" else None
        else:
            vt = normalise(self.expr(value_expr))
            lhist = None
            if vt.kind is Kind.NONE:
                self.error("Invalid expression for assignment: the value has no type", s.value.span)
                return
        self.declare_map(target, key, vt, lhist, target.span)
        self.result.types[id(target)] = vt

    def const_int(self, e: ast.Expr) -> int:
        if isinstance(e, ast.Int):
            return e.value
        if isinstance(e, ast.Positional):
            text = self.params[e.index - 1] if e.index <= len(self.params) else ""
            try:
                return int(text, 0) if text else 0
            except ValueError:
                self.error(f"${e.index} is not an integer: {text!r}", e.span)
        return 0

    # -- expressions -------------------------------------------------------------------------------
    def expr(self, e: ast.Expr, statement: bool = False, record_ok: bool = False) -> Type:
        t = self._expr(e, statement)
        if t.kind is Kind.RECORD and not record_ok:
            t = self.struct_copy(t, e)  # a kernel struct used as a value: copied
        elif t.kind is Kind.ARRAY and t.elems[0].kind is Kind.RECORD and not record_ok:
            self.error(f"an array of structs ('{t}') can only be indexed: {unparse_expr(e)}[0]", e.span)
            t = INT64
        self.result.types[id(e)] = t
        return t

    def _expr(self, e: ast.Expr, statement: bool) -> Type:
        if isinstance(e, ast.Int | ast.Bool):
            return INT64
        if isinstance(e, ast.Str):
            return STRING
        if isinstance(e, ast.Builtin):
            return self.builtin(e)
        if isinstance(e, ast.Positional):
            text = self.params[e.index - 1] if e.index <= len(self.params) else ""
            return INT64 if _is_int(text) or not text else STRING
        if isinstance(e, ast.PositionalCount):
            return INT64
        if isinstance(e, ast.Var):
            t = self.vars.get(e.name)
            if t is None:
                self.error(f"Undefined or undeclared variable: ${e.name}", e.span)
                return INT64
            return t
        if isinstance(e, ast.Map):
            return self.map_read(e)
        if isinstance(e, ast.Call):
            return self.call(e, statement)
        if isinstance(e, ast.Binary):
            return self.binary(e)
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.Ternary):
            self.cond(e.cond)
            a, b = self.expr(e.then), self.expr(e.orelse)
            if not a.same_shape(b):
                self.error(f"Ternary operator must return the same type: have '{a}' and '{b}'", e.span)
            if a.is_int and not a.is_pointer:  # as bpftrace 0.17: the address space is not kept
                return int_type(8, a.signed)
            return normalise(a)
        if isinstance(e, ast.FieldAccess):
            return self.field_access(e)
        if isinstance(e, ast.TupleAccess):
            t = self.expr(e.expr)
            if t.kind is not Kind.TUPLE:
                self.error(f"Can not access index '{e.index}' on expression of type '{t}'", e.span)
                return INT64
            if not 0 <= e.index < len(t.elems):
                self.error(f"Invalid tuple index: {e.index}. Found {len(t.elems)} elements in tuple.", e.span)
                return INT64
            return t.elems[e.index]
        if isinstance(e, ast.Tuple):
            elems = tuple(normalise(self.expr(x)) for x in e.elems)
            for x, xt in zip(e.elems, elems, strict=True):
                self.check_stack_value(xt, x.span, "tuple element")
            return tuple_type(elems)
        if isinstance(e, ast.Index):
            return self.index(e)
        if isinstance(e, ast.Cast):
            return self.cast(e)
        self.error(f"{type(e).__name__.lower()} expressions are not supported by bpfkit yet", e.span)
        return INT64

    def builtin(self, e: ast.Builtin) -> Type:
        assert self.probe is not None
        providers = {ap.provider for ap in self.probe.attach_points}
        if e.name == "ctx":
            return self.iter_ctx(e)
        if e.name == "curtask":
            spec = self.spec()
            task = named_type(spec, "struct task_struct", 1) if spec is not None else None
            return task or UINT64
        if e.name in _UINT_BUILTINS:
            return UINT64
        if e.name in _STR_BUILTINS:
            return STRING
        if e.name in ("kstack", "ustack"):
            return KSTACK if e.name == "kstack" else USTACK
        m = _ARGN.match(e.name)
        if m is not None:
            if not providers <= {"uprobe", "kprobe", "rawtracepoint", "usdt"}:
                self.error(f"The {e.name} builtin can only be used with uprobe, kprobe, usdt and "
                           "rawtracepoint probes", e.span)
            elif providers == {"usdt"}:
                for ap in self.probe.attach_points:
                    count = self.usdt_arg_count(ap)
                    if count is not None and int(m[1]) >= count:
                        self.error(f"{e.name} is not available: usdt probe {ap.raw} has {count} "
                                   f"argument{'s' if count != 1 else ''}", e.span)
                        break
                return int_type(8, False, user=True)  # as bpftrace: u64, a user address for str()
            elif int(m[1]) > 5 and providers & {"uprobe", "kprobe"}:
                self.error(f"{e.name} is not available: only arg0-arg5 are passed in registers", e.span)
            user = "uprobe" in providers
            return int_type(8, False, user=user, kernel=not user)
        if e.name == "retval":
            if providers == {"fexit"}:
                kf = self.kfunc_probe()
                return kf.ret if kf is not None and kf.ret is not None else UINT64
            if not providers <= {"uretprobe", "kretprobe"}:
                self.error("The retval builtin can only be used with uretprobe, kretprobe and kretfunc "
                           "probes", e.span)
            user = "uretprobe" in providers  # as bpftrace: a user address, or a kernel one (kretprobe)
            return int_type(8, False, user=user, kernel=not user)
        if e.name == "args":
            self.error("The args builtin can only be used for field access: args.field or args->field",
                       e.span)
            return INT64
        self.error(f"the builtin '{e.name}' is not supported by bpfkit yet", e.span)
        return INT64

    def field_access(self, e: ast.FieldAccess) -> Type:
        if not (isinstance(e.expr, ast.Builtin) and e.expr.name == "args"):
            return self.struct_field(e)
        kf = self.kfunc_probe()
        if kf is not None:
            for pname, ptype in kf.params:
                if pname == e.field:
                    return ptype
            self.error(f"Can't find function parameter {e.field}", e.span)
            return INT64
        fmt = self.tracepoint_format(e.span)
        if fmt is None:
            return INT64
        f = fmt.field(e.field)
        if f is None or f.name.startswith("common_"):
            self.error(f"Struct/union of type 'struct _tracepoint_{fmt.category}_{fmt.name}' does not "
                       f"contain a field named '{e.field}'", e.span)
            return INT64
        t = tracepoint_field_type(f, fmt.category)
        if t is None:
            self.error(f"field '{e.field}' of type '{f.ctype}' cannot be read by bpfkit yet", e.span)
            return INT64
        return self.typed_pointer(f.ctype, t) if f.is_pointer else t

    def binary(self, e: ast.Binary) -> Type:
        a, b = self.expr(e.left), self.expr(e.right)
        if e.op in ("==", "!=") and a.kind is Kind.STR and b.kind is Kind.STR:
            return INT64
        if not a.is_int or not b.is_int:
            self.error(f"Type mismatch for '{e.op}': comparing '{a}' with '{b}'", e.span)
            return INT64
        if e.op in ("==", "!=", "<", "<=", ">", ">=", "&&", "||"):
            return INT64
        sa, sb = _address_space(a), _address_space(b)  # as bpftrace: one space kept, mixed ones dropped
        space = (sa or sb) if sa is None or sb is None or sa == sb else None
        return int_type(8, a.signed and b.signed, user=space == "user", kernel=space == "kernel")

    def unary(self, e: ast.Unary) -> Type:
        if e.op in ("++", "--") and isinstance(e.operand, ast.Map) and e.operand.name not in self.result.maps:
            self.declare_map(e.operand, self.map_key(e.operand), INT64, None, e.span)  # starts at 0
        if e.op == "*":
            return self.deref(e)
        if e.op == "&":
            return self.address_of(e)
        t = self.expr(e.operand)
        if e.op in ("++", "--"):
            if not isinstance(e.operand, ast.Var | ast.Map):
                self.error(f"The {e.op} operator must be applied to a map or variable", e.span)
            elif not t.is_int:
                self.error(f"The {e.op} operator can only be applied to integers, not '{t}'", e.span)
            return t
        if not t.is_int:
            self.error(f"The {e.op} operator can not be used on expressions of type '{t}'", e.span)
        return INT64 if e.op == "!" else int_type(8, t.signed or e.op == "-")

    def call(self, e: ast.Call, statement: bool) -> Type:
        name, args = e.name, e.args
        if name in AGG_ARGS:
            self.error(f"{name}() should be directly assigned to a map", e.span)
            return INT64
        if name != "printf":
            self.pinned_iter_call(e)
        if name in ("system", "signal") and not self.unsafe:
            self.error(f"{name}() is an unsafe function being used in safe mode", e.span,
                       hint="use --unsafe to allow it")
        if name in ("printf", "errorf", "warnf", "system", "cat"):
            if not args or not isinstance(args[0], ast.Str):
                self.error(f"{name}() requires a string literal as its first argument", e.span)
                return NONE
            for a in args[1:]:
                t = self.expr(a)
                if t.kind is Kind.NONE or t.kind in AGGREGATIONS:
                    self.error(f"{name}: argument of type '{t}' cannot be printed", a.span)
            fmt = args[0].value.decode("utf-8", "replace")
            specs = printf_specs(fmt)
            if len(specs) > len(args) - 1:
                self.error(f"{name}: Not enough arguments for format string ({len(args) - 1} supplied, "
                           f"{len(specs)} expected)", e.span)
            elif len(specs) < len(args) - 1:
                self.error(f"{name}: Too many arguments for format string ({len(args) - 1} supplied, "
                           f"{len(specs)} expected)", e.span)
            if name == "printf":
                self.pinned_iter_call(e)
            return NONE
        if name == "exit":
            self.nargs(e, 0, 0)
            return NONE
        if name in ("print", "clear", "zero"):
            whole_map = bool(args) and isinstance(args[0], ast.Map) and not args[0].keys  # type: ignore[union-attr]
            if self.nargs(e, 1, 3 if name == "print" and whole_map else 1):
                a = args[0]
                for extra in args[1:]:
                    if not isinstance(extra, ast.Int | ast.Positional) or self.const_int(extra) < 0:
                        self.error("print(): top and div must be non-negative integer literals", extra.span)
                if isinstance(a, ast.Map) and not a.keys:
                    if a.name not in self.result.maps:
                        self.error(f"Undefined map: @{a.name}", a.span)
                elif name == "print":
                    self.expr(a)
                else:
                    self.error(f"{name}() expects a map with no keys", a.span)
            return NONE
        if name == "delete":
            if self.nargs(e, 1, 1):
                a = args[0]
                if not isinstance(a, ast.Map) or not a.keys:
                    self.error("delete() expects a map element: delete(@m[key])", a.span)
                else:
                    key = self.map_key(a)
                    decl = self.result.maps.get(a.name)
                    if decl is None:
                        self.error(f"Undefined map: @{a.name}", a.span)
                    else:
                        self.check_key(a, decl, key)
            return NONE
        if name == "str":
            if self.nargs(e, 1, 2):
                t = self.expr(args[0])
                if not (t.is_int or t.kind is Kind.STR):
                    self.error(f"str() expects an integer or string argument, got '{t}'", args[0].span)
                if len(args) == 2 and not self.expr(args[1]).is_int:
                    self.error("str() length must be an integer", args[1].span)
            return STRING
        if name == "time":
            self.nargs(e, 0, 1)
            if args and not isinstance(args[0], ast.Str):
                self.error("time() expects a string literal", args[0].span)
            return NONE
        if name == "strncmp":
            if self.nargs(e, 3, 3):
                for a in args[:2]:
                    if self.expr(a).kind is not Kind.STR:
                        self.error("strncmp() expects string arguments", a.span)
                if not isinstance(args[2], ast.Int) or args[2].value < 0:
                    self.error("strncmp() length must be a non-negative integer literal", args[2].span)
            return INT64
        if name == "signal":
            if self.nargs(e, 1, 1):
                a = args[0]
                if isinstance(a, ast.Str):
                    if signal_number(a.value.decode(errors="replace")) is None:
                        self.error(f"{a.value.decode(errors='replace')} is not a valid signal", a.span)
                elif not self.expr(a).is_int:
                    self.error("signal() expects a signal name or number", a.span)
            return NONE
        if name == "join":
            if not statement:
                self.error("join() should be used as a statement: it prints", e.span)
            if self.nargs(e, 1, 2):
                if not self.expr(args[0]).is_int:
                    self.error("join() expects a pointer to an array of strings", args[0].span)
                if len(args) == 2 and not isinstance(args[1], ast.Str):
                    self.error("join() delimiter must be a string literal", args[1].span)
            return NONE
        if name in ("ksym", "usym"):
            if self.nargs(e, 1, 1) and not self.expr(args[0]).is_int:
                self.error(f"{name}() expects an integer address", args[0].span)
            return KSYM if name == "ksym" else USYM
        if name == "nsecs":
            self.nargs(e, 0, 0)
            return UINT64
        if name == "kaddr":
            if self.nargs(e, 1, 1):
                a = args[0]
                if not isinstance(a, ast.Str):
                    self.error("kaddr() expects a symbol name as a string literal", a.span)
                    return UINT64
                sym = a.value.decode("utf-8", "replace")
                addr = self.ksyms(sym) if self.ksyms is not None else None
                if addr is None:
                    self.error(f"Failed to resolve kernel symbol: {sym}", a.span)
                else:
                    self.result.consts[id(e)] = addr
            return UINT64
        if name in ("kstack", "ustack"):
            return self.stack_call(e)
        if name == "uaddr":
            return self.uaddr(e)
        if name == "buf":
            if self.nargs(e, 1, 2):
                t = self.expr(args[0])
                info = self.result.fields.get(id(args[0]))
                size = info.size if info is not None and t.kind is Kind.STR else 0
                if not (t.is_int or t.kind is Kind.STR):
                    self.error(f"buf() expects a pointer or an array, got '{t}'", args[0].span)
                if len(args) == 2:
                    if not isinstance(args[1], ast.Int | ast.Positional) or self.const_int(args[1]) < 0:
                        self.error("buf() length must be a non-negative integer literal", args[1].span)
                    else:
                        size = self.const_int(args[1])
                elif not size:
                    self.error("buf() needs a length unless its argument is an array", e.span)
                return buffer(max(0, min(size, STRLEN)))
            return INT64
        if name == "ntop":
            if self.nargs(e, 1, 2):
                for a in args:
                    t = self.expr(a)
                    byte_array = t.kind is Kind.STR or (t.kind is Kind.ARRAY and t.limit == 1)
                    if not (t.is_int or (a is args[-1] and byte_array)):
                        self.error("ntop() expects an address family and an integer or byte-array address",
                                   a.span)
            return INET
        if name == "path":
            return self.path_call(e)
        if name == "cgroup_path":
            return self.cgroup_path_call(e)
        if name == "strftime":
            if self.nargs(e, 2, 2):
                if not isinstance(args[0], ast.Str):
                    self.error("strftime() expects a format string literal", args[0].span)
                    return INT64
                if not self.expr(args[1]).is_int:
                    self.error("strftime() expects an integer time in nanoseconds", args[1].span)
                return timestamp(args[0].value.decode("utf-8", "replace"))
            return INT64
        self.error(f"the function '{name}' is not supported by bpfkit yet", e.span)
        return NONE

    def nargs(self, e: ast.Call, lo: int, hi: int) -> bool:
        if lo <= len(e.args) <= hi:
            return True
        want = "no" if hi == 0 else f"{lo}" if lo == hi else f"{lo} to {hi}"
        self.error(f"{e.name}() requires {want} argument{'' if hi == 1 else 's'} ({len(e.args)} provided)",
                   e.span)
        return False


def _address_space(t: Type) -> str | None:
    """"user" or "kernel" when `t` is known to hold an address in that space, else None."""
    if t.user:
        return "user"
    return "kernel" if t.kernel or (t.is_pointer and not t.anyspace) else None


def _is_int(text: str) -> bool:
    try:
        int(text, 0)
    except ValueError:
        return False
    return True


def signal_number(name: str) -> int | None:
    """The number of signal `name` (``SIGKILL``, ``KILL``), or None."""
    import signal as _signal

    key = name if name.startswith("SIG") else f"SIG{name}"
    sig = getattr(_signal.Signals, key, None)
    return int(sig) if sig is not None else None


def analyze(program: ast.Program, formats: FormatLookup, params: Sequence[str] = (), *,
            unsafe: bool = False, kfuncs: KfuncLookup | None = None, btf: BtfLookup | None = None,
            ksyms: SymbolLookup | None = None, usdt: UsdtLookup | None = None,
            usyms: UserSymbolLookup | None = None) -> Analysis:
    """Type-check `program`; raise `CompileError` listing every user error.

    `formats(category, name)` returns the record format of a tracepoint (None if there is none).
    `params` are the positional parameters ``$1``...; `kfuncs(name)` describes a kernel function for
    kfunc/kretfunc probes (from the kernel's BTF).
    """
    first = _Analyzer(formats, params, lenient=True, unsafe=unsafe, kfuncs=kfuncs, btf=btf,
                      ksyms=ksyms, usdt=usdt, usyms=usyms).run(program)
    final = _Analyzer(formats, params, lenient=False, maps=first.maps, unsafe=unsafe, kfuncs=kfuncs,
                      btf=btf, ksyms=ksyms, usdt=usdt, usyms=usyms)
    return final.run(program)
