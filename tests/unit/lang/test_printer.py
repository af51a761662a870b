"""dump_ast output, and unparse: parse(unparse(tree)) == tree for sample scripts and random trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.lang import ast
from bpfkit.lang.names import (
    BUILTINS,
    FUNCTIONS,
    INT_TYPES,
    KEYWORDS,
    RECORD_KEYWORDS,
    SIZED_TYPES,
    TYPE_NAMES,
)
from bpfkit.lang.parser import parse
from bpfkit.lang.printer import dump_ast, escape_bytes, unparse, unparse_expr

from .helpers import SAMPLES, expr


def test_dump_ast() -> None:
    prog = parse('#include <linux/sched.h>\nstruct S { int a; }\nconfig = { max_map_keys = 2 }\n'
                 'k:vfs_read, t:sched:sched_switch /pid > 1/ {\n'
                 '  @x[comm] = count(); $t = (1, "a\\n"); if ($t.0) { @y++ } else { --$z; }\n'
                 '  $p = (struct task_struct *)curtask; $q = $p->pid + *$p.x[2];\n'
                 '  let $v: uint8 = sizeof(int8) ? -1 : 2; for ($kv : @x) { break } return\n}')
    assert dump_ast(prog) == """\
#include <linux/sched.h>
struct S { int a; };

Program
 config
  max_map_keys
   int: 2
 kprobe:vfs_read
 tracepoint:sched:sched_switch
  pred
   >
    builtin: pid
    int: 1
  =
   map: @x
    builtin: comm
   call: count
  =
   variable: $t
   tuple:
    int: 1
    string: a\\n
  if
   .
    variable: $t
    0
   then
    ++ (post)
     map: @y
   else
    -- (pre)
     variable: $z
  =
   variable: $p
   (struct task_struct*)
    builtin: curtask
  =
   variable: $q
   +
    ->
     variable: $p
     pid
    dereference
     []
      .
       variable: $p
       x
      int: 2
  let
   variable: $v
   type: uint8
   ?:
    sizeof
     type: int8
    int: -1
    int: 2
  for
   variable: $kv
   map: @x
   block
    break
  return
"""


def test_dump_matches_bpftrace_labels_for_expressions() -> None:
    # Captured from `bpftrace -d` 0.17.0 (with the " :: type[...]" suffixes removed).
    prog = parse('BEGIN { @m[pid, "s"] = ($1 + $# * 2 > 1 ? !arg0 : ~(uint8)3); }')
    assert dump_ast(prog) == """\
Program
 BEGIN
  =
   map: @m
    builtin: pid
    string: s
   ?:
    >
     +
      param: $1
      *
       param: $#
       int: 2
     int: 1
    !
     builtin: arg0
    ~
     (uint8)
      int: 3
"""


def test_unparse_example() -> None:
    prog = parse('BEGIN/1/{if($x){@a[1,2]+=-(1)}else if(2){}else{$y=(pid_t)(-1);let $z:string[8];}}')
    assert unparse(prog) == """\
BEGIN /1/ {
  if ($x) {
    @a[1, 2] += -(1);
  } else if (2) {
  } else {
    $y = (pid_t)(-1);
    let $z: string[8];
  }
}
"""


@pytest.mark.parametrize(("value", "text"), [
    (b"plain", "plain"), (b'q"b\\', 'q\\"b\\\\'), (b"\n\t\r", "\\n\\t\\r"),
    (b"\x00\xff\x7f", "\\x00\\xff\\x7f"),
])
def test_escape_bytes(value: bytes, text: str) -> None:
    assert escape_bytes(value) == text
    assert expr(f'"{text}"') == ast.Str(value)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_round_trip(path: Path) -> None:
    prog = parse(path.read_text(), path.name)
    text = unparse(prog)
    again = parse(text, "unparsed")
    assert again == prog
    assert unparse(again) == text
    assert dump_ast(again) == dump_ast(prog)


# -- random trees ----------------------------------------------------------------------------------

_RESERVED = KEYWORDS | RECORD_KEYWORDS | BUILTINS | FUNCTIONS | TYPE_NAMES | {"config"}
names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in _RESERVED and not n.startswith(("arg", "sarg")))
field_names = st.one_of(names, st.sampled_from(sorted(KEYWORDS | BUILTINS)))
type_names = st.one_of(
    st.builds(ast.TypeName, st.sampled_from(sorted(INT_TYPES | SIZED_TYPES)),
              st.none() | st.integers(0, 64), st.integers(0, 2)),
    st.builds(ast.TypeName,
              st.builds(lambda k, n: f"{k} {n}", st.sampled_from(sorted(RECORD_KEYWORDS)), names),
              st.none() | st.integers(0, 64), st.integers(0, 2)),
    st.builds(ast.TypeName, names, st.none(), st.integers(0, 2)),  # typedefs: no arrays, as in bpftrace
)
# sizeof(pid_t) is an identifier until types are known; sizeof(pid_t *) is a type.
sized_types = type_names.filter(lambda t: t.name in TYPE_NAMES or " " in t.name or t.pointer > 0)
atoms = st.one_of(
    st.builds(ast.Int, st.integers(-(1 << 63), (1 << 64) - 1)),
    st.builds(ast.Str, st.binary(max_size=8)),
    st.builds(ast.Bool, st.booleans()),
    st.builds(ast.Builtin, st.sampled_from(sorted(BUILTINS | {"arg0", "sarg3"}))),
    st.builds(ast.Identifier, names),
    st.builds(ast.Var, names),
    st.builds(ast.Map, st.just("") | names),
    st.builds(ast.Positional, st.integers(1, 99)),
    st.builds(ast.PositionalCount),
)
lvalues = st.one_of(st.builds(ast.Var, names), st.builds(ast.Map, names))


def _compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    args = st.lists(children, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.Map, names, st.lists(children, min_size=1, max_size=3).map(tuple)),
        st.builds(ast.Call, st.sampled_from(sorted(FUNCTIONS)), args),
        st.builds(ast.Binary, st.sampled_from(["||", "&&", "|", "^", "&", "==", "!=", "<", "<=", ">", ">=",
                                               "<<", ">>", "+", "-", "*", "/", "%"]), children, children),
        st.builds(ast.Unary, st.sampled_from(["-", "!", "~", "*", "&"]), children),
        st.builds(ast.Unary, st.sampled_from(["++", "--"]), lvalues, st.booleans()),
        st.builds(ast.Ternary, children, children, children),
        st.builds(ast.FieldAccess, children, field_names, st.booleans()),
        st.builds(ast.TupleAccess, children, st.integers(0, 12)),
        st.builds(ast.Index, children, children),
        st.builds(ast.Cast, type_names, children),
        st.builds(ast.Tuple, st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(ast.Sizeof, st.one_of(sized_types, children)),
        st.builds(ast.Offsetof, st.one_of(sized_types, children),
                  st.lists(field_names, min_size=1, max_size=3).map(tuple)),
    )


expressions = st.recursive(atoms, _compound, max_leaves=12)


def _statements(children: st.SearchStrategy[tuple[ast.Stmt, ...]]) -> st.SearchStrategy[tuple[ast.Stmt, ...]]:
    block = children.map(ast.Block)
    stmt = st.one_of(
        st.builds(ast.If, expressions, block, st.none() | block),
        st.builds(ast.If, expressions, block, st.builds(ast.If, expressions, block, st.none() | block)),
        st.builds(ast.While, expressions, block),
        st.builds(ast.Unroll,
                  st.builds(ast.Int, st.integers(0, 100)) | st.builds(ast.Positional, st.integers(1, 9)),
                  block),
        st.builds(ast.For, st.builds(ast.Var, names), st.builds(ast.Map, names), block),
        st.builds(ast.For, st.builds(ast.Var, names), st.builds(ast.Range, expressions, expressions), block),
        block,
    )
    return st.lists(stmt, max_size=3).map(tuple)


simple_statements = st.one_of(
    st.builds(ast.ExprStmt, expressions),
    st.builds(ast.Assign, lvalues, expressions, st.sampled_from([None, "+", "-", "*", "/", "%", "&", "|", "^",
                                                                 "<<", ">>"])),
    st.builds(ast.VarDecl, st.builds(ast.Var, names), st.none() | type_names, st.none() | expressions),
    st.builds(ast.Break), st.builds(ast.Continue), st.builds(ast.Return, st.none() | expressions),
)
statement_lists = st.recursive(st.lists(simple_statements, max_size=4).map(tuple), _statements, max_leaves=8)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expression_round_trip(e: ast.Expr) -> None:
    text = unparse_expr(e)
    assert expr(text) == e, text


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(statement_lists, st.none() | expressions)
def test_random_program_round_trip(stmts: tuple[ast.Stmt, ...], predicate: ast.Expr | None) -> None:
    from bpfkit.lang.probes import parse_attach_point
    from bpfkit.lang.source import Source

    raw = "kprobe:vfs_read"
    point, _ = parse_attach_point(raw, Source("x", raw).span(0, len(raw)))
    assert point is not None
    prog = ast.Program((), (), None, (ast.Probe((point,), predicate, ast.Block(stmts)),))
    text = unparse(prog)
    assert parse(text) == prog, text
