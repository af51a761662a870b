"""bpfkit's own verifier: the kernel's safety checks, run in Python before a program is loaded.

    from bpfkit.vm.verifier import verify
    result = verify(insns, prog_type=ProgType.XDP, maps={"counts": spec}, relocations=b.relocations)

`verify` raises `bpfkit.errors.VerificationError` whose `report` (`Report`) names the instruction,
source line, path, registers and what to change. The checks follow kernel/bpf/verifier.c: structure
(`cfg`), abstract interpretation of every path with tnums and ranges (`tnum`, `ranges`, `arith`,
`refine`, `state`, `memory`, `calls`, `check`) and state pruning (`prune`, `liveness`). Kernel functions,
kernel objects and BTF-typed contexts (`kfuncs`, `btfmem`) are checked against the target kernel's BTF,
passed in as a value (`verify(btf=...)`). bpfkit may refuse a program the kernel accepts (it knows
less), never the reverse. Pure: no kernel is needed.
"""

from bpfkit.vm.verifier.api import GPL_COMPATIBLE, VerifierResult, verify, verify_program
from bpfkit.vm.verifier.env import COMPLEXITY_LIMIT_INSNS
from bpfkit.vm.verifier.report import Report, SourceLine

__all__ = ["COMPLEXITY_LIMIT_INSNS", "GPL_COMPATIBLE", "Report", "SourceLine", "VerifierResult", "verify",
           "verify_program"]
