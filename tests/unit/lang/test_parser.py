"""The parser: precedence, statements, probes, the preamble, and syntax errors rendered like bpftrace."""

from __future__ import annotations

import pytest

from bpfkit.errors import CompileError
from bpfkit.lang import ast
from bpfkit.lang.parser import parse

from .helpers import SAMPLES, expr, sexpr


def errors(text: str, name: str = "stdin") -> str:
    with pytest.raises(CompileError) as info:
        parse(text, name)
    return str(info.value)


def body(text: str) -> tuple[ast.Stmt, ...]:
    return parse(f"BEGIN {{ {text} }}").probes[0].body.stmts


@pytest.mark.parametrize(("text", "tree"), [
    ("1 + 2 * 3", "(+ 1 (* 2 3))"),
    ("1 - 2 - 3", "(- (- 1 2) 3)"),
    ("8 / 4 / 2", "(/ (/ 8 4) 2)"),
    ("1 << 2 + 3", "(<< 1 (+ 2 3))"),
    ("1 < 2 == 3 > 4", "(== (< 1 2) (> 3 4))"),
    ("1 & 2 ^ 3 | 4", "(| (^ (& 1 2) 3) 4)"),
    ("1 == 2 & 3", "(& (== 1 2) 3)"),
    ("1 || 2 && 3 | 4", "(|| 1 (&& 2 (| 3 4)))"),
    ("1 ? 2 : 3 ? 4 : 5", "(? 1 2 (? 3 4 5))"),
    ("1 ? 2 ? 3 : 4 : 5", "(? 1 (? 2 3 4) 5)"),
    ("$a || $b ? 1 : 2", "(? (|| $a $b) 1 2)"),
    ("-1", "-1"),
    ("- 1", "-1"),
    ("-(1)", "(- 1)"),
    ("- -1", "(- -1)"),
    ("-$x * 2", "(* (- $x) 2)"),
    ("!$x == 0", "(== (! $x) 0)"),
    ("~$x & 1", "(& (~ $x) 1)"),
    ("*$p + 1", "(+ (* $p) 1)"),
    ("&@m", "(& @m)"),
    ("2 - -3", "(- 2 -3)"),
    ("$x++ + ++$y", "(+ (post++ $x) (++ $y))"),
    ("@m[1]-- - --@n", "(- (post-- @m[1]) (-- @n))"),
    ("$p->a.b[1]", "([] (. (-> $p a) b) 1)"),
    ("$t.0.1", "(. (. $t 0) 1)"),
    ("(1, (2, 3)).1.0", "(. (. (tuple 1 (tuple 2 3)) 1) 0)"),
    ("(uint8)$x + 1", "(+ (cast uint8 $x) 1)"),
    ("(struct task_struct *)curtask->pid", "(cast struct_task_struct* (-> curtask pid))"),
    ("((struct task_struct *)curtask)->pid", "(-> (cast struct_task_struct* curtask) pid)"),
    ("(int8[4] *)arg0", "(cast int8[4]* arg0)"),
    ("(string[16])$s", "(cast string[16] $s)"),
    ("(pid_t)arg0", "(cast pid_t arg0)"),
    ("(sk_buff **)arg0", "(cast sk_buff** arg0)"),
    ("(uint64)-1", "(cast uint64 -1)"),
    ("(A) - 1", "(- A 1)"),
    ("(A) * B", "(* A B)"),
    ("(A)", "A"),
    ("(pid)", "pid"),
    ("sizeof(struct s) + sizeof($x) + sizeof(uint32)",
     "(+ (+ (sizeof struct_s) (sizeof $x)) (sizeof uint32))"),
    ("offsetof(struct s, a.b)", "(offsetof struct_s a.b)"),
    ("sizeof(pid_t)", "(sizeof pid_t)"),
    ("sizeof(pid_t *) + sizeof(x * y)", "(+ (sizeof pid_t*) (sizeof (* x y)))"),
    ("offsetof(pid_t **, x)", "(offsetof pid_t** x)"),
    ("offsetof(*curtask, comm)", "(offsetof (* curtask) comm)"),
    ("printf(\"%d\", 1, 2)", "(printf '%d' 1 2)"),
    ("exit()", "(exit)"),
    ("kstack(perf, 3)", "(kstack perf 3)"),
    ("@m[pid, comm]", "@m[pid comm]"),
    ("@[1]", "@[1]"),
    ("@m[(1, 2)]", "@m[(tuple 1 2)]"),
    ("$1 + $#", "(+ $1 $#)"),
    ("true && !false", "(&& true (! false))"),
    ("arg0 + sarg1 + retval + args->x", "(+ (+ (+ arg0 sarg1) retval) (-> args x))"),
    ("'a'", "97"),
    ("AF_INET", "AF_INET"),
    ("$x.if", "(. $x if)"),
])
def test_expression_trees(text: str, tree: str) -> None:
    assert sexpr(expr(text)) == tree


def test_builtins_and_identifiers() -> None:
    assert isinstance(expr("pid"), ast.Builtin)
    assert isinstance(expr("arg12"), ast.Builtin)
    assert isinstance(expr("argx"), ast.Identifier)
    assert isinstance(expr("kstack"), ast.Builtin)
    assert isinstance(expr("kstack()"), ast.Call)


def test_statements() -> None:
    stmts = body("""
        $x = 1; @m[1] += 2; $y <<= 3; let $z; let $w: uint32; let $v: struct s * = 0; let $u = 1;
        if ($x) { print(1) } else if ($y) { print(2) } else { print(3) }
        while ($x < 3) { $x++; if ($x == 2) { continue } break }
        unroll(2) { 1 } unroll($1) { 2 }
        for ($kv : @m) { print($kv.0) } for ($i : 0..5) { }
        { $scoped = 1 }
        ;;
        return
    """)
    kinds = [type(s).__name__ for s in stmts]
    assert kinds == ["Assign", "Assign", "Assign", "VarDecl", "VarDecl", "VarDecl", "VarDecl", "If",
                     "While", "Unroll", "Unroll", "For", "For", "Block", "Return"]
    a0, a1, a2 = stmts[:3]
    assert isinstance(a1, ast.Assign) and a1.op == "+" and a1.target == ast.Map("m", (ast.Int(1),))
    assert isinstance(a2, ast.Assign) and a2.op == "<<"
    assert isinstance(a0, ast.Assign) and a0.op is None
    assert stmts[4] == ast.VarDecl(ast.Var("w"), ast.TypeName("uint32"))
    assert stmts[5] == ast.VarDecl(ast.Var("v"), ast.TypeName("struct s", pointer=1), ast.Int(0))
    if_ = stmts[7]
    assert isinstance(if_, ast.If) and isinstance(if_.orelse, ast.If)
    assert isinstance(if_.orelse.orelse, ast.Block)
    loop = stmts[8]
    assert isinstance(loop, ast.While)
    assert [type(s).__name__ for s in loop.body.stmts] == ["ExprStmt", "If", "Break"]
    for_range = stmts[12]
    assert isinstance(for_range, ast.For) and for_range.iterable == ast.Range(ast.Int(0), ast.Int(5))
    assert stmts[-1] == ast.Return()
    assert body("return $x + 1")[0] == ast.Return(ast.Binary("+", ast.Var("x"), ast.Int(1)))


def test_last_semicolon_is_optional_and_blocks_need_none() -> None:
    assert len(body("$x = 1; $y = 2")) == 2
    assert len(body("if (1) { } $x = 1")) == 2
    assert body("") == ()


def test_program_structure_and_spans() -> None:
    text = ("#include <linux/sched.h>\nstruct S { int a; }\n"
            "config = { max_map_keys = 10; stack_mode = perf }\n"
            "kprobe:a, k:b /pid == 1/ { @x = 1 }\nEND { }")
    prog = parse(text, "s.bt")
    assert [i.text for i in prog.includes] == ["#include <linux/sched.h>"]
    assert [d.text for d in prog.definitions] == ["struct S { int a; }"]
    assert prog.config == ast.Config((ast.ConfigEntry("max_map_keys", ast.Int(10)),
                                      ast.ConfigEntry("stack_mode", ast.Identifier("perf"))))
    first, second = prog.probes
    assert [a.func for a in first.attach_points] == ["a", "b"]
    assert first.predicate == ast.Binary("==", ast.Builtin("pid"), ast.Int(1))
    assert second.attach_points[0].provider == "END"
    assert first.span.text == "kprobe:a, k:b /pid == 1/ { @x = 1 }"
    assert first.predicate.span.text == "pid == 1"
    stmt = first.body.stmts[0]
    assert stmt.span.text == "@x = 1" and (stmt.span.line, stmt.span.column) == (4, 28)
    assert prog.span.text == text


def test_node_spans_cover_their_text() -> None:
    e = expr("(uint8)$a->b[1] + str(2, 3) * -4")
    assert isinstance(e, ast.Binary)
    assert e.span.text == "(uint8)$a->b[1] + str(2, 3) * -4"
    assert e.left.span.text == "(uint8)$a->b[1]"
    assert isinstance(e.right, ast.Binary) and e.right.left.span.text == "str(2, 3)"
    assert e.right.right.span.text == "-4"


def test_equality_ignores_spans() -> None:
    assert parse("BEGIN { @x = 1 }") == parse("BEGIN\n{\n  @x   =   1;\n}\n")
    assert parse("BEGIN { @x = 1 }") != parse("BEGIN { @x = 2 }")


# Syntax errors: location, message and carets. Marked cases print exactly what bpftrace 0.17.0 prints.
@pytest.mark.parametrize(("text", "rendered"), [
    # identical to bpftrace 0.17.0
    ('BEGIN { printf("x" }',
     'stdin:1:20-21: ERROR: syntax error, unexpected }, expecting ) or ","\nBEGIN { printf("x" }\n'
     "                   ~"),
    ("BEGIN }", "stdin:1:7-8: ERROR: syntax error, unexpected }, expecting {\nBEGIN }\n      ~"),
    ("BEGIN {\t$x = 1 + +; }",
     "stdin:1:18-19: ERROR: syntax error, unexpected +\nBEGIN {    $x = 1 + +; }\n                    ~"),
    ("BEGIN { @x[1 = 2; }",
     'stdin:1:14-15: ERROR: syntax error, unexpected =, expecting ] or ","\nBEGIN { @x[1 = 2; }\n'
     "             ~"),
    ("kprobe:foo /pid == 1 {}",
     "stdin:1:22-23: ERROR: syntax error, unexpected {, expecting end predicate\n"
     "kprobe:foo /pid == 1 {}\n                     ~"),
    ("BEGIN { $x = 1; } END { $y = ; }",
     "stdin:1:30-31: ERROR: syntax error, unexpected ;\nBEGIN { $x = 1; } END { $y = ; }\n"
     "                             ~"),
    ("BEGIN { $x = `; }",
     "stdin:1:14-15: ERROR: invalid character '`'\nBEGIN { $x = `; }\n             ~\n"
     "stdin:1:15-16: ERROR: syntax error, unexpected ;\nBEGIN { $x = `; }\n              ~"),
    # bpfkit's own wording where bpftrace's parser states say less
    ("BEGIN { @ = 1",
     "stdin:1:13-14: ERROR: syntax error, unexpected end of file, expecting ; or }\nBEGIN { @ = 1\n"
     "            ~"),
    ("kprobe:f { $x ++ 1 }",
     "stdin:1:18-19: ERROR: syntax error, unexpected integer, expecting ; or }\nkprobe:f { $x ++ 1 }\n"
     "                 ~"),
    ('BEGIN { printf("%d", 1) exit() }',
     'stdin:1:25-29: ERROR: syntax error, unexpected call, expecting ; or }\n'
     'BEGIN { printf("%d", 1) exit() }\n                        ~~~~'),
    ("BEGIN { $x = 1 }}",
     "stdin:1:17-18: ERROR: syntax error, unexpected }, expecting attach point\nBEGIN { $x = 1 }}\n"
     "                ~"),
    ("BEGIN { $x = 1 ? 2; }",
     "stdin:1:19-20: ERROR: syntax error, unexpected ;, expecting :\nBEGIN { $x = 1 ? 2; }\n"
     "                  ~"),
])
def test_syntax_errors_render(text: str, rendered: str) -> None:
    assert errors(text) == rendered


def test_unknown_functions_are_collected_with_hints() -> None:
    text = 'BEGIN {\n  prinft("x");\n  @x = cuont();\n  pid();\n  zzzzzz(1)\n}'
    assert errors(text, "script.bt") == (
        "script.bt:2:3-9: ERROR: unknown function 'prinft'\n  prinft(\"x\");\n  ~~~~~~\n"
        "HINT: did you mean 'printf'?\n"
        "script.bt:3:8-13: ERROR: unknown function 'cuont'\n  @x = cuont();\n       ~~~~~\n"
        "HINT: did you mean 'count'?\n"
        "script.bt:4:3-6: ERROR: unknown function 'pid'\n  pid();\n  ~~~\n"
        "HINT: 'pid' is a builtin variable: use it without parentheses\n"
        "script.bt:5:3-9: ERROR: unknown function 'zzzzzz'\n  zzzzzz(1)\n  ~~~~~~"
    )


@pytest.mark.parametrize(("text", "message"), [
    ("", "stdin:1:1: ERROR: the program has no probes"),
    ("// only a comment\n", "stdin:2:1: ERROR: the program has no probes"),
    ("#include <x.h>", "stdin:1:1-15: ERROR: the program has no probes"),
    ("BEGIN", "stdin:1:1-6: ERROR: syntax error, unexpected end of file, expecting {"),
    ("{}", "stdin:1:1-2: ERROR: syntax error, unexpected {, expecting attach point"),
    ("BEGIN {} #include <x.h>", "stdin:1:10-24: ERROR: the preamble (#include, #define, struct "
                                "definitions, config) must come before the first probe"),
    ("config = {a=1} config = {b=2} BEGIN {}", "stdin:1:16-22: ERROR: duplicate config block"),
    ("BEGIN { $x.0 = 1 }", "stdin:1:9-13: ERROR: tuples are immutable once created; consider creating "
                           "a new tuple and assigning it instead"),
    ("BEGIN { $x->y = 1 }", "stdin:1:9-14: ERROR: cannot assign to this expression with '=': only maps "
                            "and variables can be assigned"),
    ("BEGIN { 1++ }", "stdin:1:9-12: ERROR: the ++ operator must be applied to a map or variable"),
    ("BEGIN { --pid }", "stdin:1:9-14: ERROR: the -- operator must be applied to a map or variable"),
    ("BEGIN { unroll($x) {} }", "stdin:1:16-18: ERROR: unroll count must be an integer literal or a "
                                "positional parameter"),
    ("BEGIN { @m[] = 1 }", "stdin:1:9-13: ERROR: a map key cannot be empty: write @name, or @name[key]"),
    ("BEGIN { let $x += 1 }", "stdin:1:16-18: ERROR: a declaration can only be initialised with '='"),
    ("BEGIN { for (x : @m) {} }", "stdin:1:14-15: ERROR: syntax error, unexpected identifier, expecting "
                                  "variable"),
    ("BEGIN { $x = (uint8 1) }", "stdin:1:21-22: ERROR: syntax error, unexpected integer, expecting )"),
    ("BEGIN { if ($x) { } else { } else { } }", "stdin:1:30-34: ERROR: syntax error, unexpected else"),
    ("foo:bar {}", "stdin:1:1-8: ERROR: unknown probe type 'foo'"),
    ("k:f, {}", "stdin:1:6-7: ERROR: syntax error, unexpected {, expecting attach point"),
    ("BEGIN { $x = (struct 1) }", "stdin:1:22-23: ERROR: syntax error, unexpected integer, expecting "
                                  "identifier"),
    ("BEGIN { $x = $y. }", "stdin:1:18-19: ERROR: syntax error, unexpected }, expecting identifier"),
    ("BEGIN { $x = offsetof(struct s, ) }", "stdin:1:33-34: ERROR: syntax error, unexpected ), "
                                            "expecting identifier"),
])
def test_error_messages(text: str, message: str) -> None:
    assert errors(text).split("\n")[0] == message


@pytest.mark.parametrize(("text", "hint"), [
    ("kprobe:foo/pid==1/{}", "HINT: a predicate needs a space before its '/' when the attach point ends in "
                             "a path: 'kprobe:foo/pid' was read as one attach point"),
    ("BEGIN { } kprobe:f kprobe:g {}", "HINT: separate the attach points of a probe with ','"),
    ("BEGIN { x = 1 }", "HINT: write '$x' for a scratch variable or '@x' for a map"),
    ("BEGIN { comm = 1 }", "HINT: write '$comm' for a scratch variable or '@comm' for a map"),
])
def test_hints(text: str, hint: str) -> None:
    assert errors(text).split("\n")[-1] == hint


def test_lexical_and_probe_errors_are_all_reported() -> None:
    text = 'kprobee:f { $x = "a\\q"; }\ntracepoint:x { 1 }'
    rendered = errors(text).split("\n")
    heads = [line for line in rendered if ": ERROR: " in line]
    assert heads == [
        "stdin:1:20-22: ERROR: invalid escape character '\\q'",
        "stdin:1:1-10: ERROR: unknown probe type 'kprobee'",
        "stdin:2:1-13: ERROR: tracepoint probe type requires 2 arguments",
    ]


def test_deep_nesting_is_a_compile_error() -> None:
    deep = "(" * 150 + "1" + ")" * 150
    assert "nesting is too deep" in errors(f"BEGIN {{ @ = {deep} }}")
    assert "nesting is too deep" in errors("BEGIN { " + "if (1) { " * 150 + "}" * 151)
    assert "nesting is too deep" in errors("BEGIN { @ = " + "!" * 300 + "1 }")
    ok = "(" * 40 + "1" + ")" * 40
    assert expr(ok) == ast.Int(1)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_scripts_parse(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    prog = parse(path.read_text(), path.name)
    assert prog.probes
    for probe in prog.probes:
        assert probe.attach_points


def test_samples_cover_every_provider() -> None:
    from bpfkit.lang.probes import PROVIDERS

    seen: set[str] = set()
    for path in SAMPLES:
        for probe in parse(path.read_text(), path.name).probes:
            seen.update(ap.provider for ap in probe.attach_points)
    assert seen >= {p.name for p in PROVIDERS} - {"watchpoint", "asyncwatchpoint"}
