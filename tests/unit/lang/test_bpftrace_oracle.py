"""bpftrace itself as the oracle: the sample scripts, syntax error rendering and expression trees.

``bpftrace -d`` parses a script and prints its AST without loading anything; it needs root. These tests
skip when bpftrace is not installed or not runnable (Debian 12 ships 0.17.0, the version compared here).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import CompileError
from bpfkit.lang import ast
from bpfkit.lang.names import BUILTINS, FUNCTIONS, INT_TYPES, KEYWORDS, RECORD_KEYWORDS, TYPE_NAMES
from bpfkit.lang.parser import BINARY_PRECEDENCE, parse
from bpfkit.lang.printer import dump_ast, unparse, unparse_expr

from .helpers import NEWER_THAN_0_17, SAMPLES

GRAMMAR_ERRORS = re.compile(r"syntax error|invalid character|unterminated|invalid escape|end of file during"
                            r"|Invalid probe type|unexpected end of file")


@functools.cache
def bpftrace_unavailable() -> str | None:
    if shutil.which("bpftrace") is None:
        return "bpftrace is not installed"
    if os.geteuid() != 0:
        return "bpftrace -d needs root"
    return None


def run_bpftrace(path: Path) -> str:
    reason = bpftrace_unavailable()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(["bpftrace", "-d", str(path)], capture_output=True, text=True, timeout=60,
                          cwd=path.parent, check=False)
    return proc.stdout + proc.stderr


def parser_dump(output: str) -> str:
    """The "AST after: parser" section of bpftrace -d output, without type annotations."""
    assert "AST after: parser" in output, output
    lines = output.split("AST after: parser\n", 1)[1].split("\n")[1:]  # skip the "-----" rule
    program = lines.index("Program")
    end = lines.index("", program) if "" in lines[program:] else len(lines)
    return "\n".join(line.split(" :: ")[0] for line in lines[:end]) + "\n"


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_bpftrace_accepts_the_samples_it_supports(path: Path) -> None:
    if path.name in NEWER_THAN_0_17:
        pytest.skip("uses syntax newer than bpftrace 0.17")
    output = run_bpftrace(path)
    assert not GRAMMAR_ERRORS.search(output), output


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_bpftrace_reads_unparsed_samples_the_same(path: Path, tmp_path: Path) -> None:
    if path.name in NEWER_THAN_0_17:
        pytest.skip("uses syntax newer than bpftrace 0.17")
    unparsed = tmp_path / path.name
    unparsed.write_text(unparse(parse(path.read_text(), path.name)))
    original, again = run_bpftrace(path), run_bpftrace(unparsed)
    assert not GRAMMAR_ERRORS.search(again), again
    if "AST after: parser" in original:
        # compare the trees; the C preamble is handed to clang as text and may differ in ";"
        tree = parser_dump(original)
        assert parser_dump(again)[parser_dump(again).index("Program"):] == tree[tree.index("Program"):]


ERROR_CASES = [
    'BEGIN { printf("x" }',
    "BEGIN }",
    "BEGIN {\t$x = 1 + +; }",
    "BEGIN { @x[1 = 2; }",
    "kprobe:foo /pid == 1 {}",
    "BEGIN { $x = 1; } END { $y = ; }",
    "BEGIN { /* unterminated",
    "BEGIN { $x = `; }",
]


@pytest.mark.parametrize("text", ERROR_CASES)
def test_syntax_errors_render_like_bpftrace(text: str, tmp_path: Path) -> None:
    script = tmp_path / "err.bt"
    script.write_text(text)
    output = run_bpftrace(script)
    with pytest.raises(CompileError) as info:
        parse(text, str(script))
    first = info.value.diagnostics[0].render()
    theirs = [line for line in output.split("\n") if "RLIMIT_MEMLOCK" not in line and
              "available_filter_functions" not in line]
    start = next(i for i, line in enumerate(theirs) if line.startswith(str(script)))
    assert "\n".join(theirs[start:start + 3]) == first


EXPRESSIONS = [
    "1 + 2 * 3 - 4 / 5 % 6",
    "1 - 2 - 3 << 4 | 5 & 6 ^ 7 || 8 && 9 != 10 >= 11",
    "$1 ? 2 : 3 ? 4 : 5",
    "-$x + (1, \"a\").1 * ~-2 - !(uint16)pid",
    "(1 < 2) == (3 > 4) && $# <= 2",
    "@m[pid, comm] + @n + @[1]",
    "(int8)(uint64)-1 + (uint32)arg0",
    "printf(\"%d %s\\n\", 1, comm)",
    "((1, 2), (3, (4, 5))).1.1.0",
    "1_000 + 0x10 + 0755 + 2e3",
    "str(arg0, 16)",
    "arg1 >> 3 << 2 & 0xff",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_expression_trees_match_bpftrace(text: str, tmp_path: Path) -> None:
    script = tmp_path / "expr.bt"
    script.write_text(f"kprobe:vfs_read {{ @ = {text}; }}")
    theirs = parser_dump(run_bpftrace(script))
    ours = dump_ast(parse(script.read_text()))
    assert ours == theirs


# Random expressions from the part of the language bpftrace 0.17 dumps with the same labels: unparsed by
# bpfkit, parsed by both, and the two trees compared.
_names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS | RECORD_KEYWORDS | BUILTINS | FUNCTIONS | TYPE_NAMES
    and not n.startswith(("arg", "sarg")) and n not in {"perf", "raw", "bpftrace", "stack"})
_atoms = st.one_of(
    st.builds(ast.Int, st.integers(-(1 << 31), 1 << 31)),
    st.builds(ast.Str, st.from_regex(r"[a-zA-Z0-9 ]{0,6}", fullmatch=True).map(str.encode)),
    st.builds(ast.Builtin, st.sampled_from(["pid", "tid", "comm", "nsecs", "cpu", "arg0", "arg3", "retval"])),
    st.builds(ast.Var, _names),
    st.builds(ast.Map, st.just("") | _names),
    st.builds(ast.Positional, st.integers(1, 3)),
    st.builds(ast.PositionalCount),
    st.builds(ast.Identifier, _names),
)


def _oracle_compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(ast.Binary, st.sampled_from(sorted(BINARY_PRECEDENCE)), children, children),
        st.builds(ast.Unary, st.sampled_from(["-", "!", "~"]), children),
        st.builds(ast.Ternary, children, children, children),
        st.builds(ast.Tuple, st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(ast.TupleAccess, children, st.integers(0, 3)),
        st.builds(ast.Index, children, children),
        st.builds(ast.Cast, st.builds(ast.TypeName, st.sampled_from(sorted(INT_TYPES - {"bool"}))), children),
        st.builds(ast.Map, _names, st.lists(children, min_size=1, max_size=2).map(tuple)),
        st.builds(ast.Call, st.sampled_from(["str", "count", "hist", "printf", "ksym"]),
                  st.lists(children, max_size=2).map(tuple)),
    )


@pytest.mark.skipif(bpftrace_unavailable() is not None, reason=str(bpftrace_unavailable()))
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.recursive(_atoms, _oracle_compound, max_leaves=10))
def test_random_expressions_parse_like_bpftrace(e: ast.Expr) -> None:
    text = f"kprobe:vfs_read {{ @ = {unparse_expr(e)}; }}\n"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rand.bt"
        script.write_text(text)
        output = run_bpftrace(script)
    if "AST after: parser" not in output:  # bpftrace refuses it (e.g. "(a * 1)" starts a pointer cast)
        with pytest.raises(CompileError) as info:
            parse(text, str(script))
        theirs = [line for line in output.split("\n") if line.startswith(str(script))]
        assert theirs and theirs[0] == info.value.diagnostics[0].render().split("\n")[0], text
        return
    assert dump_ast(parse(text)) == parser_dump(output), text
