"""Counting the helper calls that reach the JIT's Python dispatcher (native helpers make none)."""

from __future__ import annotations

from typing import Any

import pytest

from bpfkit.vm.jit.runner import JitRun


class PythonCalls:
    """Counts helper calls that reach the JIT's Python dispatcher."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = JitRun.helper

        def counting(run: JitRun, *args: Any) -> int:
            self.count += 1
            return original(run, *args)

        monkeypatch.setattr(JitRun, "helper", counting)
