"""Enforces the import direction of DESIGN.md by walking the AST of every module of the package.

_records <- errors, uapi <- isa, elf <- btf <- obj, events <- lang <- vm | kernel <- trace, cc <- cli.
A package may import its own modules and those of lower layers only; vm and kernel never import each
other; nothing below the kernel layer calls ctypes.CDLL or imports fcntl (vm may, for its JIT).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "bpfkit"

RANK = {
    "_records": -1,  # the record decorator every layer's data classes use; imports nothing from bpfkit
    "errors": 0, "_lazy": 0, "uapi": 0,
    "isa": 1, "elf": 1,
    "btf": 2,
    "obj": 3, "events": 3,
    "lang": 4,
    "vm": 5, "kernel": 5,
    "trace": 6, "cc": 6,
    "cli": 7, "__init__": 8, "__main__": 8,
}
LOW_LEVEL_OS = {"fcntl"}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.AST, path: Path) -> list[tuple[str, int]]:
    out = []
    package = ".".join(("bpfkit", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((name, node.lineno))
            if name == "bpfkit":  # from bpfkit import isa
                out += [(f"bpfkit.{alias.name}", node.lineno) for alias in node.names]
    return out


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_package_has_modules() -> None:
    assert len(_modules()) > 5


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = _layer(path)
    assert layer in RANK, f"{path}: package {layer!r} has no layer in DESIGN.md; add it to RANK"
    tree = ast.parse(path.read_text(), str(path))
    problems = []
    for name, line in _imports(tree, path):
        parts = name.split(".")
        if parts[0] in LOW_LEVEL_OS and RANK[layer] < RANK["kernel"] and layer != "vm":
            problems.append(f"line {line}: {layer} imports {name} (only the kernel layer may)")
        if parts[0] != "bpfkit" or len(parts) < 2:
            continue
        target = parts[1]
        if target == layer or target not in RANK:
            continue
        if {layer, target} == {"vm", "kernel"}:
            problems.append(f"line {line}: {layer} imports {name} (vm and kernel never import each other)")
        elif RANK[target] >= RANK[layer]:
            problems.append(f"line {line}: {layer} (layer {RANK[layer]}) imports {name} "
                            f"(layer {RANK[target]})")
    if RANK[layer] < RANK["kernel"] and layer != "vm":
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "CDLL":
                problems.append(f"line {node.lineno}: {layer} calls ctypes.CDLL (only the kernel layer may)")
    assert not problems, f"{path.relative_to(SRC)}:\n" + "\n".join(problems)
