"""Cases on packet writes, checksums, stack traces, bpf_trace_vprintk, bpf_for_each_map_elem and
spin locks."""

from __future__ import annotations

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType

from .common import ARRAY, HASH, KEY32, KPROBE, RAW_TP, RINGBUF, TC, TP, C, Case

STACKS = MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 16, name="stacks")


CASES: tuple[Case, ...] = (
    # --- packet writes, checksums, stacks, vprintk --------------------------------------------------
    C("skb_store_bytes", "*(u32 *)(r10 - 4) = 0\nr2 = 30\nr3 = r10\nr3 += -4\nr4 = 4\nr5 = 0\n"
      "call bpf_skb_store_bytes\nexit", True, "writes 4 stack bytes into the packet", prog_type=TC),
    C("skb_store_bytes_oob_src", "*(u32 *)(r10 - 4) = 0\nr2 = 30\nr3 = r10\nr3 += -4\nr4 = 8\nr5 = 0\n"
      "call bpf_skb_store_bytes\nexit", False, "8 bytes from a 4-byte stack slot, half never written",
      prog_type=TC, error="invalid"),
    C("skb_store_bytes_xdp", "r2 = 0\nr3 = r10\nr3 += -4\nr4 = 4\nr5 = 0\ncall bpf_skb_store_bytes\n"
      "exit", False, "bpf_skb_store_bytes is for tc programs", error="cannot use helper"),
    C("skb_store_bytes_kills_pkt", """
        r6 = r1
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = r2
        r4 += 8
        if r4 > r3 goto out
        r7 = r2
        *(u32 *)(r10 - 4) = 0
        r1 = r6
        r2 = 0
        r3 = r10
        r3 += -4
        r4 = 4
        r5 = 0
        call bpf_skb_store_bytes
        r0 = *(u8 *)(r7 + 0)
        out:
        r0 = 0
        exit""", False, "a packet pointer checked before bpf_skb_store_bytes is invalid after it",
      prog_type=TC, error="invalid mem access"),
    C("l3_csum_replace", "r2 = 24\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l3_csum_replace\nexit", True,
      "fixes the IPv4 header checksum", prog_type=TC),
    C("l4_csum_replace", "r2 = 40\nr3 = 0\nr4 = 0\nr5 = 0x22\ncall bpf_l4_csum_replace\nexit", True,
      "fixes the UDP checksum", prog_type=TC),
    C("l3_csum_replace_xdp", "r2 = 24\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l3_csum_replace\nexit", False,
      "the checksum helpers need an skb", error="cannot use helper"),
    C("l4_csum_replace_no_ctx", "r1 = 0\nr2 = 40\nr3 = 0\nr4 = 0\nr5 = 2\ncall bpf_l4_csum_replace\n"
      "exit", False, "the first argument is the context", prog_type=TC, error="expected=ctx"),
    C("csum_diff", "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -4\nr2 = 4\nr3 = r10\nr3 += -8\nr4 = 4\n"
      "r5 = 0\ncall bpf_csum_diff\nr0 = 0\nexit", True, "two 4-byte buffers on the stack", prog_type=TC),
    C("csum_diff_null", "r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 77\ncall bpf_csum_diff\nr0 = 2\nexit", True,
      "both buffers NULL with sizes 0: the seed comes back"),
    C("csum_diff_null_size", "r1 = 0\nr2 = 4\nr3 = 0\nr4 = 0\nr5 = 0\ncall bpf_csum_diff\nr0 = 2\nexit",
      False, "a NULL buffer needs a size of 0", error="R1"),
    C("csum_diff_oob", "*(u64 *)(r10 - 8) = 0\nr1 = r10\nr1 += -8\nr2 = 16\nr3 = 0\nr4 = 0\nr5 = 0\n"
      "call bpf_csum_diff\nr0 = 2\nexit", False, "16 bytes from the top 8 of the stack", error="invalid"),
    C("trace_vprintk", """
        r1 = 0x6425
        *(u64 *)(r10 - 8) = r1
        *(u64 *)(r10 - 16) = r1
        r1 = r10
        r1 += -8
        r2 = 3
        r3 = r10
        r3 += -16
        r4 = 8
        call bpf_trace_vprintk
        r0 = 0
        exit""", True, "format and arguments on the stack (checked at run time)", prog_type=KPROBE),
    C("trace_vprintk_null_args", "r1 = 0x25\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 2\nr3 = 0\n"
      "r4 = 0\ncall bpf_trace_vprintk\nr0 = 0\nexit", True, "no arguments: NULL with a size of 0", TC),
    C("trace_vprintk_uninit_fmt", "r1 = r10\nr1 += -8\nr2 = 8\nr3 = 0\nr4 = 0\ncall bpf_trace_vprintk\n"
      "r0 = 0\nexit", False, "the format bytes were never written", prog_type=KPROBE, error="invalid"),
    C("trace_vprintk_mit", "r1 = 0x25\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = 2\nr3 = 0\n"
      "r4 = 0\ncall bpf_trace_vprintk\nr0 = 0\nexit", False, "bpf_trace_vprintk is GPL-only",
      prog_type=KPROBE, license="MIT", error="GPL"),
    C("get_stackid", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", True,
      "a stack id from a stack trace map", prog_type=KPROBE, maps=(STACKS,)),
    C("get_stackid_raw_tp", "r2 = map[id:0]\nr3 = 0x100\ncall bpf_get_stackid\nr0 = 0\nexit", True,
      "raw tracepoints may take stack ids too", prog_type=RAW_TP, maps=(STACKS,)),
    C("get_stackid_hash", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", False,
      "bpf_get_stackid takes a stack trace map", prog_type=KPROBE, maps=(HASH,),
      error="cannot pass map_type 1"),
    C("lookup_on_stack_trace", KEY32 + "r0 = 0\nexit", False,
      "a stack trace map is only for bpf_get_stackid", prog_type=KPROBE, maps=(STACKS,),
      error="cannot pass map_type 7"),
    C("get_stackid_xdp", "r2 = map[id:0]\nr3 = 0\ncall bpf_get_stackid\nr0 = 0\nexit", False,
      "stack ids are for tracing programs", maps=(STACKS,), error="cannot use helper"),
    C("get_stack", "r2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall bpf_get_stack\n"
      "r0 = *(u64 *)(r10 - 64)\nr0 = 0\nexit", True, "the helper fills 64 stack bytes", prog_type=KPROBE),
    C("get_stack_oob", "r2 = r10\nr2 += -8\nr3 = 64\nr4 = 0\ncall bpf_get_stack\nr0 = 0\nexit", False,
      "64 bytes into the top 8 of the stack", prog_type=KPROBE, error="invalid"),
    C("get_stack_mit", "r2 = r10\nr2 += -64\nr3 = 64\nr4 = 0\ncall bpf_get_stack\nr0 = 0\nexit", False,
      "bpf_get_stack is GPL-only", prog_type=TP, license="MIT", error="GPL"),
    C("for_each_map_elem", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r2 = *(u64 *)(r2 + 0)
        r3 = *(u64 *)(r3 + 8)
        r2 *= r3
        r5 = *(u64 *)(r4 + 0)
        r5 += r2
        *(u64 *)(r4 + 0) = r5
        r0 = 0
        exit""", True, "the callback reads the key and value and sums into the caller's stack",
      maps=(HASH,)),
    C("for_each_map_elem_write_value", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r1 = 1
        *(u64 *)(r3 + 8) = r1
        r0 = 1
        exit""", True, "the callback may write the element's value", maps=(HASH,)),
    C("for_each_map_elem_array", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u32 *)(r2 + 0)
        r0 = *(u64 *)(r3 + 56)
        r0 = 0
        exit""", True, "an array's key is the u32 index", maps=(ARRAY,)),
    C("for_each_map_elem_key_write", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r1 = 1
        *(u64 *)(r2 + 0) = r1
        r0 = 0
        exit""", False, "the key is read-only", maps=(HASH,), error="cannot write into"),
    C("for_each_map_elem_key_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u64 *)(r2 + 4)
        r0 = 0
        exit""", False, "bytes 4..11 of an 8-byte key", maps=(HASH,), error="invalid access"),
    C("for_each_map_elem_value_oob", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = *(u64 *)(r3 + 16)
        r0 = 0
        exit""", False, "bytes 16..23 of a 16-byte value", maps=(HASH,), error="invalid access to map value"),
    C("for_each_map_elem_bad_return", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = 2
        exit""", False, "the callback returns 0 (continue) or 1 (stop)", maps=(HASH,),
      error="should have been in [0, 1]"),
    C("for_each_map_elem_ringbuf", """
        *(u64 *)(r10 - 8) = 0
        r1 = map[id:0]
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_for_each_map_elem
        r0 = 0
        exit
        cb:
        r0 = 0
        exit""", False, "a ring buffer has no elements to walk", maps=(RINGBUF,),
      error="cannot pass map_type 27"),
    C("for_each_map_elem_not_func", "r1 = map[id:0]\nr2 = 0\nr3 = 0\nr4 = 0\ncall bpf_for_each_map_elem\n"
      "r0 = 0\nexit", False, "the callback must be a function", maps=(HASH,), error="expected=func"),
    C("spin_lock_no_btf", KEY32 + "if r0 == 0 goto out\nr1 = r0\ncall bpf_spin_lock\nout:\nr0 = 0\nexit",
      False, "the lock's place in the value comes from the map's BTF; this map has none",
      TC, maps=(ARRAY,), error="has to have BTF"),
    C("spin_lock_stack", "*(u32 *)(r10 - 4) = 0\nr1 = r10\nr1 += -4\ncall bpf_spin_lock\nr0 = 0\nexit", False,
      "a lock lives in a map value, not on the stack", TC, error="expected=map_value"),
    C("spin_unlock_unchecked", KEY32 + "r1 = r0\ncall bpf_spin_unlock\nr0 = 0\nexit", False,
      "the lookup may have missed", TC, maps=(ARRAY,), error="map_value_or_null"),
)
