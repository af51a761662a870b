"""Soundness fuzz: random programs bpfkit's verifier accepts never fault in the VM.

Programs are drawn from a grammar that touches memory a lot (raw memory through r1, the stack, packet
data behind a data_end check, map values behind a NULL check) with arithmetic and branches between
the accesses, so a fair share are accepted and a fair share refused. Every accepted program runs in
both engines with the VM's run-time checks; a `VmError` (out-of-bounds access, NULL dereference, a
fall off the end) would mean the verifier accepted an unsafe program.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import VerificationError, VmError, VmLimitError
from bpfkit.isa import assemble
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm import Vm
from bpfkit.vm.verifier import verify

EXAMPLES = int(os.environ.get("BPFKIT_EXAMPLES", "300"))
MEM = 24
REGS = ["r0", "r3", "r4", "r5", "r6", "r7"]
SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
ALU = ["+=", "-=", "*=", "&=", "|=", "^=", "<<=", ">>=", "s>>=", "/=", "%="]
JMP = ["==", "!=", ">", ">=", "<", "<=", "s>", "s>=", "s<", "s<=", "&"]


@st.composite
def statement(draw: st.DrawFn, base: str, label: str) -> list[str]:
    """One random statement; `base` is the register holding the memory pointer."""
    kind = draw(st.sampled_from(["mov", "alu", "alu", "load", "load", "store", "stack", "stack", "ptr",
                                 "jump", "jump", "bound", "loop", "spill_ptr", "stack_var"]))
    reg = draw(st.sampled_from(REGS))
    other = draw(st.sampled_from(REGS))
    imm = draw(st.one_of(st.integers(-4, 40), st.sampled_from([0xFF, 7, 15, 63, -1, 1 << 20])))
    size = draw(st.sampled_from([1, 2, 4, 8]))
    off = draw(st.integers(-4, MEM + 4))
    if kind == "mov":
        return [f"{reg} = {imm}"]
    if kind == "alu":
        op = draw(st.sampled_from(ALU))
        w = draw(st.booleans())
        if op in ("<<=", ">>=", "s>>="):
            return [f"{reg} {op} {draw(st.integers(0, 63))}"]
        if op in ("/=", "%=") and imm == 0:
            imm = 3
        src = other if draw(st.booleans()) else str(imm)
        if w and src != str(imm):
            return [f"w{reg[1:]} {op} w{src[1:]}"]
        return [f"{reg} {op} {src}"]
    if kind == "load":
        return [f"{reg} = *({SIZES[size]} *)({base} {off:+d})".replace("+-", "-")]
    if kind == "store":
        return [f"*({SIZES[size]} *)({base} {off:+d}) = {other}".replace("+-", "-")]
    if kind == "stack":
        slot = -8 * draw(st.integers(1, 4)) + size * draw(st.integers(0, 8 // size - 1))
        store = draw(st.sampled_from(["reg", "reg", "imm", "load"]))
        if store == "reg":
            return [f"*({SIZES[size]} *)(r10 {slot}) = {other}"]
        if store == "imm":
            return [f"*({SIZES[size]} *)(r10 {slot}) = {imm}"]
        return [f"{reg} = *({SIZES[size]} *)(r10 {slot})"]
    if kind == "stack_var":  # a stack access at a variable offset (an index into a stack buffer)
        mask = draw(st.sampled_from([1, 3, 7, 8, 15, 24, 31]))
        start = -8 * draw(st.integers(1, 5))
        access = (f"{other} = *({SIZES[size]} *)(r8 {off - 8:+d})" if draw(st.booleans()) else
                  f"*({SIZES[size]} *)(r8 {off - 8:+d}) = {other}").replace("+-", "-")
        return [f"r8 = {reg}", f"r8 &= {mask}", "r8 += r10", f"r8 += {start}", access]
    if kind == "spill_ptr":
        slot = -8 * draw(st.integers(1, 4))
        return [f"*(u64 *)(r10 {slot}) = {base}", f"r8 = *(u64 *)(r10 {slot})",
                f"{reg} = *({SIZES[size]} *)(r8 {off:+d})".replace("+-", "-")]
    if kind == "loop":
        n = draw(st.integers(1, 6))
        step = draw(st.integers(1, 8))
        return ["r9 = 0", f"LOOP{label}:", f"r8 = {base}", "r8 += r9",
                f"{reg} = *(u8 *)(r8 + 0)", f"r9 += {step}", f"if r9 < {n * step} goto LOOP{label}"]
    if kind == "ptr":
        return [f"r8 = {base}", f"r8 += {other}", f"{reg} = *({SIZES[size]} *)(r8 + 0)"]
    if kind == "bound":
        return [f"if {reg} > {draw(st.integers(0, MEM))} goto L{label}",
                f"r8 = {base}", f"r8 += {reg}", f"{other} = *(u8 *)(r8 + 0)", f"L{label}:"]
    op = draw(st.sampled_from(JMP))
    return [f"if {reg} {op} {imm} goto L{label}", f"{other} = {imm}", f"L{label}:"]


@st.composite
def body(draw: st.DrawFn, base: str, prefix: str = "") -> list[str]:
    lines: list[str] = []
    for i in range(draw(st.integers(1, 10))):
        lines += draw(statement(base, f"{prefix}{i}"))
    return lines


def _run(insns: list, prog_type: ProgType | None, data: bytes, vm: Vm, **load: object) -> None:
    """Run in both engines on `data` and on variations of it (other branches get taken)."""
    variants = [data, bytes(len(data)), bytes([0xFF]) * len(data), bytes(range(len(data)))[::-1],
                bytes((7 * i + 3) & 0xFF for i in range(len(data)))]
    for engine in ("interp", "fast"):
        prog = vm.load(insns, prog_type=prog_type, **load)  # type: ignore[arg-type]
        for variant in variants:
            try:
                prog.test_run(variant, engine=engine)
            except VmLimitError:
                pass
            except VmError as err:
                raise AssertionError(f"verified program faulted in the VM ({engine}, data "
                                     f"{variant.hex()}): {err}") from err


def _accepted(text: str, **kw: object) -> list | None:
    """The program if bpfkit's verifier accepts it (the listing itself must always assemble)."""
    insns = assemble(text)
    try:
        verify(insns, **kw)  # type: ignore[arg-type]
    except VerificationError:
        return None
    return insns


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(body("r1"), st.booleans())
def test_raw_memory_programs(lines: list[str], init: bool) -> None:
    prologue = ["r0 = 0", "r3 = 0", "r4 = 1", "r5 = 2", "r6 = 3", "r7 = 4"] if init else ["r0 = 0"]
    text = "\n".join([*prologue, *lines, "exit"])
    insns = _accepted(text, prog_type=None, mem_size=MEM)
    if insns is not None:
        _run(insns, None, bytes(range(MEM)), Vm(budget=10_000), mem_size=MEM, verify=True)


@_SETTINGS
@given(body("r2"), st.integers(0, 40), st.integers(14, 64))
def test_xdp_packet_programs(lines: list[str], check: int, length: int) -> None:
    prologue = ["r2 = *(u32 *)(r1 + 0)", "r3 = *(u32 *)(r1 + 4)", "r9 = r2", f"r9 += {check}",
                "r0 = 2", "if r9 > r3 goto out", "r3 = 0", "r4 = 1", "r5 = 2", "r6 = 3", "r7 = 4"]
    text = "\n".join([*prologue, *lines, "out:", "r0 = 2", "exit"])
    insns = _accepted(text, prog_type=ProgType.XDP)
    if insns is not None:
        _run(insns, ProgType.XDP, bytes(length), Vm(budget=10_000))


@_SETTINGS
@given(body("r2"), st.booleans())
def test_map_value_programs(lines: list[str], check_null: bool) -> None:
    spec = MapSpec(MapType.HASH, 8, MEM, 4, name="m")
    lookup = ["r1 = 0", "*(u64 *)(r10 - 8) = r1", "r2 = r10", "r2 += -8", "r1 = map[id:0]",
              "call bpf_map_lookup_elem", "r2 = r0"]
    guard = ["if r2 == 0 goto out"] if check_null else []
    text = "\n".join([*lookup, *guard, "r0 = 0", "r3 = 0", "r4 = 1", "r5 = 2", "r6 = 3", "r7 = 4",
                      *lines, "out:", "r0 = 0", "exit"])
    insns = _accepted(text, prog_type=ProgType.XDP, maps={0: spec})
    if insns is None:
        return
    vm = Vm(budget=10_000)
    m = vm.create_map(spec)
    m.update(bytes(8), bytes(MEM))
    fixed = [i if i.opcode != 0x18 or i.src != 1 else type(i)(i.opcode, i.dst, i.src, i.off, m.fd)
             for i in insns]
    _run(fixed, ProgType.XDP, bytes(64), vm)


@_SETTINGS
@given(body("r1", "f"), body("r1", "m"), st.integers(0, 30))
def test_function_programs(callee: list[str], caller: list[str], scalar: int) -> None:
    """Arguments, return values and caller-saved registers across a bpf-to-bpf call."""
    init = ["r0 = 0", "r3 = 0", "r4 = 1", "r5 = 2", "r6 = 3", "r7 = 4"]
    text = "\n".join([
        "r6 = r1", f"r2 = {scalar}", "call fn", "r1 = r6", "r3 = 0", "r4 = 1", "r5 = 2", "r7 = 4",
        "if r0 > 24 goto done", "r8 = r1", "r8 += r0", "r0 = *(u8 *)(r8 + 0)", *caller,
        "done:", "r0 = 0", "exit",
        "fn:", "r9 = r2", *init, "r0 = r9", *callee, "exit",
    ])
    insns = _accepted(text, prog_type=None, mem_size=MEM)
    if insns is not None:
        _run(insns, None, bytes(range(MEM)), Vm(budget=10_000), mem_size=MEM, verify=True)
