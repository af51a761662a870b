"""Specs of BPF objects: what to create in the kernel, as pure data (no kernel access here).

    obj = load_object("prog.o")
    obj.rodata["cfg_value"] = 5
    obj.programs["handler"].insns, obj.maps["counts"].max_entries
"""

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
