"""Fuzzing the front end: on any input only CompileError may escape, and whatever parses round-trips."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import CompileError
from bpfkit.lang.parser import parse
from bpfkit.lang.printer import dump_ast, unparse

from .helpers import SAMPLES

SAMPLE_TEXTS = [p.read_text() for p in SAMPLES]
VOCABULARY = [
    "BEGIN", "END", "kprobe:f", "u:/bin/sh:main", "t:a:b", "i:s:1", "{", "}", "(", ")", "[", "]", "/", ",",
    ";", ":", "?", ".", "->", "..", "=", "+=", "<<=", "++", "--", "-", "!", "~", "*", "&", "&&", "||",
    "==", "<", ">>", "%", "^", "|", "$x", "$1", "$#", "@", "@m", "pid", "comm", "arg0", "args", "x",
    "printf", "count", "sizeof", "offsetof", "if", "else", "while", "for", "unroll", "let", "return",
    "break", "continue", "struct", "struct s", "uint8", "string", "config", "true", "0", "0x1f", "1e3",
    "'c'", '"s\\n"', '"', "'", "#include <a.h>\n", "/*", "*/", "//", "\n", " ", "\t", "`", "\\", "$",
]


def check(text: str) -> None:
    try:
        prog = parse(text, "fuzz.bt")
    except CompileError as e:
        assert e.diagnostics
        str(e)  # rendering must not fail either
        return
    again = parse(unparse(prog), "unparsed.bt")
    assert again == prog
    dump_ast(prog)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60))
def test_token_soup(words: list[str]) -> None:
    check(" ".join(words))
    check("".join(words))


@st.composite
def mutated_samples(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 20)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(VOCABULARY)) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(st.text(max_size=4)) + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_samples(text: str) -> None:
    check(text)
