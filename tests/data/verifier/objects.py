"""bpfkit's verifier on a program of a clang-built object, as a loader would hand it over: CO-RE
relocations applied against the target BTF (the running kernel's, when readable), kfuncs and kernel
symbols checked against it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bpfkit._records import replace
from bpfkit.btf import Spec, load_btf
from bpfkit.btf.core import relocate
from bpfkit.isa import encode
from bpfkit.obj.load import load_object
from bpfkit.vm.verifier import VerifierResult, verify_program

VMLINUX = "/sys/kernel/btf/vmlinux"
_btf: list[Spec | None] = []


def target_btf() -> Spec | None:
    """The running kernel's BTF, or None where it cannot be read."""
    if not _btf:
        _btf.append(load_btf(VMLINUX) if os.access(VMLINUX, os.R_OK) else None)
    return _btf[0]


def verify_object_program(path: Path, name: str, btf: Spec | None = None, **kw: Any) -> VerifierResult:
    """Verify program `name` of object `path` (CO-RE applied when `btf` is given)."""
    obj = load_object(path)
    prog = obj.programs[name]
    if prog.core_relos and btf is not None and obj.btf is not None:
        code = prog.insns if isinstance(prog.insns, bytes) else bytes(encode(prog.insns))
        code, _ = relocate(code, prog.core_relos, obj.btf, btf)
        prog = replace(prog, insns=code, core_relos=())
    return verify_program(prog, obj.maps, btf=btf, **kw)
