"""Shared by the verifier tests: the case table of tests/data/verifier."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).resolve().parents[2] / "data" / "verifier"


def load_data(name: str) -> ModuleType:
    """Import tests/data/verifier/<name>.py, or the package tests/data/verifier/<name>/ (test data, not
    on sys.path), as module `verifier_<name>`."""
    key = f"verifier_{name}"
    if key not in sys.modules:
        path = DATA / name
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(key, path / "__init__.py",
                                                          submodule_search_locations=[str(path)])
        else:
            spec = importlib.util.spec_from_file_location(key, DATA / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
