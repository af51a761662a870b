"""The lexer: tokens and spans, literals, the probe header, predicates versus division, errors."""

from __future__ import annotations

import pytest

from bpfkit.lang.lexer import Token, TokenKind, tokenize
from bpfkit.lang.source import Source

K = TokenKind


def lex(text: str) -> list[Token]:
    tokens, diags = tokenize(Source("t.bt", text))
    assert diags == [], [str(d) for d in diags]
    return tokens[:-1]


def kinds(text: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.text) for t in lex(text)]


def body(text: str) -> list[Token]:
    """Tokens of `text` lexed inside an action block."""
    return lex("BEGIN {" + text + "}")[2:-1]


def lex_errors(text: str) -> list[str]:
    return [str(d) for d in tokenize(Source("t.bt", text))[1]]


def test_simple_probe_tokens_and_spans() -> None:
    tokens = lex("BEGIN { printf(\"hi\\n\"); }")
    assert [(t.kind, t.text) for t in tokens] == [
        (K.ATTACH, "BEGIN"), (K.OP, "{"), (K.IDENT, "printf"), (K.OP, "("), (K.STRING, '"hi\\n"'),
        (K.OP, ")"), (K.OP, ";"), (K.OP, "}"),
    ]
    s = tokens[2].span
    assert (s.start, s.end, s.line, s.column, s.end_column) == (8, 14, 1, 9, 15)
    assert tokens[4].value == b"hi\n"
    eof = tokenize(Source("t", "BEGIN {}"))[0][-1]
    assert eof.kind is K.EOF and eof.span.start == 8


@pytest.mark.parametrize("ap", [
    "tracepoint:syscalls:sys_enter_openat", "uprobe:/bin/bash:readline", "u:libc:malloc",
    "kprobe:vfs_*", "profile:hz:99", "interval:s:1", "usdt:/path/to/bin:provider:probe", "BEGIN",
    "END", "begin", "end", "kprobe:vfs_re?d", "kprobe:do_sys_open+0x10", "hardware:cache-misses:1e6",
    'uprobe:"/my dir/app":"ns::f(int, char*)"', "iter:task_file:/sys/fs/bpf/files",
    "watchpoint:0x10000000:8:rw", "uprobe:$1:main", "uprobe:./a.out:main", "kprobe:a[1]",
])
def test_attach_point_is_one_token(ap: str) -> None:
    tokens = lex(ap + " { }")
    assert [(t.kind, t.text) for t in tokens] == [(K.ATTACH, ap), (K.OP, "{"), (K.OP, "}")]
    assert tokens[0].value == ap


def test_attach_point_lists_and_spacing() -> None:
    assert kinds("k:a,k:b,\n  t:x:y{}") == [
        (K.ATTACH, "k:a"), (K.OP, ","), (K.ATTACH, "k:b"), (K.OP, ","), (K.ATTACH, "t:x:y"),
        (K.OP, "{"), (K.OP, "}"),
    ]
    # bpftrace accepts blanks around the colons
    assert kinds("kprobe : foo {}")[0] == (K.ATTACH, "kprobe : foo")
    assert kinds("kprobe: foo {}")[0] == (K.ATTACH, "kprobe: foo")


def test_predicate_slash_versus_division() -> None:
    toks = kinds("BEGIN /4 / 2/ { $x = 6 / 3; }")
    assert toks[:6] == [(K.ATTACH, "BEGIN"), (K.OP, "/"), (K.INT, "4"), (K.OP, "/"), (K.INT, "2"),
                        (K.ENDPRED, "/")]
    assert (K.OP, "/") in toks[6:]
    # no space needed before the predicate of a provider without colon parts
    assert kinds("BEGIN/1/{}")[:4] == [(K.ATTACH, "BEGIN"), (K.OP, "/"), (K.INT, "1"), (K.ENDPRED, "/")]
    # the end predicate may be followed by a comment and a newline before the brace
    assert kinds("k:f /pid/ // c\n{}")[3] == (K.ENDPRED, "/")
    # inside a path the slash is part of the attach point, as in bpftrace
    assert kinds("kprobe:f/pid/ {}")[0] == (K.ATTACH, "kprobe:f/pid/")


def test_probe_after_body_is_header_again() -> None:
    toks = kinds("BEGIN { @x = 1 / 2 } kprobe:f /@x/ { }")
    assert (K.ATTACH, "kprobe:f") in toks
    assert toks.count((K.ENDPRED, "/")) == 1


def test_preamble_tokens() -> None:
    text = ("#include <linux/sched.h>\n#define X \\\n  1\nstruct S { int a; struct { int b; } c; };\n"
            "union U { int x; }\nconfig = { a = 1 }\nBEGIN {}")
    toks = lex(text)
    assert [t.kind for t in toks[:4]] == [K.PREPROC, K.PREPROC, K.CDEF, K.CDEF]
    assert toks[0].value == "#include <linux/sched.h>"
    assert toks[1].value == "#define X \\\n  1"
    assert toks[2].value == "struct S { int a; struct { int b; } c; }"
    assert toks[3].value == "union U { int x; }"
    assert [(t.kind, t.text) for t in toks[4:11]] == [
        (K.KEYWORD, "config"), (K.OP, "="), (K.OP, "{"), (K.IDENT, "a"), (K.OP, "="), (K.INT, "1"),
        (K.OP, "}"),
    ]
    assert toks[11].kind is K.ATTACH


def test_struct_keyword_in_code_is_a_keyword() -> None:
    assert [(t.kind, t.text) for t in body("(struct task_struct *)x")] == [
        (K.OP, "("), (K.KEYWORD, "struct"), (K.IDENT, "task_struct"), (K.OP, "*"), (K.OP, ")"),
        (K.IDENT, "x"),
    ]


def test_all_operators() -> None:
    ops = ("<<= >>= -> ++ -- << >> <= >= == != && || += -= *= /= %= &= |= ^= .. "
           "+ - * / % & | ^ ~ ! < > = . ? : , ; ( ) [ ]").split()
    toks = body(" ".join(ops))
    assert [(t.kind, t.text) for t in toks] == [(K.OP, o) for o in ops]
    # longest match without spaces
    assert [t.text for t in body("a<<=b>>c->d")] == ["a", "<<=", "b", ">>", "c", "->", "d"]


def test_variables_maps_positionals() -> None:
    toks = body("$x $_y1 @ @m @m_2 $1 $12 $#")
    assert [(t.kind, t.value) for t in toks] == [
        (K.VAR, "x"), (K.VAR, "_y1"), (K.MAP, ""), (K.MAP, "m"), (K.MAP, "m_2"), (K.POSITIONAL, 1),
        (K.POSITIONAL, 12), (K.PARAMCOUNT, "$#"),
    ]


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("1234", 1234), ("1_000", 1000), ("1__0", 10), ("0x10", 16), ("0XfF", 255),
    ("0x_f", None), ("0755", 0o755), ("0_7", 7), ("2e3", 2000), ("5E0", 5), ("1_0e2", 1000),
    ("42u", 42), ("42UL", 42), ("42ll", 42), ("42ull", 42), ("42lu", 42), ("0x10ul", 16),
    ("18446744073709551615", (1 << 64) - 1), ("0xffffffffffffffff", (1 << 64) - 1), ("'a'", 97),
    ("'\\n'", 10), ("'\\x41'", 65), ("'\\0'", 0),
])
def test_integer_literals(text: str, value: int | None) -> None:
    toks = body(text) if value is not None else None
    if value is None:  # "0x_f" is 0 then an invalid suffix
        assert lex_errors(f"BEGIN {{ {text} }}")
        return
    assert toks is not None and len(toks) == 1 and toks[0].kind is K.INT and toks[0].value == value


@pytest.mark.parametrize(("text", "message"), [
    ("08", "invalid digit '8' in octal literal"),
    ("1k", "invalid suffix 'k' on integer literal"),
    ("1ns", "invalid suffix 'ns' on integer literal"),
    ("0b101", "invalid suffix 'b101' on integer literal"),
    ("1e", "invalid suffix 'e' on integer literal"),
    ("18446744073709551616", "integer literal is too large for 64 bits"),
    ("1e20", "integer literal is too large for 64 bits"),
    ("1e999999", "integer literal is too large for 64 bits"),
    ("$0", "positional parameters start at $1, not $0"),
    ("`", "invalid character '`'"),
    ("$", "invalid character '$'"),
    ("#", "invalid character '#'"),
    ("''", "character literal must hold exactly one character"),
    ("'ab'", "character literal must hold exactly one character"),
    ("'a", "unterminated character literal"),
])
def test_literal_errors(text: str, message: str) -> None:
    errors = lex_errors(f"BEGIN {{ {text} }}")
    assert len(errors) == 1 and f"ERROR: {message}" in errors[0]


def test_string_escapes() -> None:
    (tok,) = body(r'"a\tb\nc\"d\\e\x41\x4\101\0\18\r\'"')
    assert tok.value == b'a\tb\nc"d\\eA\x04A\x00\x018\r\''
    (tok,) = body('"caf\u00e9"')
    assert tok.value == "café".encode()


def test_string_errors_render_with_location() -> None:
    assert lex_errors('BEGIN { "a\\qb" }') == [
        "t.bt:1:11-13: ERROR: invalid escape character '\\q'\n"
        'BEGIN { "a\\qb" }\n'
        "          ~~"
    ]
    assert lex_errors('BEGIN { "a\\x" }')[0].startswith("t.bt:1:11-13: ERROR: \\x used with no following hex")
    assert lex_errors('BEGIN { "\\777" }')[0].split("\n")[0].endswith("octal escape sequence out of range")
    unterminated = lex_errors('BEGIN { printf("a\nb"); }')
    assert unterminated[0].startswith("t.bt:1:16-18: ERROR: unterminated string")
    assert lex_errors('k:"abc {}')[0].startswith("t.bt:1:3-10: ERROR: unterminated string")


def test_comments() -> None:
    assert kinds("// c1\nBEGIN /* c2 */ { /* multi\nline */ 1 // c3\n}") == [
        (K.ATTACH, "BEGIN"), (K.OP, "{"), (K.INT, "1"), (K.OP, "}"),
    ]
    assert lex_errors("BEGIN { /* unterminated") == [
        "t.bt:1:9-24: ERROR: end of file during comment\nBEGIN { /* unterminated\n        ~~~~~~~~~~~~~~~"
    ]


def test_keywords_and_identifiers() -> None:
    toks = body("if else while for unroll return break continue let sizeof offsetof true false ifx _a")
    assert [t.kind for t in toks[:-2]] == [K.KEYWORD] * 13
    assert [t.kind for t in toks[-2:]] == [K.IDENT, K.IDENT]


def test_range_and_tuple_index_lex_without_floats() -> None:
    assert [t.text for t in body("0..10")] == ["0", "..", "10"]
    assert [t.text for t in body("$t.0.1")] == ["$t", ".", "0", ".", "1"]


def test_token_describe() -> None:
    toks = body("1 x $v @m \"s\" $1 $# if ;")
    assert [t.describe() for t in toks] == [
        "integer", "identifier", "variable", "map", "string", "positional parameter", "$#", "if", ";",
    ]
    assert tokenize(Source("t", ""))[0][0].describe() == "end of file"
