"""Specs of BPF objects: what to create in the kernel, as pure data (no kernel access here).

    obj = load_object("prog.o")
    obj.rodata["cfg_value"] = 5
    obj.programs["handler"].insns, obj.maps["counts"].max_entries
"""

# The names below are imported on first use (PEP 562): `bpfkit trace` imports a few submodules
# and must not pay for the rest (start-up is a hot path).
from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._lazy import lazy_attributes

if TYPE_CHECKING:
    from bpfkit.obj.data import VariableSpec
    from bpfkit.obj.externs import ExternKind, ExternSpec, KconfigType
    from bpfkit.obj.load import load_object
    from bpfkit.obj.object import DataSection, ObjectSpec
    from bpfkit.obj.sections import SectionDef, SectionInfo, section_info
    from bpfkit.obj.spec import (
        CoreRelocation,
        MapSpec,
        PinType,
        ProgramSpec,
        Reference,
        RefKind,
        SourceLine,
        Subprogram,
    )

_LAZY = {
    "VariableSpec": "bpfkit.obj.data",
    "ExternKind": "bpfkit.obj.externs",
    "ExternSpec": "bpfkit.obj.externs",
    "KconfigType": "bpfkit.obj.externs",
    "load_object": "bpfkit.obj.load",
    "DataSection": "bpfkit.obj.object",
    "ObjectSpec": "bpfkit.obj.object",
    "SectionDef": "bpfkit.obj.sections",
    "SectionInfo": "bpfkit.obj.sections",
    "section_info": "bpfkit.obj.sections",
    "CoreRelocation": "bpfkit.obj.spec",
    "MapSpec": "bpfkit.obj.spec",
    "PinType": "bpfkit.obj.spec",
    "ProgramSpec": "bpfkit.obj.spec",
    "Reference": "bpfkit.obj.spec",
    "RefKind": "bpfkit.obj.spec",
    "SourceLine": "bpfkit.obj.spec",
    "Subprogram": "bpfkit.obj.spec",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "CoreRelocation",
    "DataSection",
    "ExternKind",
    "ExternSpec",
    "KconfigType",
    "MapSpec",
    "ObjectSpec",
    "PinType",
    "ProgramSpec",
    "RefKind",
    "Reference",
    "SectionDef",
    "SectionInfo",
    "SourceLine",
    "Subprogram",
    "VariableSpec",
    "load_object",
    "section_info",
]
