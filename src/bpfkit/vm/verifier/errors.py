"""`Refusal`: raised inside the verifier where a check fails; `verify` turns it into a report."""

from __future__ import annotations


class Refusal(Exception):
    """A check failed at instruction `insn` (a slot index; -1 when no instruction is to blame).

    `message` says what is wrong in the kernel's words where the kernel has them; `hint` is one
    sentence on what to change. `needs_btf` marks a refusal for want of the target kernel's BTF
    (`Report.needs_btf`), which a caller can then supply.
    """

    def __init__(self, insn: int, message: str, hint: str = "", *, needs_btf: bool = False) -> None:
        super().__init__(message)
        self.insn = insn
        self.message = message
        self.hint = hint
        self.needs_btf = needs_btf
