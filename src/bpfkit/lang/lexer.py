"""A hand-written lexer for bpftrace scripts.

The language has two lexical regions. Inside action blocks and predicates it is C-like: identifiers,
``$vars``, ``@maps``, integers, strings and C operators. At the top level the probe header is special:
``uprobe:/bin/bash:readline`` or ``kprobe:vfs_*`` is one *attach point* token (paths, wildcards and quoted
function names included), and a ``/`` after the attach points opens a predicate, which the next ``/``
followed by ``{`` closes (so ``BEGIN /4 / 2/ {}`` divides inside its predicate). The lexer tracks which
region it is in by brace depth, as bpftrace's flex lexer does with start conditions.

The preamble (``#include`` lines, C ``struct``/``union``/``enum`` definitions and ``config = {...}``)
is recognised at the top level too. Errors are collected as diagnostics; lexing goes on after them so
that the parser can report the syntax error they cause, as bpftrace does.
"""

from __future__ import annotations

import enum

from bpfkit._records import field, record
from bpfkit.lang.diagnostics import Diagnostic, error
from bpfkit.lang.names import KEYWORDS, RECORD_KEYWORDS
from bpfkit.lang.source import Source, Span

U64_MAX = (1 << 64) - 1


class TokenKind(enum.Enum):
    """Token kinds; the value is how a syntax error names the token."""

    EOF = "end of file"
    INT = "integer"
    STRING = "string"
    IDENT = "identifier"
    VAR = "variable"
    MAP = "map"
    POSITIONAL = "positional parameter"
    PARAMCOUNT = "$#"
    KEYWORD = "keyword"
    OP = "operator"
    ATTACH = "attach point"
    ENDPRED = "end predicate"
    PREPROC = "preprocessor directive"
    CDEF = "struct definition"


@record
class Token:
    """One token: kind, exact source text, span and decoded value.

    `value` is the int of an INT (or character) literal, the bytes of a STRING, the name without its sigil
    of a VAR or MAP, the index of a POSITIONAL, and the text otherwise.
    """

    kind: TokenKind
    text: str
    span: Span = field(compare=False)
    value: int | bytes | str | None = None

    @property
    def int_value(self) -> int:
        """The value of an INT or POSITIONAL token."""
        return self.value if isinstance(self.value, int) else 0

    @property
    def bytes_value(self) -> bytes:
        """The decoded bytes of a STRING token."""
        return self.value if isinstance(self.value, bytes) else b""

    @property
    def str_value(self) -> str:
        """The name of a VAR or MAP token, or the text of other tokens."""
        return self.value if isinstance(self.value, str) else self.text

    def is_op(self, *ops: str) -> bool:
        return self.kind is TokenKind.OP and self.text in ops

    def is_keyword(self, *words: str) -> bool:
        return self.kind is TokenKind.KEYWORD and self.text in words

    def describe(self) -> str:
        """The token as a syntax error names it: ``}`` for punctuation, ``integer`` for a literal."""
        if self.kind in (TokenKind.OP, TokenKind.KEYWORD, TokenKind.PARAMCOUNT):
            return self.text
        return str(self.kind.value)


# Longest first, so that "<<=" wins over "<<" and "<".
_OPERATORS = (
    "<<=", ">>=",
    "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "..",
    "+", "-", "*", "/", "%", "&", "|", "^", "~", "!", "<", ">", "=", ".", "?", ":", ",", ";",
    "(", ")", "[", "]", "{", "}",
)
_OPS_BY_CHAR: dict[str, tuple[str, ...]] = {}
for _op in _OPERATORS:
    _OPS_BY_CHAR.setdefault(_op[0], ())
    _OPS_BY_CHAR[_op[0]] += (_op,)

_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGITS = frozenset("0123456789")
_IDENT_CHARS = _IDENT_START | _DIGITS
_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")
_HSPACE = frozenset(" \t")
_SPACE = frozenset(" \t\r\n\f\v")
# Characters an attach point may contain after its provider (quoted parts may contain anything).
_AP_CHARS = _IDENT_CHARS | frozenset("-./*?+[]")
_INT_SUFFIXES = frozenset({"u", "l", "ul", "lu", "ll", "ull", "llu"})
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, '"': 34, "\\": 92, "'": 39, "a": 7, "b": 8, "f": 12, "v": 11}


class _Mode(enum.Enum):
    TOP = enum.auto()       # between probes: attach points, preamble
    HEADER = enum.auto()    # after an attach point or a comma: attach points, "/", "{"
    PRED = enum.auto()      # inside /predicate/
    CONFIG = enum.auto()    # after "config", before its "{"
    BODY = enum.auto()      # inside braces


class Lexer:
    """Turns a `Source` into tokens; see `tokenize`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.text = source.text
        self.pos = 0
        self.tokens: list[Token] = []
        self.diagnostics: list[Diagnostic] = []
        self.mode = _Mode.TOP
        self.depth = 0

    # -- helpers -----------------------------------------------------------------------------------
    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def _span(self, start: int, end: int | None = None) -> Span:
        return Span(self.source, start, self.pos if end is None else end)

    def _emit(self, kind: TokenKind, start: int, value: int | bytes | str | None = None) -> Token:
        tok = Token(kind, self.text[start:self.pos], self._span(start), value)
        self.tokens.append(tok)
        return tok

    def _error(self, message: str, start: int, end: int | None = None) -> None:
        self.diagnostics.append(error(message, self._span(start, end)))

    def _skip_trivia(self) -> None:
        """Skip whitespace and comments."""
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in _SPACE:
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    self._error("end of file during comment", self.pos, n)
                    self.pos = n
                else:
                    self.pos = end + 2
            else:
                return

    def _next_significant(self, pos: int) -> int:
        """Index of the first non-trivia character at or after `pos` (does not move the lexer)."""
        saved, saved_diags = self.pos, len(self.diagnostics)
        self.pos = pos
        self._skip_trivia()
        found = self.pos
        self.pos = saved
        del self.diagnostics[saved_diags:]
        return found

    # -- driver ------------------------------------------------------------------------------------
    def run(self) -> list[Token]:
        text, n = self.text, len(self.text)
        while True:
            self._skip_trivia()
            if self.pos >= n:
                break
            c = text[self.pos]
            if self.mode in (_Mode.TOP, _Mode.HEADER):
                self._lex_header(c)
            else:
                self._lex_code(c)
        self.tokens.append(Token(TokenKind.EOF, "", self._span(n, n)))
        return self.tokens

    def _lex_header(self, c: str) -> None:
        start = self.pos
        if self.mode is _Mode.TOP:
            if c == "#":
                self._lex_preproc()
                return
            if c in _IDENT_START and self._lex_preamble_word():
                return
        if c in _IDENT_START:
            self._lex_attach_point()
            self.mode = _Mode.HEADER
        elif c == "/":
            self.pos += 1
            self._emit(TokenKind.OP, start)
            self.mode = _Mode.PRED
        elif c == ",":
            self.pos += 1
            self._emit(TokenKind.OP, start)
            self.mode = _Mode.HEADER
        else:
            self._lex_code(c)

    def _lex_preproc(self) -> None:
        start = self.pos
        text, n = self.text, len(self.text)
        while self.pos < n:
            end = text.find("\n", self.pos)
            if end < 0:
                self.pos = n
                break
            self.pos = end + 1
            if not text[start:end].rstrip("\r").endswith("\\"):
                self.pos = end
                break
        self._emit(TokenKind.PREPROC, start, text[start:self.pos].rstrip())

    def _lex_preamble_word(self) -> bool:
        """Lex ``config`` or a C struct/union/enum definition at the top level; False if neither."""
        start = self.pos
        end = self._ident_end(start)
        word = self.text[start:end]
        after = self._next_significant(end)
        if word == "config" and self.text.startswith("=", after) and not self.text.startswith("==", after):
            self.pos = end
            self._emit(TokenKind.KEYWORD, start, word)
            self.mode = _Mode.CONFIG
            return True
        if word not in RECORD_KEYWORDS or after >= len(self.text) or self.text[after] not in _IDENT_START:
            return False
        brace = self._next_significant(self._ident_end(after))
        if not self.text.startswith("{", brace):
            return False
        depth, i, n = 0, brace, len(self.text)
        while i < n:
            ch = self.text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if i >= n:
            self.pos = n
            self._error(f"unterminated {word} definition", start, n)
            return True
        self.pos = i + 1
        body = self.text[start:self.pos]
        semi = self._next_significant(self.pos)
        if self.text.startswith(";", semi):
            self.pos = semi + 1
        self._emit(TokenKind.CDEF, start, body)
        return True

    def _ident_end(self, i: int) -> int:
        text, n = self.text, len(self.text)
        while i < n and text[i] in _IDENT_CHARS:
            i += 1
        return i

    def _lex_attach_point(self) -> None:
        """One attach point: ``provider[:part...]``, parts made of path/wildcard chars or quotes."""
        start = self.pos
        text, n = self.text, len(self.text)
        self.pos = self._ident_end(start)
        i = self.pos
        while i < n and text[i] in _HSPACE:
            i += 1
        if i < n and text[i] == ":":
            self.pos = i
            while self.pos < n:
                c = text[self.pos]
                if c == ":":
                    self.pos += 1
                    while self.pos < n and text[self.pos] in _HSPACE:
                        self.pos += 1
                elif c in _AP_CHARS:
                    self.pos += 1
                elif c == '"':
                    if not self._skip_quoted():
                        break
                elif c == "$" and self.pos + 1 < n and text[self.pos + 1] in _DIGITS:
                    self.pos += 2
                    while self.pos < n and text[self.pos] in _DIGITS:
                        self.pos += 1
                elif c in _HSPACE:
                    j = self.pos
                    while j < n and text[j] in _HSPACE:
                        j += 1
                    if j < n and text[j] == ":":
                        self.pos = j
                    else:
                        break
                else:
                    break
        end = self.pos
        while end > start and text[end - 1] in _HSPACE:
            end -= 1
        self.pos = end
        self._emit(TokenKind.ATTACH, start, text[start:end])

    def _skip_quoted(self) -> bool:
        """Skip a double-quoted attach point part; False (with a diagnostic) if unterminated."""
        start = self.pos
        text, n = self.text, len(self.text)
        i = start + 1
        while i < n and text[i] != '"' and text[i] != "\n":
            i += 2 if text[i] == "\\" and i + 1 < n and text[i + 1] != "\n" else 1
        if i >= n or text[i] != '"':
            self._error("unterminated string", start, i)
            self.pos = i
            return False
        self.pos = i + 1
        return True

    # -- code ----------------------------------------------------------------------------------------
    def _lex_code(self, c: str) -> None:
        start = self.pos
        if c in _IDENT_START:
            self.pos = self._ident_end(start)
            word = self.text[start:self.pos]
            kind = TokenKind.KEYWORD if word in KEYWORDS or word in RECORD_KEYWORDS else TokenKind.IDENT
            self._emit(kind, start, word)
        elif c in _DIGITS:
            self._lex_number()
        elif c == '"':
            self._lex_string()
        elif c == "'":
            self._lex_char()
        elif c == "$":
            self._lex_dollar()
        elif c == "@":
            self.pos = self._ident_end(start + 1) if self._peek(1) in _IDENT_START else start + 1
            self._emit(TokenKind.MAP, start, self.text[start + 1:self.pos])
        elif c in _OPS_BY_CHAR:
            self._lex_operator(c)
        else:
            self.pos += 1
            self._error(f"invalid character '{c}'", start)

    def _lex_operator(self, c: str) -> None:
        start = self.pos
        op = next(o for o in _OPS_BY_CHAR[c] if self.text.startswith(o, start))
        if op == "/" and self.mode is _Mode.PRED:
            after = self._next_significant(start + 1)
            if self.text.startswith("{", after):
                self.pos += 1
                self._emit(TokenKind.ENDPRED, start)
                self.mode = _Mode.HEADER
                return
        self.pos += len(op)
        self._emit(TokenKind.OP, start)
        if op == "{":
            self.depth += 1
            self.mode = _Mode.BODY
        elif op == "}" and self.mode is _Mode.BODY:
            self.depth -= 1
            if self.depth == 0:
                self.mode = _Mode.TOP

    def _lex_dollar(self) -> None:
        start = self.pos
        nxt = self._peek(1)
        if nxt in _IDENT_START:
            self.pos = self._ident_end(start + 1)
            self._emit(TokenKind.VAR, start, self.text[start + 1:self.pos])
        elif nxt in _DIGITS:
            self.pos += 1
            while self._peek() in _DIGITS:
                self.pos += 1
            index = int(self.text[start + 1:self.pos])
            if index == 0:
                self._error("positional parameters start at $1, not $0", start)
            self._emit(TokenKind.POSITIONAL, start, index)
        elif nxt == "#":
            self.pos += 2
            self._emit(TokenKind.PARAMCOUNT, start, "$#")
        else:
            self.pos += 1
            self._error("invalid character '$'", start)

    def _lex_number(self) -> None:
        start = self.pos
        text = self.text
        ok = True
        if text.startswith(("0x", "0X"), start) and self._peek(2) in _HEX:
            self.pos += 2
            digits_start = self.pos
            self._digits(_HEX)
            value = int(text[digits_start:self.pos].replace("_", ""), 16)
        else:
            self._digits(_DIGITS)
            digits = text[start:self.pos].replace("_", "")
            if len(digits) > 1 and digits[0] == "0":
                bad = next((d for d in digits if d not in _OCT), None)
                if bad is not None:
                    ok = False
                    self._error(f"invalid digit '{bad}' in octal literal", start)
                value = int(digits, 8) if ok else 0
            else:
                value = int(digits)
                if self._peek() in "eE" and self._peek(1) in _DIGITS:
                    self.pos += 1
                    exp_start = self.pos
                    while self._peek() in _DIGITS:
                        self.pos += 1
                    exponent = int(text[exp_start:self.pos])
                    value = value * 10 ** exponent if exponent < 40 else U64_MAX + 1
        suffix_start = self.pos
        self.pos = self._ident_end(self.pos)
        suffix = text[suffix_start:self.pos]
        if suffix and suffix.lower() not in _INT_SUFFIXES:
            ok = False
            self._error(f"invalid suffix '{suffix}' on integer literal", start)
        if ok and value > U64_MAX:
            ok = False
            self._error("integer literal is too large for 64 bits", start)
        self._emit(TokenKind.INT, start, value if ok else 0)

    def _digits(self, allowed: frozenset[str]) -> None:
        """Skip digits with "_" separators between them (a trailing "_" is left for the suffix)."""
        text, n = self.text, len(self.text)
        while True:
            i = self.pos
            while i < n and text[i] == "_":
                i += 1
            if i < n and text[i] in allowed:
                self.pos = i + 1
            else:
                return

    def _lex_escape(self, out: bytearray) -> None:
        """Decode one escape sequence at self.pos (which is at the backslash)."""
        start = self.pos
        c = self._peek(1)
        if c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
            self.pos += 2
        elif c in _OCT and c != "":
            self.pos += 1
            digits_start = self.pos
            while self.pos - digits_start < 3 and self._peek() in _OCT and self._peek() != "":
                self.pos += 1
            value = int(self.text[digits_start:self.pos], 8)
            if value > 255:
                self._error("octal escape sequence out of range", start)
            out.append(value & 0xFF)
        elif c == "x":
            self.pos += 2
            digits_start = self.pos
            while self.pos - digits_start < 2 and self._peek() in _HEX and self._peek() != "":
                self.pos += 1
            if self.pos == digits_start:
                self._error("\\x used with no following hex digits", start)
            else:
                out.append(int(self.text[digits_start:self.pos], 16))
        else:
            self.pos += 2 if c and c != "\n" else 1
            self._error(f"invalid escape character '\\{c.strip()}'", start)

    def _lex_string(self) -> None:
        start = self.pos
        self.pos += 1
        out = bytearray()
        text, n = self.text, len(self.text)
        while True:
            if self.pos >= n or text[self.pos] == "\n":
                self._error("unterminated string", start)
                break
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\":
                self._lex_escape(out)
            else:
                run_end = self.pos + 1
                while run_end < n and text[run_end] not in '"\\\n':
                    run_end += 1
                out += text[self.pos:run_end].encode()
                self.pos = run_end
        self._emit(TokenKind.STRING, start, bytes(out))

    def _lex_char(self) -> None:
        start = self.pos
        self.pos += 1
        out = bytearray()
        if self._peek() == "\\":
            self._lex_escape(out)
        elif self._peek() not in ("", "'", "\n"):
            out += self._peek().encode()
            self.pos += 1
        if self._peek() != "'":
            while self.pos < len(self.text) and self._peek() not in "'\n":
                self.pos += 1
            if self._peek() == "'":
                self.pos += 1
                self._error("character literal must hold exactly one character", start)
            else:
                self._error("unterminated character literal", start)
            self._emit(TokenKind.INT, start, 0)
            return
        self.pos += 1
        if len(out) != 1:
            self._error("character literal must hold exactly one character", start)
            self._emit(TokenKind.INT, start, 0)
            return
        self._emit(TokenKind.INT, start, out[0])


def tokenize(source: Source) -> tuple[list[Token], list[Diagnostic]]:
    """All tokens of `source` (ending with EOF) and the lexical errors found on the way."""
    lexer = Lexer(source)
    tokens = lexer.run()
    return tokens, lexer.diagnostics
