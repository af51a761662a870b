"""Fixtures shared by the JIT tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .dispatch_counter import PythonCalls


@pytest.fixture
def python_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[PythonCalls]:
    """A fresh count of the helper calls that reach the JIT's Python dispatcher."""
    yield PythonCalls(monkeypatch)
