"""Cases on ring buffer references (reserve, submit, discard, leaks) and callbacks (bpf_loop)."""

from __future__ import annotations

from .common import PROG_ARRAY, RESERVE, RINGBUF, C, Case

CASES: tuple[Case, ...] = (
    # --- ring buffer references -------------------------------------------------------------------
    C("ringbuf_submit", RESERVE + """
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 8) = r1
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", True, "the reservation is checked, written inside its 16 bytes and submitted",
      maps=(RINGBUF,)),
    C("ringbuf_discard", RESERVE + """
        if r0 == 0 goto out
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", True, "discarding releases the reservation", maps=(RINGBUF,)),
    C("ringbuf_leak", RESERVE + "r0 = 0\nexit", False, "the reservation is never released",
      maps=(RINGBUF,), error="Unreleased reference"),
    C("ringbuf_leak_one_path", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        call bpf_get_prandom_u32
        if r0 > 100 goto out
        r1 = r6
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "when the random number exceeds 100 the record is never submitted",
      maps=(RINGBUF,), error="Unreleased reference"),
    C("ringbuf_submit_unchecked", RESERVE + "r1 = r0\nr2 = 0\ncall bpf_ringbuf_submit\nr0 = 0\nexit",
      False, "the reservation may be NULL", maps=(RINGBUF,), error="ringbuf_mem_or_null"),
    C("ringbuf_double_submit", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        r1 = r6
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "the second submit releases what is already released", maps=(RINGBUF,),
      error="expected=ringbuf_mem"),
    C("ringbuf_use_after_submit", RESERVE + """
        if r0 == 0 goto out
        r6 = r0
        r1 = r0
        r2 = 0
        call bpf_ringbuf_submit
        r0 = *(u64 *)(r6 + 0)
        out:
        r0 = 0
        exit""", False, "the record belongs to the reader after submit", maps=(RINGBUF,),
      error="invalid mem access 'scalar'"),
    C("ringbuf_write_past_end", RESERVE + """
        if r0 == 0 goto out
        r1 = 1
        *(u64 *)(r0 + 16) = r1
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "bytes 16..23 of a 16-byte record", maps=(RINGBUF,), error="invalid access"),
    C("ringbuf_var_size", """
        call bpf_get_prandom_u32
        r2 = r0
        r2 &= 63
        r1 = map[id:0]
        r3 = 0
        call bpf_ringbuf_reserve
        if r0 == 0 goto out
        r1 = r0
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "the reservation size must be a constant", maps=(RINGBUF,),
      error="is not a known constant"),
    C("ringbuf_submit_moved", RESERVE + """
        if r0 == 0 goto out
        r1 = r0
        r1 += 8
        r2 = 0
        call bpf_ringbuf_submit
        out:
        r0 = 0
        exit""", False, "submit needs the pointer reserve returned", maps=(RINGBUF,),
      error="zero offset"),
    C("ringbuf_output", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r2 = r10
        r2 += -8
        r1 = map[id:0]
        r3 = 8
        r4 = 0
        call bpf_ringbuf_output
        r0 = 0
        exit""", True, "copy 8 initialised bytes", maps=(RINGBUF,)),
    C("ringbuf_tail_call_leak", RESERVE.replace("r1 = map[id:0]", "r6 = r1\n    r1 = map[id:0]") + """
        if r0 == 0 goto out
        r7 = r0
        r1 = r6
        r2 = map[id:1]
        r3 = 0
        call bpf_tail_call
        r1 = r7
        r2 = 0
        call bpf_ringbuf_discard
        out:
        r0 = 0
        exit""", False, "a tail call never returns to release the record", maps=(RINGBUF, PROG_ARRAY),
      error="tail_call would lead to reference leak"),
    # --- callbacks --------------------------------------------------------------------------------
    C("bpf_loop", """
        r1 = 10
        r2 = subprog[cb]
        r3 = 0
        r4 = 0
        call bpf_loop
        r0 = 0
        exit
        cb:
        r0 = 0
        exit""", True, "a callback returning 0"),
    C("bpf_loop_bad_return", """
        r1 = 10
        r2 = subprog[cb]
        r3 = 0
        r4 = 0
        call bpf_loop
        r0 = 0
        exit
        cb:
        r0 = 5
        exit""", False, "bpf_loop callbacks return 0 or 1", error="should have been in [0, 1]"),
    C("bpf_loop_stack_ctx", """
        r1 = 0
        *(u64 *)(r10 - 8) = r1
        r1 = 10
        r2 = subprog[cb]
        r3 = r10
        r3 += -8
        r4 = 0
        call bpf_loop
        r0 = *(u64 *)(r10 - 8)
        exit
        cb:
        r1 = *(u64 *)(r2 + 0)
        r1 += 1
        *(u64 *)(r2 + 0) = r1
        r0 = 0
        exit""", True, "the callback updates a counter on the caller's stack"),
    C("bpf_loop_not_func", "r1 = 10\nr2 = 0\nr3 = 0\nr4 = 0\ncall bpf_loop\nr0 = 0\nexit", False,
      "the callback must be a function", error="expected=func"),
)
