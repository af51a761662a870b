"""Walking the syntax tree: every node under a root, in source order."""

from __future__ import annotations

from collections.abc import Iterator

from bpfkit._records import field_names
from bpfkit.lang import ast

#: Builtins that read the probe's context (r6), which a bpf_for_each_map_elem callback does not have.
CONTEXT_BUILTINS = frozenset({"args", "retval", "kstack", "ustack", "ctx"})


def nodes(root: object) -> Iterator[ast.Node]:
    """`root` and every node below it (tuples and lists of nodes are followed)."""
    if isinstance(root, tuple | list):
        for x in root:
            yield from nodes(x)
    elif isinstance(root, ast.Node):
        yield root
        for name in field_names(root):
            if name != "span":
                yield from nodes(getattr(root, name))


def var_names(root: object) -> set[str]:
    """Names of the variables used under `root`."""
    return {n.name for n in nodes(root) if isinstance(n, ast.Var)}


def needs_context(n: ast.Node) -> bool:
    """Whether node `n` reads the probe's context (args, argN, retval, stacks)."""
    if isinstance(n, ast.Builtin):
        return n.name in CONTEXT_BUILTINS or (n.name.startswith("arg") and n.name[3:].isdigit())
    return isinstance(n, ast.Call) and n.name in ("kstack", "ustack")
