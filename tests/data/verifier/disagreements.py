"""Cases bpfkit's verifier refuses and the kernel (loading as root) accepts, with the reason.

bpfkit may be stricter than the kernel, never more permissive. Each entry: case name -> why.
"""

from __future__ import annotations

DISAGREEMENTS: dict[str, str] = {
    "uninit_stack_read": (
        "a privileged kernel (CAP_PERFMON: env->allow_uninit_stack) lets programs read stack bytes "
        "never written; bpfkit always refuses, as unprivileged loading does, because the value read "
        "is whatever the stack held"),
    "stack_partial_init": "as uninit_stack_read: four of the eight bytes read were never written",
    "map_update_uninit_value": (
        "as uninit_stack_read, for memory passed to a helper: the privileged kernel accepts "
        "uninitialised stack bytes as the map value"),
    "ptr_minus_ptr_mixed": (
        "the privileged kernel lets any two pointers be subtracted (giving an unknown scalar); bpfkit "
        "only subtracts pointers of the same type, where the difference means something"),
}

OBJECT_DISAGREEMENTS: dict[str, str] = {
    "global_data.o:global_data": (
        "calls bpf_strncmp, whose constant-string argument (a frozen .rodata map) bpfkit's verifier "
        "does not model; it refuses helpers it has no prototype for"),
    "iter.o:dump_task": "an iterator (BPF_PROG_TYPE_TRACING): contexts typed by kernel BTF are not modelled",
    "ksym_kfunc.o:ksym_kfunc": "calls kfuncs (bpf_rcu_read_lock): bpfkit cannot check kernel functions",
    "ksym_typeless.o:ksym_typeless": "loads the address of a kernel symbol (_stext)",
    "maps_btf.o:maps_btf": "looks up an array of maps: map-in-map lookups are not modelled",
}
"""Programs of tests/data/obj bpfkit refuses and the kernel loads: object:program -> why."""
