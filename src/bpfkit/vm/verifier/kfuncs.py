"""Kernel function calls (kfuncs, BPF_PSEUDO_KFUNC_CALL) and kernel symbols (`__ksym` lddw).

A kfunc is named by its BTF id in the target BTF (or, in an object not yet loaded, by the extern's
name), and its prototype comes from that BTF. What BTF does not say (the KF_* flags, which program
types may call it, special arguments and returns) bpfkit knows only for the kfuncs in `KFUNCS`, facts
from the kernel's registration (kernel/bpf/helpers.c, common_btf_ids: every program type); any other
kfunc is refused, as is a call from a non-GPL program (the kernel's rule).
"""

from __future__ import annotations

import enum
from typing import Any

from bpfkit._records import record
from bpfkit.btf.types import Func, FuncProto, Int, Struct, Union, Var
from bpfkit.errors import BtfError
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import PseudoSrc
from bpfkit.vm.verifier.btfmem import TRUSTED, btf_pointer, need_btf, skip_modifiers
from bpfkit.vm.verifier.cfg import Op
from bpfkit.vm.verifier.env import Env
from bpfkit.vm.verifier.errors import Refusal
from bpfkit.vm.verifier.state import NOT_INIT, Reg, RegType, State, scalar


class Special(enum.Enum):
    """What a known kfunc does beyond its BTF prototype."""

    PLAIN = "plain"
    RCU_LOCK = "rcu_lock"
    RCU_UNLOCK = "rcu_unlock"
    CAST_TO_KERN_CTX = "cast_to_kern_ctx"


@record
class Kfunc:
    name: str
    special: Special = Special.PLAIN
    nargs: int = 0


KFUNCS: dict[str, Kfunc] = {k.name: k for k in (
    Kfunc("bpf_rcu_read_lock", Special.RCU_LOCK),
    Kfunc("bpf_rcu_read_unlock", Special.RCU_UNLOCK),
    Kfunc("bpf_cast_to_kern_ctx", Special.CAST_TO_KERN_CTX, 1),
)}
"""The kfuncs bpfkit's verifier checks (all registered for every program type)."""


def _name(env: Env, op: Op) -> str:
    name = env.kernel_refs.get(op.slot)
    if name is not None:
        return name
    btf = need_btf(env.btf, "a kfunc call")
    try:
        t = btf.type_by_id(op.insn.imm)
    except (BtfError, IndexError, KeyError):
        t = None
    if not isinstance(t, Func):
        raise Refusal(-1, f"kernel btf_id {op.insn.imm} is not a function",
                      "the call's imm must be a FUNC's id in the kernel's BTF")
    return t.name


def _proto(btf: Any, name: str) -> FuncProto:
    for t in btf.find_all(name, Func):
        proto = btf.type_by_id(t.type_id)
        if isinstance(proto, FuncProto):
            return proto
    raise Refusal(-1, f"cannot find kernel function {name} in the kernel's BTF",
                  "the target kernel has no such kfunc: check the name")


def kern_ctx_type(btf: Any, prog_type: ProgType | None) -> int:
    """The kernel struct behind a program type's UAPI context (`struct bpf_ctx_convert`)."""
    if prog_type is None:
        raise Refusal(-1, "raw-memory programs have no kernel context", "pass a program type")
    try:
        conv = btf.find("bpf_ctx_convert", Struct)
        member = conv.member(f"BPF_PROG_TYPE_{prog_type.name}_kern")
    except (BtfError, KeyError, LookupError):
        raise Refusal(-1, "kern ctx type not found", f"the kernel's BTF has no context type for "
                                                     f"{prog_type.name}") from None
    sid, t = skip_modifiers(btf, member.type_id)
    if not isinstance(t, (Struct, Union)):
        raise Refusal(-1, f"kern ctx type id {sid} is not a struct",
                      "bpf_cast_to_kern_ctx works on programs whose kernel context is a struct")
    return sid


def check_kfunc_call(env: Env, st: State, op: Op, gpl: bool) -> None:
    """Check a kfunc call and apply its effects (check_kfunc_call)."""
    insn = op.insn
    if insn.off:
        raise Refusal(-1, "bpfkit's verifier knows kfuncs of vmlinux only (module BTF fd index "
                          f"{insn.off})", "load the program in the kernel to check module kfuncs")
    if not env.jit:
        raise Refusal(-1, "JIT is required for calling kernel function", "enable the JIT")
    name = _name(env, op)
    btf = need_btf(env.btf, f"the kfunc call {name}")
    if not gpl:
        raise Refusal(-1, "cannot call kernel function from non-GPL compatible program",
                      f"{name} needs a GPL-compatible license")
    known = KFUNCS.get(name)
    if known is None:
        raise Refusal(-1, f"bpfkit's verifier does not know the rules of kfunc {name}",
                      f"it checks: {', '.join(sorted(KFUNCS))}; load the program in the kernel")
    proto = _proto(btf, name)
    if len(proto.params) != known.nargs:
        raise Refusal(-1, f"kfunc {name} has {len(proto.params)} arguments in the kernel's BTF, bpfkit "
                          f"expects {known.nargs}",
                      "the target kernel's kfunc differs from the one bpfkit knows")
    regs = st.regs
    ret: Reg = NOT_INIT
    if known.special is Special.RCU_LOCK:
        if st.rcu:
            raise Refusal(-1, f"nested rcu read lock (kernel function {name})",
                          "call bpf_rcu_read_unlock before taking the lock again")
        st.rcu = True
    elif known.special is Special.RCU_UNLOCK:
        if not st.rcu:
            raise Refusal(-1, f"unmatched rcu read unlock (kernel function {name})",
                          "call bpf_rcu_read_lock first")
        st.rcu = False
    elif known.special is Special.CAST_TO_KERN_CTX:
        r1 = regs[1]
        if r1.type is not RegType.CTX:
            raise Refusal(-1, f"arg#0 expected pointer to ctx, but got {r1.type_name()}",
                          f"pass the program's context (r1 at start) to {name}")
        if r1.off or not (r1.b.is_const and r1.b.value == 0):
            raise Refusal(-1, f"dereference of modified ctx ptr R1 off={r1.off} disallowed",
                          f"pass the context to {name} unmodified")
        ret = btf_pointer(btf, kern_ctx_type(btf, env.prog_type), trust=TRUSTED)
    else:
        ret = _plain_return(btf, proto)
    for r in range(1, 6):
        regs[r] = NOT_INIT
    regs[0] = ret


def _plain_return(btf: Any, proto: FuncProto) -> Reg:
    if proto.return_type_id == 0:
        return NOT_INIT
    _, t = skip_modifiers(btf, proto.return_type_id)
    if isinstance(t, Int):
        return scalar()
    raise Refusal(-1, "bpfkit's verifier does not model this kfunc's return type", "load it in the kernel")


def ksym_load(env: Env, op: Op) -> Reg:
    """An lddw of a `__ksym` kernel variable (check_pseudo_btf_id): typeless ones hold an address the
    loader patches in (a number bpfkit does not know); typed ones are not modelled."""
    name = env.kernel_refs.get(op.slot)
    if op.insn.src == PseudoSrc.NONE:
        return scalar()  # typeless: the symbol's address
    what = repr(name) if name else f"BTF id {op.insn.imm & 0xFFFFFFFF}"
    if env.btf is not None and name is None:
        try:
            t = env.btf.type_by_id(op.insn.imm & 0xFFFFFFFF)
            if isinstance(t, Var):
                what = repr(t.name)
        except (BtfError, IndexError, KeyError):
            pass
    raise Refusal(op.slot, f"bpfkit's verifier does not check loads of typed kernel variables ({what})",
                  "load the program in the kernel to verify it")

