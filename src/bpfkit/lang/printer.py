"""Printing syntax trees: `dump_ast` for ``bpfkit trace -d`` and `unparse` back to source.

`dump_ast` prints one node per line, indented one space per level, with the labels bpftrace 0.17 uses
in its ``-d`` output (``int: 1``, ``map: @m``, ``call: printf``, ``pred``...), so the two can be compared.

`unparse` writes a script that parses back to an equal tree (spans aside). It adds parentheses only where
precedence needs them, and keeps attach points exactly as written.
"""

from __future__ import annotations

from collections.abc import Callable

from bpfkit.lang import ast
from bpfkit.lang.names import TYPE_NAMES
from bpfkit.lang.parser import BINARY_PRECEDENCE
from bpfkit.lang.probes import canonical_name

_TERNARY, _UNARY, _POSTFIX, _ATOM = 0, 11, 12, 13
_ESCAPES = {10: "\\n", 9: "\\t", 13: "\\r", 34: '\\"', 92: "\\\\"}


def escape_bytes(value: bytes) -> str:
    """String literal body for `value`: printable ASCII as is, C escapes, ``\\xHH`` for the rest."""
    out = []
    for b in value:
        if b in _ESCAPES:
            out.append(_ESCAPES[b])
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def type_text(t: ast.TypeName, compact: bool = False) -> str:
    """``struct task_struct *`` (or ``struct task_struct*`` when `compact`, as bpftrace dumps casts)."""
    text = t.name
    if t.array is not None:
        text += f"[{t.array}]" if t.array else "[]"
    if t.pointer:
        text += ("" if compact else " ") + "*" * t.pointer
    return text


# -- unparse: expressions --------------------------------------------------------------------------


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Ternary):
        return _TERNARY
    if isinstance(e, ast.Binary):
        return BINARY_PRECEDENCE[e.op]
    if isinstance(e, (ast.Unary, ast.Cast)):
        return _POSTFIX if isinstance(e, ast.Unary) and e.postfix else _UNARY
    if isinstance(e, ast.Int) and e.value < 0:
        return _UNARY
    if isinstance(e, (ast.FieldAccess, ast.TupleAccess, ast.Index)):
        return _POSTFIX
    if isinstance(e, ast.Range):
        return -1
    return _ATOM


def _sub(e: ast.Expr, min_level: int) -> str:
    text = unparse_expr(e)
    return f"({text})" if _level(e) < min_level else text


def _postfix_operand(e: ast.Expr) -> str:
    # A negative literal binds like a unary minus, but the parser folds "-5" before postfix operators
    # ("-5.x" is (-5).x), so it needs no parentheses here.
    if isinstance(e, ast.Int):
        return unparse_expr(e)
    return _sub(e, _POSTFIX)


def _index(e: ast.Index) -> str:
    # "@m[1]" is a keyed map, so a subscript of a keyless map needs parentheses: "(@m)[1]".
    base = e.expr
    keyless_map = isinstance(base, ast.Map) and not base.keys
    operand = f"({unparse_expr(base)})" if keyless_map else _postfix_operand(base)
    return f"{operand}[{unparse_expr(e.index)}]"


def _cast(e: ast.Cast) -> str:
    operand = _sub(e.expr, _UNARY)
    t = e.type
    typedef = t.pointer == 0 and t.array is None and t.name not in TYPE_NAMES and " " not in t.name
    if typedef and operand[:1] in "-*&":
        operand = f"({operand})"  # "(pid_t)-1" would parse as pid_t minus 1, as in bpftrace
    return f"({type_text(t)}){operand}"


def unparse_expr(e: ast.Expr) -> str:
    """Source text for an expression."""
    return _EXPR[type(e)](e)


def _unary(e: ast.Unary) -> str:
    if e.postfix:
        return _postfix_operand(e.operand) + e.op
    operand = _sub(e.operand, _UNARY)
    if e.op == "-" and operand[:1].isdigit():
        return f"-({operand})"  # "-5" and "-5.x" would parse with the literal -5
    if operand[:1] in "-+&*" and e.op[-1] in "-+&*":
        return f"{e.op} {operand}"  # keep "- -x" from lexing as "--x"
    return e.op + operand


def _binary(e: ast.Binary) -> str:
    level = BINARY_PRECEDENCE[e.op]
    return f"{_sub(e.left, level)} {e.op} {_sub(e.right, level + 1)}"


def _args(items: tuple[ast.Expr, ...]) -> str:
    return ", ".join(unparse_expr(a) for a in items)


def _type_or_expr(arg: ast.TypeName | ast.Expr) -> str:
    return type_text(arg) if isinstance(arg, ast.TypeName) else unparse_expr(arg)


_EXPR: dict[type, Callable[..., str]] = {
    ast.Int: lambda e: str(e.value),
    ast.Str: lambda e: f'"{escape_bytes(e.value)}"',
    ast.Bool: lambda e: "true" if e.value else "false",
    ast.Builtin: lambda e: e.name,
    ast.Identifier: lambda e: e.name,
    ast.Var: lambda e: f"${e.name}",
    ast.Map: lambda e: f"@{e.name}[{_args(e.keys)}]" if e.keys else f"@{e.name}",
    ast.Positional: lambda e: f"${e.index}",
    ast.PositionalCount: lambda e: "$#",
    ast.Call: lambda e: f"{e.name}({_args(e.args)})",
    ast.Binary: _binary,
    ast.Unary: _unary,
    ast.Ternary: lambda e: (f"{_sub(e.cond, 1)} ? {_sub(e.then, _TERNARY)} : "
                            f"{_sub(e.orelse, _TERNARY)}"),
    ast.FieldAccess: lambda e: f"{_postfix_operand(e.expr)}{'->' if e.arrow else '.'}{e.field}",
    ast.TupleAccess: lambda e: f"{_postfix_operand(e.expr)}.{e.index}",
    ast.Index: _index,
    ast.Cast: _cast,
    ast.Tuple: lambda e: f"({_args(e.elems)})",
    ast.Sizeof: lambda e: f"sizeof({_type_or_expr(e.arg)})",
    ast.Offsetof: lambda e: f"offsetof({_type_or_expr(e.arg)}, {'.'.join(e.fields)})",
    ast.Range: lambda e: f"{unparse_expr(e.start)}..{unparse_expr(e.end)}",
}


# -- unparse: statements and programs --------------------------------------------------------------


def _block(b: ast.Block, indent: str) -> list[str]:
    lines = ["{"]
    for s in b.stmts:
        lines += _stmt(s, indent + "  ")
    lines.append(indent + "}")
    return lines


def _join_block(head: str, b: ast.Block, indent: str) -> list[str]:
    body = _block(b, indent)
    return [indent + head + " " + body[0], *body[1:]]


def _stmt(s: ast.Stmt, indent: str) -> list[str]:
    if isinstance(s, ast.ExprStmt):
        return [f"{indent}{unparse_expr(s.expr)};"]
    if isinstance(s, ast.Assign):
        return [f"{indent}{unparse_expr(s.target)} {s.op or ''}= {unparse_expr(s.value)};"]
    if isinstance(s, ast.VarDecl):
        text = f"let ${s.var.name}"
        if s.type is not None:
            text += f": {type_text(s.type)}"
        if s.value is not None:
            text += f" = {unparse_expr(s.value)}"
        return [f"{indent}{text};"]
    if isinstance(s, ast.If):
        lines = _join_block(f"if ({unparse_expr(s.cond)})", s.then, indent)
        orelse = s.orelse
        while orelse is not None:
            if isinstance(orelse, ast.If):
                more = _join_block(f"if ({unparse_expr(orelse.cond)})", orelse.then, indent)
                lines[-1] += " else " + more[0].lstrip()
                lines += more[1:]
                orelse = orelse.orelse
            else:
                more = _block(orelse, indent)
                lines[-1] += " else " + more[0]
                lines += more[1:]
                orelse = None
        return lines
    if isinstance(s, ast.While):
        return _join_block(f"while ({unparse_expr(s.cond)})", s.body, indent)
    if isinstance(s, ast.Unroll):
        return _join_block(f"unroll ({unparse_expr(s.count)})", s.body, indent)
    if isinstance(s, ast.For):
        return _join_block(f"for (${s.var.name} : {unparse_expr(s.iterable)})", s.body, indent)
    if isinstance(s, ast.Block):
        return [indent + line if i == 0 else line for i, line in enumerate(_block(s, indent))]
    if isinstance(s, ast.Break):
        return [f"{indent}break;"]
    if isinstance(s, ast.Continue):
        return [f"{indent}continue;"]
    if isinstance(s, ast.Return):
        return [f"{indent}return{'' if s.value is None else ' ' + unparse_expr(s.value)};"]
    raise TypeError(f"not a statement: {type(s).__name__}")


def unparse(program: ast.Program) -> str:
    """Source text for a whole program."""
    out: list[str] = [p.text for p in program.includes]
    out += [d.text for d in program.definitions]
    if program.config is not None:
        entries = "; ".join(f"{e.name} = {unparse_expr(e.value)}" for e in program.config.entries)
        out.append(f"config = {{ {entries} }}" if entries else "config = { }")
    for probe in program.probes:
        head = ",\n".join(ap.raw for ap in probe.attach_points)
        if probe.predicate is not None:
            pred = unparse_expr(probe.predicate)
            pad = " " if pred.startswith("*") else ""  # "/*" would open a comment
            head += f" /{pad}{pred}{pad}/"
        out.append(head + " " + "\n".join(_block(probe.body, "")))
    return "\n\n".join(out) + "\n"


# -- dump ------------------------------------------------------------------------------------------

_UNARY_LABELS = {"*": "dereference", "&": "address of"}
_Child = ast.Node | str | None


def _label(node: ast.Node) -> tuple[str, tuple[_Child, ...]]:
    """The dump line of a node and the children printed under it."""
    match node:
        case ast.Int(value=v):
            return f"int: {v}", ()
        case ast.Str(value=v):
            return f"string: {escape_bytes(v)}", ()
        case ast.Bool(value=v):
            return f"bool: {'true' if v else 'false'}", ()
        case ast.Builtin(name=name):
            return f"builtin: {name}", ()
        case ast.Identifier(name=name):
            return f"identifier: {name}", ()
        case ast.Var(name=name):
            return f"variable: ${name}", ()
        case ast.Positional(index=i):
            return f"param: ${i}", ()
        case ast.PositionalCount():
            return "param: $#", ()
        case ast.Map(name=name, keys=keys):
            return f"map: @{name}", keys
        case ast.Call(name=name, args=args):
            return f"call: {name}", args
        case ast.Binary(op=op, left=left, right=right):
            return op, (left, right)
        case ast.Unary(op=op, operand=operand, postfix=postfix):
            if op in ("++", "--"):
                return f"{op} ({'post' if postfix else 'pre'})", (operand,)
            return _UNARY_LABELS.get(op, op), (operand,)
        case ast.Ternary(cond=c, then=t, orelse=o):
            return "?:", (c, t, o)
        case ast.FieldAccess(expr=e, field=f, arrow=arrow):
            return ("->" if arrow else "."), (e, f)
        case ast.TupleAccess(expr=e, index=i):
            return ".", (e, str(i))
        case ast.Index(expr=e, index=i):
            return "[]", (e, i)
        case ast.Cast(type=t, expr=e):
            return f"({type_text(t, compact=True)})", (e,)
        case ast.Tuple(elems=elems):
            return "tuple:", elems
        case ast.TypeName():
            return f"type: {type_text(node)}", ()
        case ast.Sizeof(arg=arg):
            return "sizeof", (arg,)
        case ast.Offsetof(arg=arg, fields=fields):
            return "offsetof", (arg, ".".join(fields))
        case ast.Range(start=a, end=b):
            return "..", (a, b)
        case ast.Block(stmts=stmts):
            return "block", stmts
        case ast.Assign(target=t, value=v, op=op):
            return f"{op or ''}=", (t, v)
        case ast.VarDecl(var=var, type=t, value=v):
            return "let", (var, t, v)
        case ast.While(cond=c, body=b):
            return "while", (c, b)
        case ast.Unroll(count=c, body=b):
            return "unroll", (c, b)
        case ast.For(var=var, iterable=it, body=b):
            return "for", (var, it, b)
        case ast.Break():
            return "break", ()
        case ast.Continue():
            return "continue", ()
        case ast.Return(value=v):
            return "return", (v,)
        case ast.ConfigEntry(name=name, value=v):
            return name, (v,)
        case ast.Config(entries=entries):
            return "config", entries
    raise TypeError(f"cannot dump {type(node).__name__}")


def _dump(node: ast.Node, depth: int, out: list[str]) -> None:
    pad = " " * depth
    if isinstance(node, ast.ExprStmt):
        _dump(node.expr, depth, out)
    elif isinstance(node, ast.If):
        out += [pad + "if"]
        _dump(node.cond, depth + 1, out)
        out.append(pad + " then")
        for s in node.then.stmts:
            _dump(s, depth + 2, out)
        if node.orelse is not None:
            out.append(pad + " else")
            for s in (node.orelse,) if isinstance(node.orelse, ast.If) else node.orelse.stmts:
                _dump(s, depth + 2, out)
    elif isinstance(node, ast.Probe):
        out += [pad + canonical_name(ap) for ap in node.attach_points]
        if node.predicate is not None:
            out.append(pad + " pred")
            _dump(node.predicate, depth + 2, out)
        for s in node.body.stmts:
            _dump(s, depth + 1, out)
    else:
        label, children = _label(node)
        out.append(pad + label)
        for child in children:
            if isinstance(child, str):
                out.append(pad + " " + child)
            elif child is not None:
                _dump(child, depth + 1, out)


def dump_ast(node: ast.Node) -> str:
    """An indented outline of a tree, one node per line, in the style of ``bpftrace -d``."""
    out: list[str] = []
    if isinstance(node, ast.Program):
        out += [p.text for p in node.includes]
        out += [d.text + ";" for d in node.definitions]
        if out:
            out.append("")
        out.append("Program")
        if node.config is not None:
            _dump(node.config, 1, out)
        for probe in node.probes:
            _dump(probe, 1, out)
    else:
        _dump(node, 0, out)
    return "\n".join(out) + "\n"
