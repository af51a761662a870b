"""The exception hierarchy: every class is a BpfkitError; messages name the location and the reason."""

from __future__ import annotations

import errno

from bpfkit import errors as E


def test_hierarchy_matches_the_design() -> None:
    assert issubclass(E.ElfError, E.ParseError) and issubclass(E.BtfError, E.ParseError)
    assert issubclass(E.AsmError, E.ParseError)
    assert issubclass(E.CoreRelocationError, E.RelocationError) and issubclass(E.RelocationError, E.LinkError)
    for cls in (E.VmMemoryError, E.VmHelperError, E.VmLimitError):
        assert issubclass(cls, E.VmError)
    assert issubclass(E.VerifierError, E.KernelError) and issubclass(E.NotSupportedError, E.KernelError)
    assert issubclass(E.KernelError, OSError)
    for cls in (E.ParseError, E.LinkError, E.CompileError, E.VerificationError, E.VmError, E.KernelError):
        assert issubclass(cls, E.BpfkitError)


def test_asm_error_names_line_instruction_and_source() -> None:
    e = E.AsmError("bad register", index=3, line=4, source="  r11 = 1 ")
    assert str(e) == "line 4, instruction 3 ('r11 = 1'): bad register"
    assert e.offset == 3


def test_kernel_error_names_syscall_and_errno() -> None:
    e = E.KernelError("bpf(BPF_MAP_CREATE)", errno.EPERM, "needs CAP_BPF")
    assert str(e) == "bpf(BPF_MAP_CREATE): EPERM (Operation not permitted): needs CAP_BPF"
    assert e.errno == errno.EPERM
    assert str(E.KernelError("bpf(BPF_LINK_CREATE)", 524)).startswith("bpf(BPF_LINK_CREATE): ENOTSUPP")


def test_verifier_error_shows_the_reason_not_the_statistics() -> None:
    log = "".join(f"{i}: (b7) r0 = {i}\n" for i in range(10))
    log += "R0 invalid mem access 'scalar'\nprocessed 11 insns (limit 1000000) max_states_per_insn 0\n"
    e = E.VerifierError("bpf(BPF_PROG_LOAD)", errno.EACCES, log, program="xdp_prog")
    text = str(e)
    assert "program 'xdp_prog' refused by the verifier" in text
    assert text.splitlines()[-2] == "R0 invalid mem access 'scalar'"
    assert "processed 11 insns" not in text
    assert text.endswith("(7 lines omitted)")  # 12 lines, 5 shown, the statistics line omitted
    assert e.log == log


def test_not_supported_names_the_feature_and_kernel() -> None:
    e = E.NotSupportedError("fentry programs", "5.5", detail="EPERM on load")
    assert ("fentry programs is not supported by this kernel (needs Linux 5.5 or newer): EPERM on load"
            in str(e))


def test_vm_error_names_pc_and_instruction() -> None:
    assert str(E.VmMemoryError("out of bounds", pc=7, insn="r0 = *(u8 *)(r1 + 0)")) == \
        "pc 7 (r0 = *(u8 *)(r1 + 0)): out of bounds"
