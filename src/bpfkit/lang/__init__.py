"""The bpftrace-compatible language: source spans, diagnostics, lexer, parser, AST and printers.

``parse(text, name)`` turns a script into an `ast.Program` or raises `bpfkit.errors.CompileError` whose
diagnostics render like bpftrace's errors. Later passes (types, lowering to eBPF) build on the tree.
"""

from bpfkit.lang import ast
from bpfkit.lang.diagnostics import Diagnostic, Note, Severity
from bpfkit.lang.parser import parse, parse_source
from bpfkit.lang.printer import dump_ast, unparse, unparse_expr
from bpfkit.lang.source import NOWHERE, Source, Span

__all__ = [
    "NOWHERE",
    "Diagnostic",
    "Note",
    "Severity",
    "Source",
    "Span",
    "ast",
    "dump_ast",
    "parse",
    "parse_source",
    "unparse",
    "unparse_expr",
]
