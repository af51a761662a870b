"""The syntax tree of a bpftrace script.

Every node is a frozen, slotted record (`bpfkit._records`) with a keyword-only `span`. Spans take no
part in equality or hashing, so two trees compare equal when they have the same shape and values
wherever they came from: ``parse(unparse(tree)) == tree`` is the round-trip property. Compiler passes
that make new nodes may leave the span at `NOWHERE`.

Expressions are the `Expr` subclasses, statements the `Stmt` subclasses. Compound assignments keep their
operator (``@x += 1`` is ``Assign(Map("x"), Int(1), op="+")``); later passes may desugar them.
"""

from __future__ import annotations

from bpfkit._records import record

# Node and AttachPoint live in their own module: a compiled script keeps its attach points, and running
# a cached one (bpfkit.trace.cache) must not pay for creating every node class (start-up is a hot path).
from bpfkit.lang.attach import AttachPoint as AttachPoint
from bpfkit.lang.attach import Node as Node

# -- expressions -----------------------------------------------------------------------------------


@record
class Expr(Node):
    """Base of expressions."""


@record
class Int(Expr):
    """An integer literal (decimal, hex, octal, scientific or character); negative after ``-``."""

    value: int


@record
class Str(Expr):
    """A string literal, escapes decoded, as bytes."""

    value: bytes


@record
class Bool(Expr):
    """``true`` or ``false``."""

    value: bool


@record
class Builtin(Expr):
    """A builtin variable: ``pid``, ``comm``, ``arg0``, ``args``, ``retval``..."""

    name: str


@record
class Identifier(Expr):
    """A bare identifier: an enum constant, a macro, a stack mode (``perf``) or a typedef name."""

    name: str


@record
class Var(Expr):
    """A scratch variable ``$name`` (name without the ``$``)."""

    name: str


@record
class Map(Expr):
    """A map ``@name`` or ``@name[k1, k2]`` (name without the ``@``; ``""`` for ``@``)."""

    name: str
    keys: tuple[Expr, ...] = ()


@record
class Positional(Expr):
    """A positional parameter ``$1``..``$N``."""

    index: int


@record
class PositionalCount(Expr):
    """``$#``: the number of positional parameters."""


@record
class Call(Expr):
    """A function call ``name(args)``."""

    name: str
    args: tuple[Expr, ...] = ()


@record
class Binary(Expr):
    """A binary operator: ``+ - * / % & | ^ << >> && || == != < <= > >=``."""

    op: str
    left: Expr
    right: Expr


@record
class Unary(Expr):
    """A unary operator: ``- ! ~ * &``, or ``++``/``--`` before (or, if `postfix`, after) a variable."""

    op: str
    operand: Expr
    postfix: bool = False


@record
class Ternary(Expr):
    """``cond ? then : orelse``."""

    cond: Expr
    then: Expr
    orelse: Expr


@record
class FieldAccess(Expr):
    """``expr.field``, or ``expr->field`` when `arrow`."""

    expr: Expr
    field: str
    arrow: bool = False


@record
class TupleAccess(Expr):
    """``expr.N``: element N of a tuple."""

    expr: Expr
    index: int


@record
class Index(Expr):
    """``expr[index]``: array or pointer subscript."""

    expr: Expr
    index: Expr


@record
class TypeName(Node):
    """A type written in a cast, ``sizeof``, ``offsetof`` or ``let``.

    `name` is ``uint8``, ``string``, ``struct task_struct``, or a typedef such as ``pid_t``; `array` is the
    ``[N]`` length (0 for ``[]``); `pointer` counts the ``*`` after it.
    """

    name: str
    array: int | None = None
    pointer: int = 0


@record
class Cast(Expr):
    """``(type)expr``."""

    type: TypeName
    expr: Expr


@record
class Tuple(Expr):
    """``(a, b, ...)`` with at least two elements."""

    elems: tuple[Expr, ...]


@record
class Sizeof(Expr):
    """``sizeof(type)`` or ``sizeof(expr)``."""

    arg: TypeName | Expr


@record
class Offsetof(Expr):
    """``offsetof(struct s, a.b)`` or ``offsetof(expr, field)``."""

    arg: TypeName | Expr
    fields: tuple[str, ...]


@record
class Range(Expr):
    """``start..end`` (only as the iterable of a ``for`` loop)."""

    start: Expr
    end: Expr


# -- statements ------------------------------------------------------------------------------------


@record
class Stmt(Node):
    """Base of statements."""


@record
class Block(Stmt):
    """``{ stmts }``."""

    stmts: tuple[Stmt, ...] = ()


@record
class ExprStmt(Stmt):
    """An expression evaluated for its effect, such as a call."""

    expr: Expr


@record
class Assign(Stmt):
    """``target = value``, or a compound ``target op= value`` when `op` is set (``"+"`` for ``+=``)."""

    target: Map | Var
    value: Expr
    op: str | None = None


@record
class VarDecl(Stmt):
    """``let $x``, ``let $x: type``, ``let $x = value`` or ``let $x: type = value``."""

    var: Var
    type: TypeName | None = None
    value: Expr | None = None


@record
class If(Stmt):
    """``if (cond) then [else orelse]``; `orelse` is a Block or, for ``else if``, an If."""

    cond: Expr
    then: Block
    orelse: Block | If | None = None


@record
class While(Stmt):
    """``while (cond) body``."""

    cond: Expr
    body: Block


@record
class Unroll(Stmt):
    """``unroll (count) body``; count is an integer literal or positional parameter."""

    count: Expr
    body: Block


@record
class For(Stmt):
    """``for ($var : iterable) body``; iterable is a map or a Range."""

    var: Var
    iterable: Expr
    body: Block


@record
class Break(Stmt):
    """``break``."""


@record
class Continue(Stmt):
    """``continue``."""


@record
class Return(Stmt):
    """``return`` or ``return value``."""

    value: Expr | None = None


# -- top level -------------------------------------------------------------------------------------


@record
class Probe(Node):
    """``attach_points /predicate/ { body }``."""

    attach_points: tuple[AttachPoint, ...]
    predicate: Expr | None
    body: Block


@record
class Preprocessor(Node):
    """A preprocessor line of the preamble: ``#include <linux/sched.h>``, ``#define X 1``."""

    text: str


@record
class CDefinition(Node):
    """A C ``struct``/``union``/``enum`` definition of the preamble, kept as text for the C parser."""

    text: str


@record
class ConfigEntry(Node):
    """``name = value`` inside ``config = { ... }``."""

    name: str
    value: Expr


@record
class Config(Node):
    """``config = { name = value; ... }``."""

    entries: tuple[ConfigEntry, ...]


@record
class Program(Node):
    """A whole script."""

    includes: tuple[Preprocessor, ...]
    definitions: tuple[CDefinition, ...]
    config: Config | None
    probes: tuple[Probe, ...]
