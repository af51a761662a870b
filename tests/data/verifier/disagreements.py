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
    "stack_var_write_over_spill": (
        "a store at a variable offset over part of a spilled register: the kernel still reads the "
        "spill's other bytes (as a number); bpfkit makes them unreadable, as the store may have broken "
        "the spill and it does not track what remains"),
    "tp_btf_task_unchecked": (
        "the kernel knows which tracepoint arguments may be NULL (a table in kernel/bpf/btf.c) and "
        "trusts the others; bpfkit does not have that table and makes every pointer argument of a "
        "tp_btf program be checked against NULL"),
    "stack_var_read_uninit": "as uninit_stack_read, through a variable offset",
    "stack_var_helper_mem_uninit": "as map_update_uninit_value, through a variable stack offset",
    "bloom_peek_uninit": (
        "the kernel types bpf_map_peek_elem's buffer as written by the helper (MEM_UNINIT) for every map "
        "type; a bloom filter's peek reads it, so bpfkit wants the bytes written (the privileged kernel "
        "accepts unwritten stack bytes anyway)"),
    "snprintf_px": (
        "the kernel accepts %pK %px %ps %pS %pB %pks %pus in bpf_snprintf formats; bpfkit's VM does not "
        "format them (it prints %p, %pI4 %pi4 %pI6 %pi6), so bpfkit's verifier refuses them"),
    "trace_vprintk_uninit_fmt": "as map_update_uninit_value: the format bytes were never written",
}

OBJECT_DISAGREEMENTS: dict[str, str] = {}
"""Programs of tests/data/obj bpfkit refuses and the kernel loads: object:program -> why."""
