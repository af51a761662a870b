"""Programs for the event stream tests, built with `bpfkit.isa.Builder`.

Each run of an output program takes the next sequence number from a counter map (value: u64 seq, u64
failures), writes a record ``seq, MAGIC, zeros`` of ``9 + (seq & 7)`` bytes (so lengths are not multiples
of 8) to a ring buffer or perf event array, and counts a failed output in the counter's second word.
"""

from __future__ import annotations

import ctypes
import struct

from bpfkit.btf import BtfBuilder, Func, FuncProto, Int, Param
from bpfkit.isa import Builder
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.syscall import current
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import BtfLoadAttr
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import Cmd, Helper, MapType, PerfEventOutputFlags, ProgType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg

MAGIC = 0x5AFE_C0DE_0BAD_F00D


def record_length(seq: int) -> int:
    return 9 + (seq & 7)


def expected_record(seq: int) -> bytes:
    return (seq.to_bytes(8, "little") + MAGIC.to_bytes(8, "little") + bytes(8))[:record_length(seq)]


def counter_map() -> Map:
    return Map.create(MapSpec(MapType.ARRAY, 4, 16, 1, name="ev_counter"))


def counts(counter: Map) -> tuple[int, int]:
    """(records attempted, outputs that failed)."""
    raw = counter[0]
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


def output_program(counter: Map, out: Map, *, perf: bool) -> bytes:
    """Socket filter/XDP body: one record per run to `out` (RINGBUF, or PERF_EVENT_ARRAY when `perf`)."""
    b = Builder()
    b.mov(Reg.R6, Reg.R1)  # ctx, for bpf_perf_event_output
    b.st(4, Reg.R10, -4, 0)
    b.ld_imm64(Reg.R1, counter.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, Reg.R10)
    b.add(Reg.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R7, Reg.R0)
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.FETCH_ADD, Reg.R7, 0, Reg.R1)  # r1 = old seq
    b.stx(8, Reg.R10, -32, Reg.R1)
    b.ld_imm64(Reg.R2, MAGIC)
    b.stx(8, Reg.R10, -24, Reg.R2)
    b.st(8, Reg.R10, -16, 0)
    b.mov(Reg.R5, Reg.R1)
    b.alu("and", Reg.R5, 7)
    b.add(Reg.R5, 9)  # length 9..16
    if perf:
        b.mov(Reg.R1, Reg.R6)
        b.ld_imm64(Reg.R2, out.fileno(), PseudoSrc.MAP_FD)
        b.ld_imm64(Reg.R3, int(PerfEventOutputFlags.CURRENT_CPU))
        b.mov(Reg.R4, Reg.R10)
        b.add(Reg.R4, -32)
        b.call(Helper.PERF_EVENT_OUTPUT)
    else:
        b.ld_imm64(Reg.R1, out.fileno(), PseudoSrc.MAP_FD)
        b.mov(Reg.R2, Reg.R10)
        b.add(Reg.R2, -32)
        b.mov(Reg.R3, Reg.R5)
        b.mov(Reg.R4, 0)
        b.call(Helper.RINGBUF_OUTPUT)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.ADD, Reg.R7, 8, Reg.R1)
    b.label("out")
    b.mov(Reg.R0, 2)  # XDP_PASS; a socket filter keeps 2 bytes
    b.exit()
    return b.encode()


def reserve_discard_program(out: Map, counter: Map) -> bytes:
    """Reserve 8 bytes per run, write the sequence number, submit even and discard odd numbers."""
    b = Builder()
    b.st(4, Reg.R10, -4, 0)
    b.ld_imm64(Reg.R1, counter.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, Reg.R10)
    b.add(Reg.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.FETCH_ADD, Reg.R0, 0, Reg.R1)
    b.mov(Reg.R6, Reg.R1)
    b.ld_imm64(Reg.R1, out.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, 8)
    b.mov(Reg.R3, 0)
    b.call(Helper.RINGBUF_RESERVE)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.stx(8, Reg.R0, 0, Reg.R6)
    b.mov(Reg.R1, Reg.R0)
    b.mov(Reg.R2, 0)
    b.jmp("jset", Reg.R6, 1, "discard")
    b.call(Helper.RINGBUF_SUBMIT)
    b.ja("out")
    b.label("discard")
    b.call(Helper.RINGBUF_DISCARD)
    b.label("out")
    b.mov(Reg.R0, 2)
    b.exit()
    return b.encode()


def user_ringbuf_sum_program(urb: Map, result: Map) -> Program:
    """Drain the user ring buffer, adding the first u64 of each sample; store (drained, sum) in result.

    The callback is a subprogram, which the verifier accepts only with BTF func_info: a small BTF with
    the two functions is loaded along with the program.
    """
    b = Builder()
    b.st(8, Reg.R10, -8, 0)  # ctx: the running sum
    b.ld_imm64(Reg.R1, urb.fileno(), PseudoSrc.MAP_FD)
    b.ld_func(Reg.R2, "cb")
    b.mov(Reg.R3, Reg.R10)
    b.add(Reg.R3, -8)
    b.mov(Reg.R4, 0)
    b.call(Helper.USER_RINGBUF_DRAIN)
    b.mov(Reg.R6, Reg.R0)
    b.st(4, Reg.R10, -12, 0)
    b.ld_imm64(Reg.R1, result.fileno(), PseudoSrc.MAP_FD)
    b.mov(Reg.R2, Reg.R10)
    b.add(Reg.R2, -12)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.stx(8, Reg.R0, 0, Reg.R6)
    b.ldx(8, Reg.R1, Reg.R10, -8)
    b.stx(8, Reg.R0, 8, Reg.R1)
    b.label("out")
    b.mov(Reg.R0, 2)
    b.exit()
    b.label("cb")  # cb(struct bpf_dynptr *sample, u64 *sum)
    b.mov(Reg.R6, Reg.R2)
    b.mov(Reg.R3, Reg.R1)
    b.mov(Reg.R1, Reg.R10)
    b.add(Reg.R1, -8)
    b.mov(Reg.R2, 8)
    b.mov(Reg.R4, 0)
    b.mov(Reg.R5, 0)
    b.call(Helper.DYNPTR_READ)
    b.jmp("jne", Reg.R0, 0, "cb_out")
    b.ldx(8, Reg.R1, Reg.R10, -8)
    b.ldx(8, Reg.R2, Reg.R6, 0)
    b.add(Reg.R2, Reg.R1)
    b.stx(8, Reg.R6, 0, Reg.R2)
    b.label("cb_out")
    b.mov(Reg.R0, 0)
    b.exit()
    bb = BtfBuilder()
    i64 = bb.add(Int("long", 8, IntEncoding.SIGNED))
    main_proto = bb.add(FuncProto(i64, (Param("ctx", i64),)))
    cb_proto = bb.add(FuncProto(i64, (Param("sample", i64), Param("sum", i64))))
    main_id = bb.add(Func("main", main_proto))
    cb_id = bb.add(Func("cb", cb_proto))
    blob = ctypes.create_string_buffer(bb.marshal())
    sys = current()
    with Fd(sys.bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(blob) - 1)),
            "btf", sys) as btf:
        func_info = struct.pack("=IIII", 0, main_id, b.labels()["cb"], cb_id)
        return Program.load(b.encode(), ProgType.XDP, license="GPL", btf=btf, func_info=func_info,
                            func_info_rec_size=8)
