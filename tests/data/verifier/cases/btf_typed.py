"""Cases that need the running kernel's BTF: kernel functions (kfuncs), task iterators (BTF-typed
context) and fentry/fexit/tp_btf programs."""

from __future__ import annotations

from bpfkit.uapi.enums import AttachType, ProgType

from .common import PROG_ARRAY, TC, C, Case

RCU = ("bpf_rcu_read_lock", "bpf_rcu_read_unlock")


def ITER(name: str, text: str, accept: bool, reason: str, error: str = "") -> Case:
    """A case run as an iterator over tasks (SEC("iter/task")): its context is struct bpf_iter__task."""
    return Case(name, text, accept, reason, ProgType.TRACING, error=error, attach=AttachType.TRACE_ITER,
                attach_to="task")


def TRACING(name: str, text: str, accept: bool, reason: str, attach: AttachType, attach_to: str,
            error: str = "") -> Case:
    """A BTF-typed tracing case (fentry/fexit on a kernel function, tp_btf on a tracepoint)."""
    return Case(name, text, accept, reason, ProgType.TRACING, error=error, attach=attach, attach_to=attach_to)


FENTRY, FEXIT, TP_BTF = AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.TRACE_RAW_TP


def LSM(name: str, text: str, accept: bool, reason: str, hook: str = "file_open", error: str = "",
        license: str = "GPL", attach: AttachType | None = AttachType.LSM_MAC) -> Case:
    """A BPF LSM case (SEC("lsm/HOOK")): its context is the arguments of bpf_lsm_HOOK as u64s, then the
    hook's return value so far. file_open(struct file *file) unless `hook` says otherwise."""
    return Case(name, text, accept, reason, ProgType.LSM, error=error, attach=attach, attach_to=hook,
                license=license)


CASES: tuple[Case, ...] = (
    # --- kernel functions (kfuncs) ----------------------------------------------------------------
    C("kfunc_rcu_lock_unlock", "call kfunc(0)\ncall kfunc(1)\nr0 = 0\nexit", True,
      "an RCU read section opened and closed", kfuncs=RCU),
    C("kfunc_rcu_unmatched_unlock", "call kfunc(1)\nr0 = 0\nexit", False,
      "unlocking an RCU read section that was never opened", kfuncs=RCU, error="unmatched rcu read unlock"),
    C("kfunc_rcu_missing_unlock", "call kfunc(0)\nr0 = 0\nexit", False,
      "the program ends inside an RCU read section", kfuncs=RCU, error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_rcu_unlock_one_path", """
        call kfunc(0)
        call bpf_get_prandom_u32
        if r0 > 5 goto +1
        call kfunc(1)
        r0 = 0
        exit""", False, "one path leaves the RCU read section open", kfuncs=RCU,
      error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_rcu_nested", "call kfunc(0)\ncall kfunc(0)\ncall kfunc(1)\ncall kfunc(1)\nr0 = 0\nexit", False,
      "RCU read sections do not nest", kfuncs=RCU,
      error="nested rcu read lock"),
    C("kfunc_rcu_tail_call", """
        r6 = r1
        call kfunc(0)
        r1 = r6
        r2 = map[id:0]
        r3 = 0
        call bpf_tail_call
        call kfunc(1)
        r0 = 0
        exit""", False, "a tail call would leave the RCU read section open", kfuncs=RCU,
      maps=(PROG_ARRAY,), error="inside bpf_rcu_read_lock-ed region"),
    C("kfunc_non_gpl", "call kfunc(0)\ncall kfunc(1)\nr0 = 0\nexit", False,
      "kernel functions are for GPL-compatible programs", kfuncs=RCU, license="MIT",
      error="non-GPL compatible program"),
    C("kfunc_kern_ctx_half_pointer", """
        call kfunc(0)
        r1 = *(u64 *)(r0 + 0)
        r0 = *(u32 *)(r0 + 0)
        r0 = 0
        exit""", False, "bytes 0..3 of struct sk_buff are half of the pointer `next`", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="cannot access ptr member next"),
    C("kfunc_kern_ctx_pointer_chain", """
        call kfunc(0)
        r1 = *(u64 *)(r0 + 0)
        r1 = *(u64 *)(r1 + 8)
        r0 = 0
        exit""", True, "sk_buff->next->prev: a pointer member read whole is a typed kernel pointer",
      prog_type=TC, kfuncs=("bpf_cast_to_kern_ctx",)),
    C("kfunc_kern_ctx_write", """
        call kfunc(0)
        r1 = 0
        *(u64 *)(r0 + 0) = r1
        r0 = 0
        exit""", False, "the kernel's sk_buff is read-only here", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="only read is supported"),
    C("kfunc_kern_ctx_beyond", """
        call kfunc(0)
        r0 = *(u64 *)(r0 + 30000)
        r0 = 0
        exit""", False, "the offset is past the end of struct sk_buff", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="access beyond struct"),
    C("kfunc_cast_not_ctx", "r1 = r10\ncall kfunc(0)\nr0 = 0\nexit", False,
      "bpf_cast_to_kern_ctx takes the context, not a stack pointer", prog_type=TC,
      kfuncs=("bpf_cast_to_kern_ctx",), error="expected pointer to ctx"),
    C("kfunc_not_for_xdp", "r1 = 0\ncall kfunc(0)\nr0 = 0\nexit", False,
      "bpfkit does not know the rules of bpf_task_acquire (it acquires a reference), so refuses it; the "
      "kernel refuses this call too (NULL passed to its trusted argument)",
      kfuncs=("bpf_task_acquire",), error="does not know the rules of kfunc"),
    # --- iterators (BTF-typed context) -----------------------------------------------------------------
    ITER("iter_task_checked", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r0 = *(u32 *)(r2 + 0)
        out:
        r0 = 0
        exit""", True, "ctx->task is NULL at the end of the iteration: checked first"),
    ITER("iter_task_unchecked", "r2 = *(u64 *)(r1 + 8)\nr0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit", False,
      "ctx->task may be NULL", error="invalid mem access"),
    ITER("iter_seq_printf", """
        r1 = *(u64 *)(r1 + 0)
        r1 = *(u64 *)(r1 + 0)
        r2 = 0x0a6968
        *(u64 *)(r10 - 8) = r2
        r2 = r10
        r2 += -8
        r3 = 4
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        r0 = 0
        exit""", True, "ctx->meta->seq is the seq_file bpf_seq_printf writes to; no arguments (NULL, 0)"),
    ITER("iter_seq_printf_task", """
        r6 = r1
        r1 = *(u64 *)(r6 + 8)
        if r1 == 0 goto out
        r2 = 0x0a6968
        *(u64 *)(r10 - 8) = r2
        r2 = r10
        r2 += -8
        r3 = 4
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        out:
        r0 = 0
        exit""", False, "a task_struct is not a seq_file", error="seq_file is expected"),
    ITER("iter_ptr_member_partial", "r1 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r1 + 0)\nr0 = 0\nexit", False,
      "half of the pointer meta->seq", error="cannot access ptr member seq"),
    ITER("iter_ctx_misaligned", "r0 = *(u32 *)(r1 + 4)\nr0 = 0\nexit", False,
      "the context is an array of u64 arguments", error="not multiple of 8"),
    ITER("iter_ctx_write", "r2 = 0\n*(u64 *)(r1 + 8) = r2\nr0 = 0\nexit", False,
      "an iterator's context is read-only", error="invalid bpf_context access"),
    ITER("iter_task_write", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r3 = 0
        *(u32 *)(r2 + 0) = r3
        out:
        r0 = 0
        exit""", False, "kernel objects are read-only to an iterator", error="only read is supported"),
    ITER("iter_ret_2", "r0 = 2\nexit", False, "an iterator returns 0 or 1",
      error="should have been in [0, 1]"),
    # --- fentry / fexit / tp_btf (this kernel refuses to load them: checked by bpfkit only) ------------
    TRACING("fentry_arg", "r0 = *(u64 *)(r1 + 0)\nr0 = 0\nexit", True,
            "bpf_fentry_test1(int a): ctx[0] is a", FENTRY, "bpf_fentry_test1"),
    TRACING("fentry_no_such_arg", "r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit", False,
            "bpf_fentry_test1 has one argument", FENTRY, "bpf_fentry_test1", error="2-th argument"),
    TRACING("fentry_ret_1", "r0 = 1\nexit", False, "fentry programs return 0", FENTRY, "bpf_fentry_test1",
            error="should have been in [0, 0]"),
    TRACING("fexit_ret_value", "r0 = *(u64 *)(r1 + 8)\nr0 = 0\nexit", True,
            "fexit sees the return value after the arguments", FEXIT, "bpf_fentry_test1"),
    TRACING("fentry_no_target", "r0 = 0\nexit", False, "there is no such kernel function", FENTRY,
            "bpfkit_no_such_function", error="is not a function in the kernel's BTF"),
    TRACING("tp_btf_task_checked", """
        r2 = *(u64 *)(r1 + 8)
        if r2 == 0 goto out
        r0 = *(u32 *)(r2 + 0)
        out:
        r0 = 0
        exit""", True, "sched_switch(preempt, prev, next, prev_state): prev read after a NULL check",
            TP_BTF, "sched_switch"),
    TRACING("tp_btf_task_unchecked", "r2 = *(u64 *)(r1 + 8)\nr0 = *(u32 *)(r2 + 0)\nr0 = 0\nexit", False,
            "bpfkit treats every pointer argument of a tracepoint as possibly NULL", TP_BTF, "sched_switch",
            error="invalid mem access"),
    C("seq_printf_in_xdp", """
        r1 = 0
        r2 = r10
        r3 = 0
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        r0 = 0
        exit""", False, "bpf_seq_printf is for iterators", error="cannot use helper"),
    # --- BPF LSM (this kernel refuses to load them, and the project never does: bpfkit only) ------------
    LSM("lsm_read_file_arg", "r2 = *(u64 *)(r1 + 0)\nr0 = *(u32 *)(r2 + 4)\nr0 = 0\nexit", True,
        "file_open(struct file *file): a hook's pointer argument is trusted, read without a NULL check "
        "(file->f_mode)"),
    LSM("lsm_return_zero", "r0 = 0\nexit", True, "0 allows the operation"),
    LSM("lsm_return_eperm", "r0 = -1\nexit", True, "-EPERM denies it"),
    LSM("lsm_return_max_errno", "r0 = -4095\nexit", True, "-MAX_ERRNO is the lowest errno",
        hook="file_permission"),
    LSM("lsm_return_below_errno", "r0 = -4096\nexit", False, "-4096 is not an errno",
        hook="file_permission", error="smin=-4096 smax=-4096 should have been in [-4095, 0]"),
    LSM("lsm_return_one", "r0 = 1\nexit", False, "an int hook's program returns 0 or a negative errno",
        error="should have been in [-4095, 0]"),
    LSM("lsm_return_unbounded", "call bpf_get_prandom_u32\nexit", False,
        "a random u32 may be positive", error="should have been in [-4095, 0]"),
    LSM("lsm_return_32bit", "r0 = 0x100000000 ll\nexit", True,
        "the return value is checked on its low 32 bits (0 here)"),
    LSM("lsm_pass_on_retval", "r0 = *(u64 *)(r1 + 8)\nexit", True,
        "ctx[1] of file_open is the hook's return value so far, known to be in [-4095, 0]"),
    LSM("lsm_pass_on_retval_plus_one", "r0 = *(u64 *)(r1 + 8)\nr0 += 1\nexit", False,
        "the return value so far plus one may be 1", error="should have been in [-4095, 0]"),
    LSM("lsm_no_such_arg", "r0 = *(u64 *)(r1 + 16)\nr0 = 0\nexit", False,
        "file_open has one argument, then the return value", error="3-th argument"),
    LSM("lsm_ctx_write", "r2 = 0\n*(u64 *)(r1 + 0) = r2\nr0 = 0\nexit", False,
        "an LSM program's context is read-only", error="invalid bpf_context access"),
    LSM("lsm_void_hook_any_return", "r0 = 12345\nexit", True,
        "file_free_security returns void: the program's return value is ignored", hook="file_free_security"),
    LSM("lsm_void_hook_r0_unset", "exit", True, "a void hook's program need not set r0",
        hook="bprm_committed_creds"),
    LSM("lsm_bool_hook_one", "r0 = 1\nexit", True, "inode_xattr_skipcap returns 0 or 1",
        hook="inode_xattr_skipcap"),
    LSM("lsm_bool_hook_errno", "r0 = -1\nexit", False, "inode_xattr_skipcap returns 0 or 1, not an errno",
        hook="inode_xattr_skipcap", error="should have been in [0, 1]"),
    LSM("lsm_tracing_helpers", """
        call bpf_get_current_pid_tgid
        call bpf_get_current_task
        call bpf_ktime_get_ns
        r0 = 0
        exit""", True, "LSM programs have the tracing helpers"),
    LSM("lsm_skb_helper", """
        r2 = 0
        r3 = r10
        r3 += -8
        r4 = 8
        call bpf_skb_load_bytes
        r0 = 0
        exit""", False, "bpf_skb_load_bytes is for socket buffers", error="cannot use helper"),
    LSM("lsm_seq_printf", """
        r1 = 0
        r2 = r10
        r3 = 0
        r4 = 0
        r5 = 0
        call bpf_seq_printf
        r0 = 0
        exit""", False, "bpf_seq_printf is for iterators", error="cannot use helper"),
    LSM("lsm_non_gpl", "r0 = 0\nexit", False, "LSM programs need a GPL-compatible license", license="MIT",
        error="LSM programs must have a GPL compatible license"),
    LSM("lsm_unknown_hook", "r0 = 0\nexit", False, "there is no such LSM hook", hook="bpfkit_no_such_hook",
        error="is not an LSM hook"),
    LSM("lsm_disabled_hook", "r0 = 0\nexit", False, "BPF may not attach to vm_enough_memory",
        hook="vm_enough_memory", error="disabled hook"),
    LSM("lsm_not_a_hook", "r0 = 0\nexit", False, "bpf_lsm_verify_prog is the BPF LSM's code, not a hook",
        hook="verify_prog", error="wrong type name"),
    LSM("lsm_no_attach_type", "r0 = 0\nexit", False, "an LSM program is loaded as BPF_LSM_MAC",
        attach=None, error="expected attach type BPF_LSM_MAC"),
)
