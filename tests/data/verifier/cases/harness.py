"""Running a case: its instructions (kfunc ids and map fds filled in), the target BTF, and bpfkit's
verifier on it."""

from __future__ import annotations

import os
import textwrap

from bpfkit._records import replace
from bpfkit.btf import Func, Spec, Typedef, load_btf
from bpfkit.isa import LD_IMM64, Instruction, assemble
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.uapi.insn import InsnClass, JmpOp, PseudoCall, PseudoSrc
from bpfkit.vm.verifier import VerifierResult, verify

from .common import VMLINUX, Case

CALL = InsnClass.JMP | JmpOp.CALL


def attach_btf_id(case: Case, btf: Spec) -> int:
    """The kernel BTF id a TRACING case is loaded against (its attach target)."""
    if case.attach == AttachType.TRACE_RAW_TP:
        ids = btf.find_ids("btf_trace_" + case.attach_to, Typedef)
    else:
        name = "bpf_iter_" + case.attach_to if case.attach == AttachType.TRACE_ITER else case.attach_to
        if case.prog_type == ProgType.LSM:
            name = "bpf_lsm_" + case.attach_to  # LSM hooks are the kernel functions bpf_lsm_<hook>
        ids = btf.find_ids(name, Func)
    return ids[0] if ids else 0  # 0: no target, which the kernel refuses


_btf: list[Spec | None] = []


def target_btf() -> Spec | None:
    """The running kernel's BTF (kfunc ids and prototypes, BTF-typed contexts), None if unreadable."""
    if not _btf:
        _btf.append(load_btf(VMLINUX) if os.access(VMLINUX, os.R_OK) else None)
    return _btf[0]


def needs_btf(case: Case) -> bool:
    """Whether the case needs the running kernel's BTF (it calls kfuncs or has an attach target)."""
    return bool(case.kfuncs or case.attach_to)


def program(case: Case) -> list[Instruction]:
    """The case's instructions; map loads hold the map's index in `case.maps`, kfunc calls the id of
    the named kernel function in the running kernel's BTF."""
    insns = assemble(textwrap.dedent(case.text))
    if not case.kfuncs:
        return insns
    btf = target_btf()
    assert btf is not None, "kfunc cases need the running kernel's BTF"
    ids = [btf.find_ids(name, Func)[0] for name in case.kfuncs]
    return [replace(i, imm=ids[i.imm]) if i.opcode == CALL and i.src == PseudoCall.KFUNC else i
            for i in insns]


def with_fds(insns: list[Instruction], fds: list[int]) -> list[Instruction]:
    """The instructions with each map index replaced by the real map's fd (for the kernel)."""
    out = []
    for insn in insns:
        if insn.opcode == LD_IMM64 and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            index = insn.imm & 0xFFFFFFFF
            insn = replace(insn, imm=(insn.imm & ~0xFFFFFFFF) | fds[index])
        out.append(insn)
    return out


def verify_case(case: Case) -> VerifierResult:
    """Run bpfkit's verifier on a case (raises VerificationError on refusal)."""
    return verify(program(case), prog_type=case.prog_type, maps=dict(enumerate(case.maps)),
                  expected_attach_type=case.attach, license=case.license, mem_size=case.mem_size,
                  btf=target_btf() if needs_btf(case) else None, attach_to=case.attach_to)
