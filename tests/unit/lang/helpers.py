"""Shared helpers for the language tests."""

from __future__ import annotations

from pathlib import Path

from bpfkit.lang import ast
from bpfkit.lang.parser import parse

BT_DIR = Path(__file__).resolve().parents[2] / "data" / "bt"
SAMPLES = sorted(BT_DIR.glob("*.bt"))
# Scripts that use syntax newer than bpftrace 0.17 (config blocks, let, for, fentry, begin/end...).
NEWER_THAN_0_17 = {"modern.bt"}


def expr(text: str) -> ast.Expr:
    """The expression `text`, parsed as the value of a map assignment."""
    stmt = parse(f"BEGIN {{ @ = {text}; }}").probes[0].body.stmts[0]
    assert isinstance(stmt, ast.Assign)
    return stmt.value


def sexpr(e: ast.Node) -> str:
    """A compact prefix form of an expression tree, for precedence assertions."""
    match e:
        case ast.Int(value=v):
            return str(v)
        case ast.Str(value=v):
            return repr(v.decode())
        case ast.Bool(value=v):
            return str(v).lower()
        case ast.Builtin(name=n) | ast.Identifier(name=n):
            return n
        case ast.Var(name=n):
            return f"${n}"
        case ast.Map(name=n, keys=keys):
            return f"@{n}" + (f"[{' '.join(sexpr(k) for k in keys)}]" if keys else "")
        case ast.Positional(index=i):
            return f"${i}"
        case ast.PositionalCount():
            return "$#"
        case ast.Call(name=n, args=args):
            return f"({n}{''.join(' ' + sexpr(a) for a in args)})"
        case ast.Binary(op=op, left=left, right=right):
            return f"({op} {sexpr(left)} {sexpr(right)})"
        case ast.Unary(op=op, operand=o, postfix=post):
            return f"({'post' if post else ''}{op} {sexpr(o)})"
        case ast.Ternary(cond=c, then=t, orelse=o):
            return f"(? {sexpr(c)} {sexpr(t)} {sexpr(o)})"
        case ast.FieldAccess(expr=x, field=f, arrow=arrow):
            return f"({'->' if arrow else '.'} {sexpr(x)} {f})"
        case ast.TupleAccess(expr=x, index=i):
            return f"(. {sexpr(x)} {i})"
        case ast.Index(expr=x, index=i):
            return f"([] {sexpr(x)} {sexpr(i)})"
        case ast.Cast(type=t, expr=x):
            return f"(cast {sexpr(t)} {sexpr(x)})"
        case ast.TypeName(name=n, array=a, pointer=p):
            return n.replace(" ", "_") + ("" if a is None else f"[{a}]") + "*" * p
        case ast.Tuple(elems=elems):
            return f"(tuple {' '.join(sexpr(x) for x in elems)})"
        case ast.Sizeof(arg=a):
            return f"(sizeof {sexpr(a)})"
        case ast.Offsetof(arg=a, fields=fields):
            return f"(offsetof {sexpr(a)} {'.'.join(fields)})"
        case ast.Range(start=a, end=b):
            return f"(.. {sexpr(a)} {sexpr(b)})"
    raise TypeError(type(e).__name__)
