"""Cases on helper calls and their arguments, constant strings (format strings in read-only maps)
and maps of maps."""

from __future__ import annotations

from bpfkit._records import replace
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType

from .common import CG_SKB, HASH, KEY0, KEY32, KPROBE, PROG_ARRAY, TC, C, Case

PERF = MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, 2, name="events")
QUEUE = MapSpec(MapType.QUEUE, 0, 8, 16, name="queue")
STACK = MapSpec(MapType.STACK, 0, 8, 16, name="stack")
LPM = MapSpec(MapType.LPM_TRIE, 8, 8, 16, flags=1, name="lpm")
"""An LPM trie over IPv4: key = u32 prefix length + 4 address bytes (BPF_F_NO_PREALLOC)."""
BLOOM = MapSpec(MapType.BLOOM_FILTER, 0, 8, 16, name="bloom")
CG_STORAGE = MapSpec(MapType.CGROUP_STORAGE, 16, 8, 0, name="cs")
CG_STORAGE_PERCPU = MapSpec(MapType.PERCPU_CGROUP_STORAGE, 16, 8, 0, name="pcs")
INNER = MapSpec(MapType.HASH, 4, 8, 4, name="inner")
OUTER = MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 2, name="outer", inner_map=INNER)
OUTER_HASH = MapSpec(MapType.HASH_OF_MAPS, 4, 4, 2, name="outer_h", inner_map=INNER)
_STR = (bytes(4), b"bpfkit\0\0abcdefgh")
RODATA = MapSpec(MapType.ARRAY, 4, 16, 1, flags=0x80, name="rodata", contents=(_STR,), freeze=True)
"""A frozen read-only map (.rodata): "bpfkit" at 0, then "abcdefgh" without a NUL at 8."""
_FMT = (bytes(4), b"n=%d\0\0\0\0%p\0\0\0\0\0\0%d %d\0".ljust(32, b"\0"))
FMT = MapSpec(MapType.ARRAY, 4, 32, 1, flags=0x80, name="fmt", contents=(_FMT,), freeze=True)
"""Formats in a frozen read-only map: "n=%d" at 0, "%p" at 8, "%d %d" at 16."""
_FMT2 = b"%s|%pI4|%pi4|[%s]\0".ljust(24, b"\0") + b"%sx\0".ljust(8, b"\0") + b"%px\0".ljust(8, b"\0") \
    + b"%.2d\0".ljust(8, b"\0") + b"%pI6 %c\0" + b"n=%d\0".ljust(8, b"\0")
FMT2 = MapSpec(MapType.ARRAY, 4, 64, 1, flags=0x80, name="fmt2", contents=((bytes(4), _FMT2),), freeze=True)
"""More formats: "%s|%pI4|%pi4|[%s]" at 0, "%sx" at 24, "%px" at 32, "%.2d" at 40, "%pI6 %c" at 48,
"n=%d" at 56."""
RO_UNFROZEN = MapSpec(MapType.ARRAY, 4, 16, 1, flags=0x80, name="ro_unfrozen", contents=(_STR,))

SNPRINTF_ARGS = """
    r1 = 42
    *(u64 *)(r10 - 8) = r1
    {buf}
    r2 = {size}
    r3 = map[id:0][0]+{fmt}
    r4 = r10
    r4 += -8
    r5 = {data}
    call bpf_snprintf
    r0 = 0
    exit"""
SNPRINTF4 = """
    r1 = r10
    *(u64 *)(r10 - 8) = r1
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 24) = r1
    *(u64 *)(r10 - 32) = r1
    r1 = r10
    r1 += -64
    r2 = 32
    r3 = map[id:0][0]+{fmt}
    r4 = r10
    r4 += -32
    r5 = {data}
    call bpf_snprintf
    r0 = 0
    exit"""
"""bpf_snprintf with four u64 arguments (stack addresses) at r10-32, `data` bytes of them used."""


CASES: tuple[Case, ...] = (
    # --- helpers ----------------------------------------------------------------------------------
    C("unknown_helper", "call 100000\nr0 = 0\nexit", False, "there is no helper 100000",
      error="unknown func"),
    C("probe_read_in_xdp", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall bpf_probe_read\nr0 = 0\nexit",
      False, "bpf_probe_read is for tracing programs", error="cannot use helper"),
    C("probe_read_kernel", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\ncall bpf_probe_read_kernel\n"
      "r0 = *(u64 *)(r10 - 8)\nexit", True, "the helper initialises the 8 stack bytes", prog_type=KPROBE),
    C("probe_read_var_size", """
        call bpf_get_prandom_u32
        r2 = r0
        r2 &= 15
        r1 = r10
        r1 += -16
        r3 = 0
        call bpf_probe_read_kernel
        r0 = 0
        exit""", True, "a size in [0, 15] fits the 16 bytes", prog_type=KPROBE),
    C("probe_read_size_unbounded", """
        call bpf_get_prandom_u32
        r2 = r0
        r1 = r10
        r1 += -16
        r3 = 0
        call bpf_probe_read_kernel
        r0 = 0
        exit""", False, "an unbounded size", prog_type=KPROBE, error="R2"),
    C("probe_read_too_big", "r1 = r10\nr1 += -8\nr2 = 16\nr3 = 0\ncall bpf_probe_read_kernel\n"
      "r0 = 0\nexit", False, "16 bytes into 8 bytes of stack", prog_type=KPROBE,
      error="invalid indirect access to stack"),
    C("map_update_ok", KEY0 + """
        r3 = r10
        r3 += -24
        r4 = 0
        *(u64 *)(r10 - 24) = r4
        *(u64 *)(r10 - 16) = r4
        call bpf_map_update_elem
        r0 = 0
        exit""", True, "key and the 16-byte value are initialised on the stack", maps=(HASH,)),
    C("map_update_uninit_value", KEY0 + """
        r3 = r10
        r3 += -24
        r4 = 0
        call bpf_map_update_elem
        r0 = 0
        exit""", False, "the value bytes were never written", maps=(HASH,),
      error="invalid indirect read from stack"),
    C("map_key_too_short", """
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        r2 = r10
        r2 += -4
        r1 = map[id:0]
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the hash key is 8 bytes, only 4 are on the stack", maps=(HASH,),
      error="invalid indirect access to stack"),
    C("map_key_not_pointer", "r1 = map[id:0]\nr2 = 0\ncall bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "the key must be a pointer", maps=(HASH,), error="R2 type=scalar"),
    C("map_arg_not_map", KEY0 + "r1 = r10\ncall bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "r1 must be a map", maps=(HASH,), error="expected=map_ptr"),
    C("map_delete", KEY0 + "call bpf_map_delete_elem\nr0 = 0\nexit", True,
      "delete takes the map and a key", maps=(HASH,)),
    C("get_current_comm", "r1 = r10\nr1 += -16\nr2 = 16\ncall bpf_get_current_comm\n"
      "r0 = *(u64 *)(r10 - 16)\nexit", True, "the helper writes 16 stack bytes", prog_type=KPROBE),
    C("trace_printk", """
        r1 = 680997
        *(u32 *)(r10 - 4) = r1
        r1 = r10
        r1 += -4
        r2 = 4
        r3 = 7
        call bpf_trace_printk
        r0 = 0
        exit""", True, "a 4-byte format string on the stack", prog_type=KPROBE),
    C("trace_printk_non_gpl", """
        r1 = 680997
        *(u32 *)(r10 - 4) = r1
        r1 = r10
        r1 += -4
        r2 = 4
        call bpf_trace_printk
        r0 = 0
        exit""", False, "bpf_trace_printk is GPL-only", prog_type=KPROBE, license="Proprietary",
      error="GPL-restricted"),
    C("trace_printk_zero_size", "r1 = r10\nr1 += -8\nr2 = 0\ncall bpf_trace_printk\nr0 = 0\nexit",
      False, "ARG_CONST_SIZE must be at least 1", prog_type=KPROBE, error="zero-sized"),
    C("tail_call", "r2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit", True,
      "a tail call through a program array", maps=(PROG_ARRAY,)),
    C("tail_call_hash", "r2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit", False,
      "tail calls need a program array", maps=(HASH,), error="cannot pass map_type 1"),
    C("tail_call_modified_ctx", "r1 += 8\nr2 = map[id:0]\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit",
      False, "the ctx must be passed unmodified", maps=(PROG_ARRAY,), error="modified ctx"),
    C("perf_event_output", """
        r2 = 0
        *(u64 *)(r10 - 8) = r2
        r4 = r10
        r4 += -8
        r2 = map[id:0]
        r3 = 4294967295 ll
        r5 = 8
        call bpf_perf_event_output
        r0 = 0
        exit""", True, "8 initialised bytes to the current CPU's perf buffer", maps=(PERF,),
      prog_type=KPROBE),
    C("lookup_on_prog_array", KEY32.replace("r1 = 0\n", "r1 = 0\n", 1) + "r0 = 0\nexit", False,
      "program arrays are only for tail calls", maps=(PROG_ARRAY,), error="cannot pass map_type 3"),
    C("skb_load_bytes", """
        r2 = 0
        r3 = r10
        r3 += -8
        r4 = 8
        call bpf_skb_load_bytes
        r0 = *(u64 *)(r10 - 8)
        r0 = 0
        exit""", True, "copies 8 packet bytes to the stack", prog_type=TC),
    C("queue_push_pop", """
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 0
        call bpf_map_push_elem
        r2 = r10
        r2 += -16
        r1 = map[id:0]
        call bpf_map_pop_elem
        r0 = 0
        exit""", True, "push reads 8 bytes, pop writes 8 bytes", maps=(QUEUE,)),
    C("lookup_on_queue", KEY0 + "call bpf_map_lookup_elem\nr0 = 0\nexit", False,
      "queues have no lookup", maps=(QUEUE,), error="cannot pass map_type 22"),
    C("stack_push_peek", """
        r1 = 1
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 0
        call bpf_map_push_elem
        r2 = r10
        r2 += -16
        r1 = map[id:0]
        call bpf_map_peek_elem
        r0 = *(u64 *)(r10 - 16)
        r0 = 0
        exit""", True, "peek writes the 8-byte top of the stack into the buffer", maps=(STACK,)),
    C("queue_pop_short", "r2 = r10\nr2 += -4\nr1 = map[id:0]\ncall bpf_map_pop_elem\nr0 = 0\nexit", False,
      "pop writes 8 bytes into the top 4 of the stack", maps=(QUEUE,), error="invalid"),
    C("queue_push_on_hash", KEY0 + "r3 = 0\ncall bpf_map_push_elem\nr0 = 0\nexit", False,
      "push is for queues, stacks and bloom filters", maps=(HASH,), error="cannot pass map_type 1"),
    C("lpm_lookup_update", """
        r1 = 32
        *(u32 *)(r10 - 8) = r1
        r1 = 0x0403a8c0
        *(u32 *)(r10 - 4) = r1
        r1 = 7
        *(u64 *)(r10 - 16) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        r3 = r10
        r3 += -16
        r4 = 0
        call bpf_map_update_elem
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "an LPM trie keyed by prefix length and IPv4 address", maps=(LPM,)),
    C("lpm_short_key", """
        r1 = 32
        *(u32 *)(r10 - 4) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the key is 8 bytes; 4 are on the stack", maps=(LPM,), error="invalid"),
    C("lpm_value_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 4)
        out:
        r0 = 0
        exit""", False, "bytes 4..11 of an 8-byte value", maps=(LPM,), error="invalid access to map value"),
    C("lpm_unchecked", "*(u64 *)(r10 - 8) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -8\n"
      "call bpf_map_lookup_elem\nr0 = *(u64 *)(r0 + 0)\nexit", False, "a lookup may miss",
      maps=(LPM,), error="invalid mem access 'map_value_or_null'"),
    C("lpm_push", "*(u64 *)(r10 - 8) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -8\nr3 = 0\n"
      "call bpf_map_push_elem\nr0 = 0\nexit", False, "an LPM trie is no queue", maps=(LPM,),
      error="cannot pass map_type 11"),
    C("bloom_push_peek", """
        r1 = 5
        *(u64 *)(r10 - 8) = r1
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        r3 = 0
        call bpf_map_push_elem
        r1 = map[id:0]
        r2 = r10
        r2 += -8
        call bpf_map_peek_elem
        exit""", True, "add a value to a bloom filter, then test it", maps=(BLOOM,)),
    C("bloom_peek_uninit", "r1 = map[id:0]\nr2 = r10\nr2 += -8\ncall bpf_map_peek_elem\nexit", False,
      "peek on a bloom filter tests the value it is given: those bytes must be written", maps=(BLOOM,),
      error="invalid indirect read from stack"),
    C("bloom_lookup", "r1 = map[id:0]\nr2 = r10\nr2 += -8\n*(u64 *)(r10 - 8) = 0\n"
      "call bpf_map_lookup_elem\nr0 = 0\nexit", False, "bloom filters have no lookup",
      maps=(BLOOM,), error="cannot pass map_type 30"),
    C("bloom_pop", "r1 = map[id:0]\nr2 = r10\nr2 += -8\ncall bpf_map_pop_elem\nr0 = 0\nexit", False,
      "bloom filters have no pop", maps=(BLOOM,), error="cannot pass map_type 30"),
    C("bloom_push_short", "*(u32 *)(r10 - 4) = 0\nr1 = map[id:0]\nr2 = r10\nr2 += -4\nr3 = 0\n"
      "call bpf_map_push_elem\nr0 = 0\nexit", False, "the value is 8 bytes; 4 are on the stack",
      maps=(BLOOM,), error="invalid"),
    C("local_storage", """
        r1 = map[id:0]
        r2 = 0
        call bpf_get_local_storage
        r1 = *(u64 *)(r0 + 0)
        r1 += 1
        *(u64 *)(r0 + 0) = r1
        r0 = 1
        exit""", True, "the cgroup storage value, never NULL", CG_SKB, maps=(CG_STORAGE,)),
    C("local_storage_percpu", """
        r1 = map[id:0]
        r2 = 0
        call bpf_get_local_storage
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r0 = 1
        exit""", True, "this CPU's cgroup storage value", CG_SKB, maps=(CG_STORAGE_PERCPU,)),
    C("local_storage_oob", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\n"
      "r1 = *(u64 *)(r0 + 8)\nr0 = 1\nexit", False, "bytes 8..15 of an 8-byte value", CG_SKB,
      maps=(CG_STORAGE,), error="invalid access to map value"),
    C("local_storage_flags", "r1 = map[id:0]\nr2 = 1\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "the helper cannot fail, so it takes no flags", CG_SKB, maps=(CG_STORAGE,),
      error="doesn't support non-zero flags"),
    C("local_storage_hash", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "bpf_get_local_storage takes a cgroup storage map", CG_SKB, maps=(HASH,),
      error="cannot pass map_type 1"),
    C("local_storage_xdp", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", False,
      "cgroup storage is for cgroup programs", maps=(CG_STORAGE,), error="cannot use helper"),
    C("lookup_on_cgroup_storage", KEY0 + "call bpf_map_lookup_elem\nr0 = 1\nexit", False,
      "programs reach cgroup storage only through bpf_get_local_storage", CG_SKB, maps=(CG_STORAGE,),
      error="cannot pass map_type 19"),
    C("local_storage_two", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr1 = map[id:1]\nr2 = 0\n"
      "call bpf_get_local_storage\nr0 = 1\nexit", False, "one cgroup storage of each type per program",
      CG_SKB, maps=(CG_STORAGE, replace(CG_STORAGE, name="cs2")), error="only one cgroup storage"),
    C("local_storage_both_types", "r1 = map[id:0]\nr2 = 0\ncall bpf_get_local_storage\nr1 = map[id:1]\n"
      "r2 = 0\ncall bpf_get_local_storage\nr0 = 1\nexit", True, "one shared and one per-CPU storage",
      CG_SKB, maps=(CG_STORAGE, CG_STORAGE_PERCPU)),
    # --- constant strings ---------------------------------------------------------------------------
    C("strncmp_const_str", """
        r1 = 0x74696b667062 ll
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+0
        call bpf_strncmp
        r0 = 0
        exit""", True, "the string is in a frozen read-only map and ends with a NUL", maps=(RODATA,)),
    C("strncmp_unterminated", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+8
        call bpf_strncmp
        r0 = 0
        exit""", False, "no NUL between offset 8 and the end of the value", maps=(RODATA,),
      error="string is not zero-terminated"),
    C("strncmp_not_frozen", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = map[id:0][0]+0
        call bpf_strncmp
        r0 = 0
        exit""", False, "a map user space can still change holds no constant", maps=(RO_UNFROZEN,),
      error="does not point to a readonly map"),
    C("strncmp_stack_str", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        r3 = r1
        call bpf_strncmp
        r0 = 0
        exit""", False, "the constant string must be in a map, not on the stack", error="expected=map_value"),
    C("strncmp_var_offset", """
        call bpf_get_prandom_u32
        r0 &= 1
        r3 = map[id:0][0]+0
        r3 += r0
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -8
        r2 = 8
        call bpf_strncmp
        r0 = 0
        exit""", False, "the string's address must be a constant", maps=(RODATA,),
      error="is not a constant address"),
    C("snprintf", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=8), True,
      "\"n=%d\" with one u64 of data, into 16 bytes of stack", maps=(FMT,)),
    C("snprintf_null_buf", SNPRINTF_ARGS.format(fmt=0, buf="r1 = 0", size=0, data=8), True,
      "a NULL buffer of size 0 asks for the length only", maps=(FMT,)),
    C("snprintf_arg_count", SNPRINTF_ARGS.format(fmt=16, buf="r1 = r10\nr1 += -32", size=16, data=8),
      False, "\"%d %d\" takes two u64s, the data holds one", maps=(FMT,), error="Invalid format string"),
    C("snprintf_data_len_4", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=4),
      False, "the data is an array of u64: its size is a multiple of 8", maps=(FMT,),
      error="multiple of 8"),
    C("snprintf_null_buf_size", SNPRINTF_ARGS.format(fmt=0, buf="r1 = 0", size=8, data=8), False,
      "a NULL buffer with a size of 8", maps=(FMT,), error="type=scalar"),
    C("snprintf_non_gpl", SNPRINTF_ARGS.format(fmt=0, buf="r1 = r10\nr1 += -32", size=16, data=8), False,
      "bpf_snprintf is GPL-only", maps=(FMT,), license="MIT", error="GPL"),
    C("snprintf_fewer_conversions", SNPRINTF4.format(fmt=56, data=32), True,
      "\"n=%d\" uses one of four u64s: the kernel only wants no more conversions than arguments",
      maps=(FMT2,)),
    C("snprintf_addresses", SNPRINTF4.format(fmt=0, data=32), True,
      "%s, %pI4 and %pi4 read memory the arguments point to (checked at run time)", maps=(FMT2,)),
    C("snprintf_addresses_short", SNPRINTF4.format(fmt=0, data=24), False,
      "four conversions, three arguments", maps=(FMT2,), error="Invalid format string"),
    C("snprintf_plain_p", SNPRINTF_ARGS.format(fmt=8, buf="r1 = r10\nr1 += -32", size=16, data=8), True,
      "%p followed by the NUL prints the pointer value", maps=(FMT,)),
    C("snprintf_ip6_c", SNPRINTF4.format(fmt=48, data=16), True, "%pI6 then a space and %c",
      maps=(FMT2,)),
    C("snprintf_s_then_letter", SNPRINTF4.format(fmt=24, data=8), False,
      "%s must be followed by the end, a space or punctuation (\"%sx\")", maps=(FMT2,),
      error="Invalid format string"),
    C("snprintf_precision", SNPRINTF4.format(fmt=40, data=8), False,
      "no precision: \"%.2d\" is refused", maps=(FMT2,), error="Invalid format string"),
    C("snprintf_px", SNPRINTF4.format(fmt=32, data=8), False,
      "%px (a raw kernel pointer): bpfkit's VM does not format it", maps=(FMT2,),
      error="Invalid format string"),
    # --- maps of maps ---------------------------------------------------------------------------------
    C("map_in_map_lookup", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", True, "a checked lookup in an array of maps gives an inner map to look up in",
      maps=(OUTER,)),
    C("hash_of_maps_lookup", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 0) = r1
        out:
        r0 = 0
        exit""", True, "the same through a hash of maps, writing the inner value", maps=(OUTER_HASH,)),
    C("map_in_map_unchecked", KEY32 + """
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = 0
        exit""", False, "the outer lookup may find no map: it must be checked before use",
      maps=(OUTER,), error="type=map_value_or_null expected=map_ptr"),
    C("map_in_map_inner_unchecked", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        r0 = *(u64 *)(r0 + 0)
        out:
        r0 = 0
        exit""", False, "the inner lookup's result is a value or NULL like any lookup", maps=(OUTER,),
      error="map_value_or_null"),
    C("map_in_map_inner_oob", KEY32 + """
        if r0 == 0 goto out
        r1 = r0
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r0 = *(u64 *)(r0 + 8)
        out:
        r0 = 0
        exit""", False, "the inner map's values are 8 bytes: bytes 8..15 are outside",
      maps=(OUTER,), error="invalid access to map value"),
    C("map_in_map_update", """
        r1 = 0
        *(u32 *)(r10 - 4) = r1
        *(u32 *)(r10 - 8) = r1
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -8
        r1 = map[id:0]
        r4 = 0
        call bpf_map_update_elem
        r0 = 0
        exit""", False, "programs may only look up in maps of maps; user space fills them",
      maps=(OUTER,), error="cannot pass map_type 12"),
    C("map_in_map_outer_value_read", KEY32 + """
        r0 = *(u32 *)(r0 + 0)
        r0 = 0
        exit""", False, "the outer lookup's result may be NULL", maps=(OUTER,), error="map_value_or_null"),
)
