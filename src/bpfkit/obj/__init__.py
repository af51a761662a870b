"""Specs of BPF objects: what to create in the kernel, as pure data (no kernel access here)."""

from bpfkit.obj.spec import MapSpec, ProgramSpec

__all__ = ["MapSpec", "ProgramSpec"]
