"""BPF LSM programs (BPF_PROG_TYPE_LSM attached as BPF_LSM_MAC): the rules the kernel adds to those
of a BTF-typed tracing program.

The program runs at the LSM hook HOOK, whose BPF attach point is the kernel function `bpf_lsm_HOOK`:
its context is that function's arguments as u64s, typed from its BTF prototype (as fentry), plus,
one slot past the last argument, the return value the hook has so far (int hooks). Facts from the
kernel's kernel/bpf/bpf_lsm.c (bpf_lsm_verify_prog, bpf_lsm_func_proto, bpf_lsm_get_retval_range,
the hook sets) and kernel/bpf/verifier.c (check_return_code, check_attach_btf_id), Linux 6.18:

- a GPL-compatible license is required, and the hook must be one BPF may attach to;
- an int hook's program returns 0 or a negative errno in [-MAX_ERRNO, 0], checked on the low 32
  bits of r0 (a few boolean hooks return 0 or 1); a void hook's return value is ignored (r0 need
  not even be set);
- the return value read from the context is known to lie in that same range;
- helpers: those of tracing programs (tracing_prog_func_proto), plus bpf_spin_lock/unlock.

BPF_LSM_CGROUP programs (per-cgroup LSM, other helpers and return rules) are not modelled.
"""

from __future__ import annotations

from typing import Any

from bpfkit._records import record, replace
from bpfkit.btf.types import FuncProto
from bpfkit.uapi.enums import AttachType, Helper, ProgType
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.ranges import sync
from bpfkit.vm.verifier.state import Reg

HOOK_PREFIX = "bpf_lsm_"
"""An LSM hook HOOK is attached to as the kernel function `bpf_lsm_HOOK` (kernel/bpf/bpf_lsm.c)."""
MAX_ERRNO = 4095
"""include/linux/err.h: the largest errno an int hook's program may return (negated)."""

DISABLED_HOOKS = frozenset({
    "vm_enough_memory", "inode_need_killpriv", "inode_getsecurity", "inode_listsecurity",
    "inode_copy_up_xattr", "getselfattr", "getprocattr", "setprocattr", "key_getsecurity",
    "audit_rule_match", "xfrm_decode_session", "ismaclabel", "file_alloc_security",
})
"""Hooks that exist but BPF may not attach to (bpf_lsm_disabled_hooks): their return conventions
differ from 0/-errno."""
NOT_HOOKS = frozenset({
    "init", "verify_prog", "func_proto", "find_cgroup_shim", "get_retval_range", "has_d_inode_locked",
    "hook_returns_errno", "is_sleepable_hook", "is_trusted", "hook_inc", "hook_dec", "prog_to_key",
    "btf_id_to_key", "hook_keys_init",
})
"""Kernel functions named bpf_lsm_* that are the BPF LSM's own code, not hooks (not in the kernel's
bpf_lsm_hooks set, which bpfkit cannot read from BTF)."""
BOOL_HOOKS = frozenset({"xfrm_state_pol_flow_match", "audit_rule_known", "inode_xattr_skipcap"})
"""Int hooks whose programs return 0 or 1 (bool_lsm_hooks)."""
UNTRUSTED_HOOKS = frozenset({
    "bpf_map_free", "bpf_prog_free", "file_alloc_security", "file_free_security", "sk_alloc_security",
    "sk_free_security", "task_free", "bdev_alloc_security", "bdev_free_security",
})
"""Hooks whose pointer arguments are not trusted (untrusted_lsm_hooks: objects being set up or torn
down); at every other hook they are (bpf_lsm_is_trusted)."""
EXTRA_HELPERS = frozenset({Helper.SPIN_LOCK, Helper.SPIN_UNLOCK})
"""Helpers bpf_lsm_func_proto adds to the tracing ones that bpfkit has prototypes for (the
inode/sk storage, bprm_opts_set and ima helpers are not modelled: refused as unknown)."""


def hook_name(attach_to: str) -> str:
    """The hook of an attach target given as HOOK (SEC("lsm/HOOK")) or as bpf_lsm_HOOK."""
    return attach_to[len(HOOK_PREFIX):] if attach_to.startswith(HOOK_PREFIX) else attach_to


def check_program(attach: AttachType | None, gpl: bool) -> None:
    """What the kernel checks of an LSM program before looking at its code: its expected attach type
    (bpf_prog_load_check_attach) and license (bpf_lsm_verify_prog)."""
    if attach == AttachType.LSM_CGROUP:
        raise Refusal(-1, "bpfkit's verifier does not model LSM programs attached as LSM_CGROUP",
                      "it models BPF_LSM_MAC programs (SEC(\"lsm/HOOK\")); load the program in the kernel")
    if attach != AttachType.LSM_MAC:
        raise Refusal(-1, f"LSM programs need expected attach type BPF_LSM_MAC, not "
                          f"{attach.name if attach is not None else 'none'}",
                      "load it from an object section SEC(\"lsm/HOOK\") or pass "
                      "expected_attach_type=AttachType.LSM_MAC")
    if not gpl:
        raise Refusal(-1, "LSM programs must have a GPL compatible license",
                      "declare a GPL-compatible license (char _license[] SEC(\"license\") = \"GPL\")")


def hook_proto(btf: Any, attach_to: str) -> FuncProto:
    """The prototype of `bpf_lsm_HOOK` in the target BTF; refused when the hook is unknown or BPF may
    not attach to it."""
    hook = hook_name(attach_to)
    if not hook:
        raise Refusal(-1, "the program names no LSM hook", "load it from an object section such as "
                                                          "SEC(\"lsm/file_open\") or pass attach_to")
    from bpfkit.vm.verifier.btfmem import find_func, func_proto  # btfmem imports this module

    name = HOOK_PREFIX + hook
    func = find_func(btf, name, Refusal(-1, f"attach target {name!r} is not an LSM hook in the kernel's BTF",
                                        f"check the hook name of SEC(\"lsm/{hook}\"): the kernel's LSM hooks "
                                        f"are the functions {HOOK_PREFIX}* of its BTF"))
    if hook in NOT_HOOKS:
        raise Refusal(-1, f"attach_btf_id points to wrong type name {name}",
                      f"{name} is a function of the BPF LSM itself, not an LSM hook")
    if hook in DISABLED_HOOKS:
        raise Refusal(-1, f"attach_btf_id points to disabled hook {name}",
                      "BPF programs may not attach to this hook: its return convention is not 0/-errno")
    return func_proto(btf, func)


def ret_range(proto: FuncProto | None, attach_to: str) -> tuple[int, int] | None:
    """The values the program may return at this hook (bpf_lsm_get_retval_range); None for a void
    hook, whose return value is ignored."""
    if proto is None or proto.return_type_id == 0:
        return None
    return (0, 1) if hook_name(attach_to) in BOOL_HOOKS else (-MAX_ERRNO, 0)


def trusted_args(attach_to: str) -> bool:
    """Whether the hook's pointer arguments are trusted (bpf_lsm_is_trusted)."""
    return hook_name(attach_to) not in UNTRUSTED_HOOKS


def is_retval_slot(proto: FuncProto, off: int) -> bool:
    """Whether a context read at `off` reads the hook's return value so far (the slot past the last
    argument)."""
    return off // 8 == len(proto.params)


def retval_value(loaded: Reg, rng: tuple[int, int]) -> Reg:
    """The return value read from the context: known to be in the hook's range, on its low 32 bits
    and as a whole (the kernel's __mark_reg_s32_range on the loaded register)."""
    lo, hi = rng
    b = loaded.b
    b = replace(b, s32_min=max(b.s32_min, lo), s32_max=min(b.s32_max, hi), smin=max(b.smin, lo),
                smax=min(b.smax, hi))
    return replace(loaded, b=sync(b))


@record
class CtxRange:
    """A context value the verifier took to lie in [`lo`, `hi`] because the kernel guarantees it: the
    signed `size`-byte little-endian value at context offset `offset` (`what` names it). A run of the
    verified program must pass a context that keeps it (the VM refuses others before running)."""

    offset: int
    size: int
    lo: int
    hi: int
    what: str


def ctx_ranges(proto: FuncProto | None, attach_to: str) -> tuple[CtxRange, ...]:
    """The context values an LSM program may rely on: at an int hook, its return value so far (the
    u64 slot past the last argument) in the hook's range; none at a void hook."""
    rng = ret_range(proto, attach_to)
    if proto is None or rng is None:
        return ()
    return (CtxRange(8 * len(proto.params), 8, rng[0], rng[1],
                     f"the return value so far of LSM hook {hook_name(attach_to)}"),)


def within_32(reg: Reg, rng: tuple[int, int]) -> bool:
    """Whether r0's low 32 bits, as signed, lie in `rng` (check_return_code's 32-bit check)."""
    lo, hi = rng
    return lo <= reg.b.s32_min and reg.b.s32_max <= hi


def helper_allowed(helper_types: frozenset[ProgType], iter_only: bool, helper: int) -> bool:
    """Whether an LSM program may call a helper: those of tracing programs (available to TRACING in
    bpfkit's table, iterator-only ones excepted) and `EXTRA_HELPERS`."""
    return (ProgType.TRACING in helper_types and not iter_only) or helper in EXTRA_HELPERS

