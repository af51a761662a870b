"""The bpftrace-compatible language: source spans, diagnostics, lexer, parser, AST and printers.

``parse(text, name)`` turns a script into an `ast.Program` or raises `bpfkit.errors.CompileError` whose
diagnostics render like bpftrace's errors. Later passes (types, lowering to eBPF) build on the tree.
"""

# The names below are imported on first use (PEP 562): running a cached script (bpfkit.trace.cache)
# needs the data modules (resources, types, ast) but not the parser, and start-up is a hot path.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bpfkit._lazy import lazy_attributes

if TYPE_CHECKING:
    from bpfkit.lang import ast
    from bpfkit.lang.diagnostics import Diagnostic, Note, Severity
    from bpfkit.lang.parser import parse, parse_source
    from bpfkit.lang.printer import dump_ast, unparse, unparse_expr
    from bpfkit.lang.source import NOWHERE, Source, Span

_LAZY = {
    "Diagnostic": "bpfkit.lang.diagnostics",
    "Note": "bpfkit.lang.diagnostics",
    "Severity": "bpfkit.lang.diagnostics",
    "parse": "bpfkit.lang.parser",
    "parse_source": "bpfkit.lang.parser",
    "dump_ast": "bpfkit.lang.printer",
    "unparse": "bpfkit.lang.printer",
    "unparse_expr": "bpfkit.lang.printer",
    "NOWHERE": "bpfkit.lang.source",
    "Source": "bpfkit.lang.source",
    "Span": "bpfkit.lang.source",
}
_names = lazy_attributes(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    if name == "ast":  # a submodule, not a name in one
        return importlib.import_module("bpfkit.lang.ast")
    return _names(name)


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
