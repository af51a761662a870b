"""Importing bpfkit stays cheap: `bpfkit.BPF` and `bpfkit.cc`'s names load on first use."""

from __future__ import annotations

import subprocess
import sys


def test_import_bpfkit_does_not_load_the_c_front_end() -> None:
    code = ("import sys, bpfkit, bpfkit.cc\n"
            "loaded = [m for m in sys.modules if m.startswith(('bpfkit.cc.', 'bpfkit.kernel'))]\n"
            "assert not loaded, loaded\n"
            "from bpfkit import BPF\n"
            "from bpfkit.cc.bcc import BPF as B2\n"
            "assert BPF is B2 and bpfkit.cc.BPF is B2 and callable(bpfkit.cc.compile)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_unknown_names_raise_attribute_error() -> None:
    import bpfkit
    import bpfkit.cc

    for mod in (bpfkit, bpfkit.cc):
        try:
            mod.no_such_name  # noqa: B018
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError(f"{mod.__name__}.no_such_name did not raise")
