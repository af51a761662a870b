"""`Env`: what one verification knows besides the abstract state: the program, its type, its maps,
the limits, and the counters the result reports."""

from __future__ import annotations

from typing import Any

from bpfkit._records import field, record
from bpfkit.uapi.enums import AttachType, MapType, ProgType
from bpfkit.vm.verifier.cfg import Program
from bpfkit.vm.verifier.state import MapInfo

COMPLEXITY_LIMIT_INSNS = 1_000_000
"""BPF_COMPLEXITY_LIMIT_INSNS (include/linux/bpf.h): instructions processed over all paths."""
COMPLEXITY_LIMIT_JMP_SEQ = 8192
"""BPF_COMPLEXITY_LIMIT_JMP_SEQ (kernel/bpf/verifier.c): branches waiting to be explored."""
MAX_VAR_OFF = 1 << 29
"""BPF_MAX_VAR_OFF: the largest variable offset of a pointer the kernel tracks."""
MAX_VAR_SIZE = 1 << 29
"""BPF_MAX_VAR_SIZ: the largest size passed to a helper."""
MAX_PACKET_OFF = 0xFFFF
"""MAX_PACKET_OFF: packet offsets beyond this give no range."""


@record(frozen=False)
class Env:
    """Configuration and counters of one verification."""

    prog: Program
    prog_type: ProgType | None
    expected_attach_type: AttachType | None = None
    maps: dict[int, MapInfo] = field(default_factory=dict)
    """LD_IMM64 slot -> the map it loads."""
    mem_size: int = 0
    """Raw-memory programs (prog_type None): bytes r1 points to."""
    limit: int = COMPLEXITY_LIMIT_INSNS
    jit: bool = True
    btf: Any = None
    """The target kernel's BTF (`bpfkit.btf.Spec`): kfunc prototypes, BTF-typed contexts and objects."""
    kernel_refs: dict[int, str] = field(default_factory=dict)
    """Slot -> kernel symbol name, for kfunc calls and __ksym loads the loader has not patched yet."""
    attach_to: str = ""
    """BTF-typed programs: the attach target (`task` for SEC("iter/task"), a function for fentry)."""
    ctx_proto: Any = None
    """BTF-typed programs: the prototype whose arguments are the context (set on first use)."""
    live: list[int] = field(default_factory=list)
    """Registers live on entry to each slot."""
    cgroup_storage: dict[MapType, MapInfo] = field(default_factory=dict)
    """The cgroup storage map of each type the program uses (the kernel allows one)."""
    # counters
    processed: int = 0
    states: int = 0
    peak_states: int = 0
    pruned: int = 0
    next_id: int = 0
    stack_depth: dict[int, int] = field(default_factory=dict)
    """Subprogram entry -> deepest stack byte it touched."""
    insn: int = 0
    """The instruction being checked."""
    access_safe: dict[int, bool] = field(default_factory=dict)
    """Slot -> whether every load/store checked there so far went through a plain host-memory region
    (see `VerifierResult.proven_safe`)."""

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    ctx_load: dict[int, bool] = field(default_factory=dict)
    """Slot -> whether every access checked there so far was a load from the context, through the
    unmodified context pointer (see `VerifierResult.ctx_loads`)."""

    def note_access(self, safe: bool, ctx_load: bool = False) -> None:
        """Record that the memory access at the current slot passed its check; `safe` says whether
        the region it went to is one the JIT may access without a check, `ctx_load` whether it was a
        context load."""
        self.access_safe[self.insn] = safe and self.access_safe.get(self.insn, True)
        self.ctx_load[self.insn] = ctx_load and self.ctx_load.get(self.insn, True)

    def touch_stack(self, subprog: int, depth: int) -> None:
        if depth > self.stack_depth.get(subprog, 0):
            self.stack_depth[subprog] = depth
