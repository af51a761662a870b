"""A recursive-descent parser for bpftrace scripts.

Grammar (C precedence, lowest first: ternary, ``||``, ``&&``, ``|``, ``^``, ``&``, ``== !=``,
``< <= > >=``, ``<< >>``, ``+ -``, ``* / %``, unary and casts, postfix)::

    program    := (preproc | cdef | config)* probe+
    probe      := attach (',' attach)* ['/' expr ENDPRED] block
    block      := '{' (stmt (';' | before '}') | block_stmt | ';')* '}'
    stmt       := expr | (map|var) assign_op expr | 'let' var [':' type] ['=' expr]
                | 'break' | 'continue' | 'return' [expr]
    block_stmt := 'if' '(' expr ')' block ['else' (if | block)] | 'while' '(' expr ')' block
                | 'unroll' '(' expr ')' block | 'for' '(' var ':' expr ['..' expr] ')' block | block

Syntax errors stop the parse and are raised as `CompileError` with one diagnostic worded as bpftrace's
(``syntax error, unexpected }, expecting ;``). Errors that leave the tree well formed, such as an unknown
function name, are collected and raised together at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from bpfkit.errors import CompileError
from bpfkit.lang import ast
from bpfkit.lang.diagnostics import DiagnosticSink, did_you_mean, error
from bpfkit.lang.lexer import Token, TokenKind, tokenize
from bpfkit.lang.names import BUILTINS, FUNCTIONS, RECORD_KEYWORDS, TYPE_NAMES, is_builtin, is_function
from bpfkit.lang.probes import parse_attach_point
from bpfkit.lang.source import Source, Span

#: Binary operators by precedence level (higher binds tighter); all are left-associative.
BINARY_PRECEDENCE: dict[str, int] = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
ASSIGN_OPS = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="})
# Tokens after "(name)" that make it a cast of a typedef rather than a parenthesised identifier.
# "-", "*" and "&" are left out: "(x) - 1" is a subtraction, as in bpftrace.
_CAST_FOLLOWERS = frozenset({
    TokenKind.INT, TokenKind.STRING, TokenKind.IDENT, TokenKind.VAR, TokenKind.MAP,
    TokenKind.POSITIONAL, TokenKind.PARAMCOUNT,
})
_MAX_DEPTH = 100  # nesting limit: a clear error instead of Python's RecursionError


class Parser:
    """Parses the tokens of one source; use `parse`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        tokens, lex_errors = tokenize(source)
        self.tokens = tokens
        self.pos = 0
        self.sink = DiagnosticSink()
        for d in lex_errors:
            self.sink.add(d)
        self.depth = 0

    # -- token helpers -----------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token:
        i = min(self.pos + offset, len(self.tokens) - 1)
        return self.tokens[i]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not TokenKind.EOF:
            self.pos += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        return self.peek().is_op(*ops)

    def accept_op(self, op: str) -> Token | None:
        if self.peek().is_op(op):
            return self.advance()
        return None

    def expect_op(self, op: str, *also: str) -> Token:
        if self.peek().is_op(op):
            return self.advance()
        self.syntax_error(expecting=(op, *also))

    def prev_span(self) -> Span:
        return self.tokens[max(self.pos - 1, 0)].span

    def syntax_error(self, expecting: tuple[str, ...] = (), tok: Token | None = None,
                     hint: str | None = None) -> NoReturn:
        tok = tok or self.peek()
        span = tok.span
        if tok.kind is TokenKind.EOF and self.pos > 0:
            span = self.tokens[self.pos - 1].span  # bpftrace points at the last token
        what = tok.describe()
        if tok.kind is TokenKind.IDENT:  # bpftrace's lexer has separate tokens for these
            what = "call" if is_function(tok.text) else "builtin" if is_builtin(tok.text) else what
        message = f"syntax error, unexpected {what}"
        if expecting:
            message += ", expecting " + " or ".join('","' if e == "," else e for e in expecting)
        raise self.sink.fail(error(message, span, hint))

    def fail(self, message: str, span: Span, hint: str | None = None) -> NoReturn:
        raise self.sink.fail(error(message, span, hint))

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(f"nesting is too deep (more than {_MAX_DEPTH} levels)", self.peek().span)

    # -- program -----------------------------------------------------------------------------------
    def parse_program(self) -> ast.Program:
        includes: list[ast.Preprocessor] = []
        definitions: list[ast.CDefinition] = []
        config: ast.Config | None = None
        probes: list[ast.Probe] = []
        while (tok := self.peek()).kind is not TokenKind.EOF:
            preamble = tok.kind in (TokenKind.PREPROC, TokenKind.CDEF) or tok.is_keyword("config")
            if preamble and probes:
                self.fail("the preamble (#include, #define, struct definitions, config) must come "
                          "before the first probe", tok.span)
            if tok.kind is TokenKind.PREPROC:
                self.advance()
                includes.append(ast.Preprocessor(tok.str_value, span=tok.span))
            elif tok.kind is TokenKind.CDEF:
                self.advance()
                definitions.append(ast.CDefinition(tok.str_value, span=tok.span))
            elif tok.is_keyword("config"):
                if config is not None:
                    self.fail("duplicate config block", tok.span)
                config = self.parse_config()
            else:
                probes.append(self.parse_probe())
        if not probes:
            self.fail("the program has no probes", self.peek().span if self.pos == 0 else self.prev_span())
        self.sink.check()
        start = self.tokens[0].span
        return ast.Program(tuple(includes), tuple(definitions), config, tuple(probes),
                           span=start | self.prev_span())

    def parse_config(self) -> ast.Config:
        start = self.advance().span
        self.expect_op("=")
        self.expect_op("{")
        entries: list[ast.ConfigEntry] = []
        while not self.accept_op("}"):
            if self.accept_op(";"):
                continue
            name = self.peek()
            if name.kind not in (TokenKind.IDENT, TokenKind.KEYWORD):
                self.syntax_error(expecting=("identifier", "}"))
            self.advance()
            self.expect_op("=")
            value = self.parse_expr()
            entries.append(ast.ConfigEntry(name.text, value, span=name.span | value.span))
            if not self.at_op("}"):
                self.expect_op(";", "}")
        return ast.Config(tuple(entries), span=start | self.prev_span())

    def parse_probe(self) -> ast.Probe:
        start = self.peek().span
        points = [self.parse_attach_point()]
        while self.accept_op(","):
            points.append(self.parse_attach_point())
        predicate = None
        if self.accept_op("/"):
            predicate = self.parse_expr()
            if self.peek().kind is not TokenKind.ENDPRED:
                self.syntax_error(expecting=("end predicate",))
            self.advance()
        if not self.at_op("{"):
            hint = None
            if self.peek().kind is TokenKind.ATTACH:
                hint = "separate the attach points of a probe with ','"
            elif predicate is None and "/" in self.tokens[self.pos - 1].text:
                hint = ("a predicate needs a space before its '/' when the attach point ends in a path: "
                        f"'{self.tokens[self.pos - 1].text}' was read as one attach point")
            self.syntax_error(expecting=("{",), hint=hint)
        body = self.parse_block()
        usable = tuple(p for p in points if p is not None)
        return ast.Probe(usable, predicate, body, span=start | body.span)

    def parse_attach_point(self) -> ast.AttachPoint | None:
        tok = self.peek()
        if tok.kind is not TokenKind.ATTACH:
            self.syntax_error(expecting=("attach point",))
        self.advance()
        point, errors = parse_attach_point(tok.str_value, tok.span)
        for d in errors:
            self.sink.add(d)
        return point

    # -- statements --------------------------------------------------------------------------------
    def parse_block(self) -> ast.Block:
        start = self.expect_op("{").span
        self._nest()
        stmts: list[ast.Stmt] = []
        while True:
            tok = self.peek()
            if tok.is_op("}"):
                self.advance()
                break
            if tok.is_op(";"):
                self.advance()
                continue
            if tok.kind is TokenKind.EOF:
                self.syntax_error(expecting=("}",))
            stmt, is_block = self.parse_stmt()
            stmts.append(stmt)
            if not is_block and not self.at_op("}"):
                self.expect_op(";", "}")
        self.depth -= 1
        return ast.Block(tuple(stmts), span=start | self.prev_span())

    def parse_stmt(self) -> tuple[ast.Stmt, bool]:
        """One statement, and whether it ends with a block (so needs no ``;``)."""
        tok = self.peek()
        if tok.kind is TokenKind.KEYWORD:
            word = tok.text
            if word == "if":
                return self.parse_if(), True
            if word == "while":
                self.advance()
                cond = self.parse_paren_expr()
                body = self.parse_block()
                return ast.While(cond, body, span=tok.span | body.span), True
            if word == "unroll":
                self.advance()
                count = self.parse_paren_expr()
                if not isinstance(count, (ast.Int, ast.Positional)):
                    self.fail("unroll count must be an integer literal or a positional parameter", count.span)
                body = self.parse_block()
                return ast.Unroll(count, body, span=tok.span | body.span), True
            if word == "for":
                return self.parse_for(), True
            if word in ("break", "continue"):
                self.advance()
                return (ast.Break(span=tok.span) if word == "break" else ast.Continue(span=tok.span)), False
            if word == "return":
                self.advance()
                if self.at_op(";", "}"):
                    return ast.Return(span=tok.span), False
                value = self.parse_expr()
                return ast.Return(value, span=tok.span | value.span), False
            if word == "let":
                return self.parse_let(), False
        if tok.is_op("{"):
            return self.parse_block(), True
        return self.parse_simple_stmt(), False

    def parse_paren_expr(self) -> ast.Expr:
        self.expect_op("(")
        expr = self.parse_expr()
        self.expect_op(")")
        return expr

    def parse_if(self) -> ast.If:
        start = self.advance().span
        cond = self.parse_paren_expr()
        then = self.parse_block()
        orelse: ast.Block | ast.If | None = None
        if self.peek().is_keyword("else"):
            self.advance()
            orelse = self.parse_if() if self.peek().is_keyword("if") else self.parse_block()
        end = orelse.span if orelse is not None else then.span
        return ast.If(cond, then, orelse, span=start | end)

    def parse_for(self) -> ast.For:
        start = self.advance().span
        self.expect_op("(")
        var = self.parse_var()
        self.expect_op(":")
        iterable = self.parse_expr()
        if self.accept_op(".."):
            end = self.parse_expr()
            iterable = ast.Range(iterable, end, span=iterable.span | end.span)
        self.expect_op(")")
        body = self.parse_block()
        return ast.For(var, iterable, body, span=start | body.span)

    def parse_var(self) -> ast.Var:
        tok = self.peek()
        if tok.kind is not TokenKind.VAR:
            self.syntax_error(expecting=("variable",))
        self.advance()
        return ast.Var(tok.str_value, span=tok.span)

    def parse_let(self) -> ast.VarDecl:
        start = self.advance().span
        var = self.parse_var()
        type_ = None
        if self.accept_op(":"):
            type_ = self.parse_type()
        value = None
        if self.accept_op("="):
            value = self.parse_expr()
        elif self.peek().kind is TokenKind.OP and self.peek().text in ASSIGN_OPS:
            self.fail("a declaration can only be initialised with '='", self.peek().span)
        return ast.VarDecl(var, type_, value, span=start | self.prev_span())

    def parse_simple_stmt(self) -> ast.Stmt:
        expr = self.parse_expr()
        tok = self.peek()
        if tok.kind is TokenKind.OP and tok.text in ASSIGN_OPS:
            if isinstance(expr, ast.TupleAccess):
                self.fail("tuples are immutable once created; consider creating a new tuple and "
                          "assigning it instead", expr.span)
            if not isinstance(expr, (ast.Map, ast.Var)):
                hint = None
                if isinstance(expr, (ast.Identifier, ast.Builtin)):
                    hint = f"write '${expr.name}' for a scratch variable or '@{expr.name}' for a map"
                self.fail(f"cannot assign to this expression with '{tok.text}': only maps and "
                          "variables can be assigned", expr.span, hint)
            self.advance()
            value = self.parse_expr()
            op = None if tok.text == "=" else tok.text[:-1]
            return ast.Assign(expr, value, op, span=expr.span | value.span)
        return ast.ExprStmt(expr, span=expr.span)

    # -- types -------------------------------------------------------------------------------------
    def starts_type(self, offset: int = 0) -> bool:
        tok = self.peek(offset)
        if tok.kind is TokenKind.KEYWORD:
            return tok.text in RECORD_KEYWORDS
        return tok.kind is TokenKind.IDENT and tok.text in TYPE_NAMES

    def parse_type(self) -> ast.TypeName:
        tok = self.advance()
        span = tok.span
        if tok.kind is TokenKind.KEYWORD and tok.text in RECORD_KEYWORDS:
            name_tok = self.peek()
            if name_tok.kind not in (TokenKind.IDENT, TokenKind.KEYWORD):
                self.syntax_error(expecting=("identifier",))
            self.advance()
            name = f"{tok.text} {name_tok.text}"
            span = span | name_tok.span
        elif tok.kind is TokenKind.IDENT:
            name = tok.text
        else:
            self.syntax_error(expecting=("type",), tok=tok)
        array = None
        if self.accept_op("["):
            size = self.peek()
            if size.kind is TokenKind.INT:
                self.advance()
                array = size.int_value
            else:
                array = 0
            span = span | self.expect_op("]").span
        pointer = 0
        while self.at_op("*"):
            pointer += 1
            span = span | self.advance().span
        return ast.TypeName(name, array, pointer, span=span)

    def cast_ahead(self) -> bool:
        """At ``(``: does a cast follow (``(uint8)``, ``(struct s *)``, ``(pid_t)x``)?"""
        if self.starts_type(1):
            return True
        name = self.peek(1)
        if name.kind is not TokenKind.IDENT or is_builtin(name.text):
            return False
        i = 2
        while self.peek(i).is_op("*"):
            i += 1
        if i > 2:
            return True  # as bpftrace's grammar: "(name *" starts a pointer cast, whatever follows
        if not self.peek(i).is_op(")"):
            return False
        after = self.peek(i + 1)
        return (after.kind in _CAST_FOLLOWERS or after.is_op("(", "!", "~", "++", "--")
                or after.is_keyword("sizeof", "offsetof", "true", "false"))

    # -- expressions -------------------------------------------------------------------------------
    def parse_expr(self) -> ast.Expr:
        self._nest()
        cond = self.parse_binary(1)
        if self.accept_op("?"):
            then = self.parse_expr()
            self.expect_op(":")
            orelse = self.parse_expr()
            cond = ast.Ternary(cond, then, orelse, span=cond.span | orelse.span)
        self.depth -= 1
        return cond

    def parse_binary(self, min_level: int) -> ast.Expr:
        """Precedence climbing over BINARY_PRECEDENCE (all operators are left-associative)."""
        left = self.parse_unary()
        while True:
            tok = self.peek()
            level = BINARY_PRECEDENCE.get(tok.text, 0) if tok.kind is TokenKind.OP else 0
            if level < min_level:
                return left
            self.advance()
            right = self.parse_binary(level + 1)
            left = ast.Binary(tok.text, left, right, span=left.span | right.span)

    def parse_unary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind is TokenKind.OP:
            if tok.text == "-" and self.peek(1).kind is TokenKind.INT:
                self.advance()
                lit = self.advance()
                node: ast.Expr = ast.Int(-lit.int_value, span=tok.span | lit.span)
                return self.parse_postfix_ops(node)
            if tok.text in ("-", "!", "~", "*", "&"):
                self.advance()
                self._nest()
                operand = self.parse_unary()
                self.depth -= 1
                return ast.Unary(tok.text, operand, span=tok.span | operand.span)
            if tok.text in ("++", "--"):
                self.advance()
                operand = self.parse_postfix()
                self.check_incdec(tok, operand)
                return ast.Unary(tok.text, operand, span=tok.span | operand.span)
            if tok.text == "(" and self.cast_ahead():
                self.advance()
                type_ = self.parse_type()
                self.expect_op(")", *(("*",) if type_.pointer else ()))  # bpftrace: "expecting ) or *"
                self._nest()
                operand = self.parse_unary()
                self.depth -= 1
                return ast.Cast(type_, operand, span=tok.span | operand.span)
        return self.parse_postfix()

    def check_incdec(self, op: Token, operand: ast.Expr) -> None:
        if not isinstance(operand, (ast.Map, ast.Var)):
            self.fail(f"the {op.text} operator must be applied to a map or variable", op.span | operand.span)

    def parse_postfix(self) -> ast.Expr:
        return self.parse_postfix_ops(self.parse_primary())

    def parse_postfix_ops(self, node: ast.Expr) -> ast.Expr:
        while True:
            tok = self.peek()
            if tok.is_op(".", "->"):
                self.advance()
                name = self.peek()
                if tok.text == "." and name.kind is TokenKind.INT and name.text.isdigit():
                    self.advance()
                    node = ast.TupleAccess(node, int(name.text), span=node.span | name.span)
                elif name.kind in (TokenKind.IDENT, TokenKind.KEYWORD):
                    self.advance()
                    node = ast.FieldAccess(node, name.text, tok.text == "->", span=node.span | name.span)
                else:
                    self.syntax_error(expecting=("identifier",))
            elif tok.is_op("["):
                self.advance()
                index = self.parse_expr()
                end = self.expect_op("]", ",").span
                node = ast.Index(node, index, span=node.span | end)
            elif tok.is_op("++", "--"):
                self.check_incdec(tok, node)
                self.advance()
                node = ast.Unary(tok.text, node, postfix=True, span=node.span | tok.span)
            else:
                return node

    def parse_args(self, close: str) -> tuple[list[ast.Expr], Span]:
        """Comma-separated expressions up to `close`, which is consumed; returns them and its span."""
        args: list[ast.Expr] = []
        if not self.at_op(close):
            args.append(self.parse_expr())
            while self.accept_op(","):
                args.append(self.parse_expr())
        return args, self.expect_op(close, ",").span

    def parse_primary(self) -> ast.Expr:
        tok = self.peek()
        kind = tok.kind
        handler = _PRIMARY.get(kind)
        if handler is not None:
            self.advance()
            return handler(self, tok)
        if kind is TokenKind.KEYWORD:
            if tok.text in ("true", "false"):
                self.advance()
                return ast.Bool(tok.text == "true", span=tok.span)
            if tok.text == "sizeof":
                return self.parse_sizeof()
            if tok.text == "offsetof":
                return self.parse_offsetof()
        if tok.is_op("("):
            return self.parse_paren()
        self.syntax_error()

    def parse_ident(self, tok: Token) -> ast.Expr:
        name = tok.text
        if self.at_op("("):
            self.advance()
            args, end = self.parse_args(")")
            if not is_function(name):
                hint: str | None
                if name in BUILTINS:
                    hint = f"'{name}' is a builtin variable: use it without parentheses"
                else:
                    hint = did_you_mean(name, FUNCTIONS)
                self.sink.add(error(f"unknown function '{name}'", tok.span, hint))
            return ast.Call(name, tuple(args), span=tok.span | end)
        if is_builtin(name):
            return ast.Builtin(name, span=tok.span)
        return ast.Identifier(name, span=tok.span)

    def parse_map(self, tok: Token) -> ast.Expr:
        if self.at_op("["):
            self.advance()
            keys, end = self.parse_args("]")
            if not keys:
                self.fail("a map key cannot be empty: write @name, or @name[key]", tok.span | end)
            return ast.Map(tok.str_value, tuple(keys), span=tok.span | end)
        return ast.Map(tok.str_value, span=tok.span)

    def parse_paren(self) -> ast.Expr:
        start = self.advance().span
        first = self.parse_expr()
        if self.at_op(","):
            elems = [first]
            while self.accept_op(","):
                elems.append(self.parse_expr())
            end = self.expect_op(")", ",").span
            return ast.Tuple(tuple(elems), span=start | end)
        self.expect_op(")")
        return first

    def parse_type_or_expr(self) -> ast.TypeName | ast.Expr:
        """The argument of sizeof/offsetof. A lone name is an expression (an enum constant or a
        typedef, told apart once types are known); a name with ``*`` is a pointer type."""
        if self.starts_type():
            return self.parse_type()
        if self.peek().kind is TokenKind.IDENT and self.peek(1).is_op("*"):
            i = 1
            while self.peek(i).is_op("*"):
                i += 1
            if self.peek(i).is_op(")", ","):
                return self.parse_type()
        return self.parse_expr()

    def parse_sizeof(self) -> ast.Expr:
        start = self.advance().span
        self.expect_op("(")
        arg = self.parse_type_or_expr()
        end = self.expect_op(")").span
        return ast.Sizeof(arg, span=start | end)

    def parse_offsetof(self) -> ast.Expr:
        start = self.advance().span
        self.expect_op("(")
        arg = self.parse_type_or_expr()
        self.expect_op(",")
        fields = [self.parse_field_name()]
        while self.accept_op("."):
            fields.append(self.parse_field_name())
        end = self.expect_op(")", ".").span
        return ast.Offsetof(arg, tuple(fields), span=start | end)

    def parse_field_name(self) -> str:
        tok = self.peek()
        if tok.kind not in (TokenKind.IDENT, TokenKind.KEYWORD):
            self.syntax_error(expecting=("identifier",))
        self.advance()
        return tok.text


def _int(p: Parser, tok: Token) -> ast.Expr:
    return ast.Int(tok.int_value, span=tok.span)


def _str(p: Parser, tok: Token) -> ast.Expr:
    return ast.Str(tok.bytes_value, span=tok.span)


_PRIMARY: dict[TokenKind, Callable[[Parser, Token], ast.Expr]] = {
    TokenKind.INT: _int,
    TokenKind.STRING: _str,
    TokenKind.IDENT: Parser.parse_ident,
    TokenKind.VAR: lambda p, t: ast.Var(t.str_value, span=t.span),
    TokenKind.MAP: Parser.parse_map,
    TokenKind.POSITIONAL: lambda p, t: ast.Positional(t.int_value, span=t.span),
    TokenKind.PARAMCOUNT: lambda p, t: ast.PositionalCount(span=t.span),
}


def parse(text: str, name: str = "stdin") -> ast.Program:
    """Parse a script; raises `CompileError` whose diagnostics render like bpftrace's errors."""
    return parse_source(Source(name, text))


def parse_source(source: Source) -> ast.Program:
    """Parse a `Source`; see `parse`."""
    try:
        return Parser(source).parse_program()
    except RecursionError:  # a safety net behind the explicit nesting limit
        raise CompileError([error("the program is nested too deeply to parse", None)]) from None
