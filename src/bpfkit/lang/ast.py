"""The syntax tree of a bpftrace script.

Every node is a frozen, slotted dataclass with a keyword-only `span`. Spans take no part in equality or
hashing, so two trees compare equal when they have the same shape and values wherever they came from:
``parse(unparse(tree)) == tree`` is the round-trip property. Compiler passes that make new nodes may leave
the span at `NOWHERE`.

Expressions are the `Expr` subclasses, statements the `Stmt` subclasses. Compound assignments keep their
operator (``@x += 1`` is ``Assign(Map("x"), Int(1), op="+")``); later passes may desugar them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Node and AttachPoint live in their own module: a compiled script keeps its attach points, and running
# a cached one (bpfkit.trace.cache) must not pay for creating every node class (start-up is a hot path).
from bpfkit.lang.attach import AttachPoint as AttachPoint
from bpfkit.lang.attach import Node as Node

# -- expressions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr(Node):
    """Base of expressions."""


@dataclass(frozen=True, slots=True)
class Int(Expr):
    """An integer literal (decimal, hex, octal, scientific or character); negative after ``-``."""

    value: int


@dataclass(frozen=True, slots=True)
class Str(Expr):
    """A string literal, escapes decoded, as bytes."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Bool(Expr):
    """``true`` or ``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class Builtin(Expr):
    """A builtin variable: ``pid``, ``comm``, ``arg0``, ``args``, ``retval``..."""

    name: str


@dataclass(frozen=True, slots=True)
class Identifier(Expr):
    """A bare identifier: an enum constant, a macro, a stack mode (``perf``) or a typedef name."""

    name: str


@dataclass(frozen=True, slots=True)
class Var(Expr):
    """A scratch variable ``$name`` (name without the ``$``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Map(Expr):
    """A map ``@name`` or ``@name[k1, k2]`` (name without the ``@``; ``""`` for ``@``)."""

    name: str
    keys: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Positional(Expr):
    """A positional parameter ``$1``..``$N``."""

    index: int


@dataclass(frozen=True, slots=True)
class PositionalCount(Expr):
    """``$#``: the number of positional parameters."""


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function call ``name(args)``."""

    name: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """A binary operator: ``+ - * / % & | ^ << >> && || == != < <= > >=``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """A unary operator: ``- ! ~ * &``, or ``++``/``--`` before (or, if `postfix`, after) a variable."""

    op: str
    operand: Expr
    postfix: bool = False


@dataclass(frozen=True, slots=True)
class Ternary(Expr):
    """``cond ? then : orelse``."""

    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(frozen=True, slots=True)
class FieldAccess(Expr):
    """``expr.field``, or ``expr->field`` when `arrow`."""

    expr: Expr
    field: str
    arrow: bool = False


@dataclass(frozen=True, slots=True)
class TupleAccess(Expr):
    """``expr.N``: element N of a tuple."""

    expr: Expr
    index: int


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """``expr[index]``: array or pointer subscript."""

    expr: Expr
    index: Expr


@dataclass(frozen=True, slots=True)
class TypeName(Node):
    """A type written in a cast, ``sizeof``, ``offsetof`` or ``let``.

    `name` is ``uint8``, ``string``, ``struct task_struct``, or a typedef such as ``pid_t``; `array` is the
    ``[N]`` length (0 for ``[]``); `pointer` counts the ``*`` after it.
    """

    name: str
    array: int | None = None
    pointer: int = 0


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    """``(type)expr``."""

    type: TypeName
    expr: Expr


@dataclass(frozen=True, slots=True)
class Tuple(Expr):
    """``(a, b, ...)`` with at least two elements."""

    elems: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Sizeof(Expr):
    """``sizeof(type)`` or ``sizeof(expr)``."""

    arg: TypeName | Expr


@dataclass(frozen=True, slots=True)
class Offsetof(Expr):
    """``offsetof(struct s, a.b)`` or ``offsetof(expr, field)``."""

    arg: TypeName | Expr
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Range(Expr):
    """``start..end`` (only as the iterable of a ``for`` loop)."""

    start: Expr
    end: Expr


# -- statements ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stmt(Node):
    """Base of statements."""


@dataclass(frozen=True, slots=True)
class Block(Stmt):
    """``{ stmts }``."""

    stmts: tuple[Stmt, ...] = ()


@dataclass(frozen=True, slots=True)
class ExprStmt(Stmt):
    """An expression evaluated for its effect, such as a call."""

    expr: Expr


@dataclass(frozen=True, slots=True)
class Assign(Stmt):
    """``target = value``, or a compound ``target op= value`` when `op` is set (``"+"`` for ``+=``)."""

    target: Map | Var
    value: Expr
    op: str | None = None


@dataclass(frozen=True, slots=True)
class VarDecl(Stmt):
    """``let $x``, ``let $x: type``, ``let $x = value`` or ``let $x: type = value``."""

    var: Var
    type: TypeName | None = None
    value: Expr | None = None


@dataclass(frozen=True, slots=True)
class If(Stmt):
    """``if (cond) then [else orelse]``; `orelse` is a Block or, for ``else if``, an If."""

    cond: Expr
    then: Block
    orelse: Block | If | None = None


@dataclass(frozen=True, slots=True)
class While(Stmt):
    """``while (cond) body``."""

    cond: Expr
    body: Block


@dataclass(frozen=True, slots=True)
class Unroll(Stmt):
    """``unroll (count) body``; count is an integer literal or positional parameter."""

    count: Expr
    body: Block


@dataclass(frozen=True, slots=True)
class For(Stmt):
    """``for ($var : iterable) body``; iterable is a map or a Range."""

    var: Var
    iterable: Expr
    body: Block


@dataclass(frozen=True, slots=True)
class Break(Stmt):
    """``break``."""


@dataclass(frozen=True, slots=True)
class Continue(Stmt):
    """``continue``."""


@dataclass(frozen=True, slots=True)
class Return(Stmt):
    """``return`` or ``return value``."""

    value: Expr | None = None


# -- top level -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe(Node):
    """``attach_points /predicate/ { body }``."""

    attach_points: tuple[AttachPoint, ...]
    predicate: Expr | None
    body: Block


@dataclass(frozen=True, slots=True)
class Preprocessor(Node):
    """A preprocessor line of the preamble: ``#include <linux/sched.h>``, ``#define X 1``."""

    text: str


@dataclass(frozen=True, slots=True)
class CDefinition(Node):
    """A C ``struct``/``union``/``enum`` definition of the preamble, kept as text for the C parser."""

    text: str


@dataclass(frozen=True, slots=True)
class ConfigEntry(Node):
    """``name = value`` inside ``config = { ... }``."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Config(Node):
    """``config = { name = value; ... }``."""

    entries: tuple[ConfigEntry, ...]


@dataclass(frozen=True, slots=True)
class Program(Node):
    """A whole script."""

    includes: tuple[Preprocessor, ...]
    definitions: tuple[CDefinition, ...]
    config: Config | None
    probes: tuple[Probe, ...]
