"""The x86-64 encoder: known byte sequences (from the Intel SDM encoding rules), and every register and
addressing form cross-checked against the capstone disassembler when it is installed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bpfkit.vm.jit.x86 import Alu, Asm, AsmEncodingError, Cond, DataRef, Gp, Label, Mem, Shift, Unary, rip

try:
    import capstone as _cs  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - capstone is an optional test dependency
    _cs = None

needs_capstone = pytest.mark.skipif(_cs is None, reason="capstone is not installed (pip install capstone)")

R64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
       "r14", "r15"]
R32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] + [f"r{i}d" for i in range(8, 16)]
R16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"] + [f"r{i}w" for i in range(8, 16)]
R8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"] + [f"r{i}b" for i in range(8, 16)]
NAMES = {64: R64, 32: R32, 16: R16, 8: R8}
U64 = 0xFFFFFFFFFFFFFFFF
PTR = {64: "qword", 32: "dword", 16: "word", 8: "byte"}


def code(emit: Callable[[Asm], None]) -> bytes:
    a = Asm()
    emit(a)
    return a.assemble()


def enc(method: Callable[..., None], *args: object, **kwargs: object) -> bytes:
    """The bytes of one instruction: `method` (an `Asm` method) called with `args`."""
    a = Asm()
    method(a, *args, **kwargs)
    return a.assemble()


def disasm(data: bytes) -> list[str]:
    assert _cs is not None
    md = _cs.Cs(_cs.CS_ARCH_X86, _cs.CS_MODE_64)
    out = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(data, 0)]
    assert sum(i.size for i in md.disasm(data, 0)) == len(data), f"undecodable bytes in {data.hex()}"
    return out


def num(value: int) -> str:
    """A number as capstone prints it: decimal below 10, hex above."""
    return str(value) if value < 10 else hex(value)


def mem_text(m: Mem, bits: int) -> str:
    assert m.base is not None
    inner = R64[m.base]
    if m.index is not None:
        inner += f" + {R64[m.index]}" + (f"*{m.scale}" if m.scale != 1 else "")
    if m.disp > 0:
        inner += f" + {num(m.disp)}"
    elif m.disp < 0:
        inner += f" - {num(-m.disp)}"
    return f"{PTR[bits]} ptr [{inner}]"


def push_pop(a: Asm) -> None:
    a.push(Gp.R12)
    a.pop(Gp.RBX)


def fixed(a: Asm) -> None:
    a.cqo()
    a.cdq()
    a.rep_stosq()
    a.ret()


# -- known encodings ----------------------------------------------------------------------------
KNOWN: list[tuple[str, Callable[[Asm], None], str]] = [
    ("mov rax, rbx", lambda a: a.mov(Gp.RAX, Gp.RBX), "4889d8"),
    ("mov r12, [rsp+8]", lambda a: a.mov(Gp.R12, Mem(Gp.RSP, 8)), "4c8b642408"),
    ("mov [rbp+0], rax (disp8 0)", lambda a: a.mov(Mem(Gp.RBP), Gp.RAX), "48894500"),
    ("mov [r13+0], eax", lambda a: a.mov(Mem(Gp.R13), Gp.RAX, 32), "41894500"),
    ("mov [r12], rdi (SIB)", lambda a: a.mov(Mem(Gp.R12), Gp.RDI), "49893c24"),
    ("mov byte [r11], sil (REX for sil)", lambda a: a.mov(Mem(Gp.R11), Gp.RSI, 8), "418833"),
    ("mov byte [rax], dil", lambda a: a.mov(Mem(Gp.RAX), Gp.RDI, 8), "408838"),
    ("mov word [r11], r8w", lambda a: a.mov(Mem(Gp.R11), Gp.R8, 16), "66458903"),
    ("mov edi, 5", lambda a: a.mov(Gp.RDI, 5), "bf05000000"),
    ("mov rdi, -1", lambda a: a.mov(Gp.RDI, -1), "48c7c7ffffffff"),
    ("movabs r9, 0x123456789", lambda a: a.mov(Gp.R9, 0x123456789), "49b98967452301000000"),
    ("mov qword [r12+0x40], -1", lambda a: a.mov(Mem(Gp.R12, 0x40), -1), "49c7442440ffffffff"),
    ("add rdi, rsi", lambda a: a.alu(Alu.ADD, Gp.RDI, Gp.RSI), "4801f7"),
    ("sub r15d, 0x12345678", lambda a: a.alu(Alu.SUB, Gp.R15, 0x12345678, 32), "4181ef78563412"),
    ("cmp r10, [rip+X]", lambda a: a.alu(Alu.CMP, Gp.R10, rip(DataRef(0))), "4c3b15f90f0000"),
    ("lock add [r11], ecx", lambda a: a.alu(Alu.ADD, Mem(Gp.R11), Gp.RCX, 32, lock=True), "f041010b"),
    ("and eax, -1 (imm8)", lambda a: a.alu(Alu.AND, Gp.RAX, 0xFFFFFFFF, 32), "83e0ff"),
    ("imul rdi, rsi", lambda a: a.imul(Gp.RDI, Gp.RSI), "480faffe"),
    ("imul r8d, r8d, 1000", lambda a: a.imul_imm(Gp.R8, Gp.R8, 1000, 32), "4569c0e8030000"),
    ("shl rbx, cl", lambda a: a.shift(Shift.SHL, Gp.RBX, None), "48d3e3"),
    ("sar r14d, 31", lambda a: a.shift(Shift.SAR, Gp.R14, 31, 32), "41c1fe1f"),
    ("ror ax, 8", lambda a: a.shift(Shift.ROR, Gp.RAX, 8, 16), "66c1c808"),
    ("div r11", lambda a: a.unary(Unary.DIV, Gp.R11), "49f7f3"),
    ("idiv r11d", lambda a: a.unary(Unary.IDIV, Gp.R11, 32), "41f7fb"),
    ("neg r13", lambda a: a.unary(Unary.NEG, Gp.R13), "49f7dd"),
    ("movzx eax, sil", lambda a: a.movzx(Gp.RAX, Gp.RSI, 8), "400fb6c6"),
    ("movzx r9d, word [r11]", lambda a: a.movzx(Gp.R9, Mem(Gp.R11), 16), "450fb70b"),
    ("movsx rdi, byte [rbp-1]", lambda a: a.movsx(Gp.RDI, Mem(Gp.RBP, -1), 8), "480fbe7dff"),
    ("movsxd r14, r15d", lambda a: a.movsx(Gp.R14, Gp.R15, 32), "4d63f7"),
    ("bswap rdx", lambda a: a.bswap(Gp.RDX), "480fca"),
    ("bswap r8d", lambda a: a.bswap(Gp.R8, 32), "410fc8"),
    ("lock xadd [r11], rax", lambda a: a.xadd(Mem(Gp.R11), Gp.RAX), "f0490fc103"),
    ("lock cmpxchg [r11], r10d", lambda a: a.cmpxchg(Mem(Gp.R11), Gp.R10, 32), "f0450fb113"),
    ("xchg [r11], rdi", lambda a: a.xchg(Mem(Gp.R11), Gp.RDI), "49873b"),
    ("lea r11, [rbp-512]", lambda a: a.lea(Gp.R11, Mem(Gp.RBP, -512)), "4c8d9d00feffff"),
    ("mov rbp, [r12+r11*8+0xc8]", lambda a: a.mov(Gp.RBP, Mem(Gp.R12, 0xC8, Gp.R11, 8)), "4b8bacdcc8000000"),
    ("push r12; pop rbx", push_pop, "41545b"),
    ("push qword [r12]", lambda a: a.push(Mem(Gp.R12)), "41ff3424"),
    ("pop qword [r12]", lambda a: a.pop(Mem(Gp.R12)), "418f0424"),
    ("call r11", lambda a: a.call(Gp.R11), "41ffd3"),
    ("call [rip+X]", lambda a: a.call(rip(DataRef(8))), "ff1502100000"),
    ("dec qword [rsp]", lambda a: a.dec(Mem(Gp.RSP)), "48ff0c24"),
    ("test r11d, r11d", lambda a: a.test(Gp.R11, Gp.R11, 32), "4585db"),
    ("test edi, 0x20", lambda a: a.test(Gp.RDI, 0x20, 32), "f7c720000000"),
    ("cqo; cdq; rep stosq; ret", fixed, "489999f348abc3"),
]


@pytest.mark.parametrize(("name", "emit", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_encodings(name: str, emit: Callable[[Asm], None], expected: str) -> None:
    assert code(emit).hex() == expected


# -- systematic checks against capstone ---------------------------------------------------------
@needs_capstone
@pytest.mark.parametrize("bits", [64, 32, 16, 8])
def test_register_to_register_forms(bits: int) -> None:
    names = NAMES[bits]
    for d in Gp:
        for s in Gp:
            assert disasm(enc(Asm.mov, d, s, bits)) == [f"mov {names[d]}, {names[s]}"]
            for op in Alu:
                got = disasm(enc(Asm.alu, op, d, s, bits))
                assert got == [f"{op.name.lower()} {names[d]}, {names[s]}"]
            assert disasm(enc(Asm.test, d, s, bits)) == [f"test {names[d]}, {names[s]}"]


BASES = list(Gp)
DISPS = [0, 1, -1, 127, -128, 128, -129, 0x7FFFFFFF, -0x80000000]


@needs_capstone
@pytest.mark.parametrize("bits", [64, 32, 16, 8])
def test_memory_operands_with_every_base_and_displacement(bits: int) -> None:
    names = NAMES[bits]
    for base in BASES:
        for disp in DISPS:
            m = Mem(base, disp)
            for r in (Gp.RAX, Gp.RSI, Gp.R9, Gp.R15):
                load = disasm(enc(Asm.mov, r, m, bits))
                assert load == [f"mov {names[r]}, {mem_text(m, bits)}"], (base, disp, r)
                store = disasm(enc(Asm.mov, m, r, bits))
                assert store == [f"mov {mem_text(m, bits)}, {names[r]}"], (base, disp, r)


@needs_capstone
def test_memory_operands_with_an_index() -> None:
    for base in BASES:
        for index in (g for g in Gp if g != Gp.RSP):
            for scale in (1, 2, 4, 8):
                for disp in (0, 16, 0x1000):
                    m = Mem(base, disp, index, scale)
                    assert disasm(enc(Asm.mov, Gp.RCX, m)) == [f"mov rcx, {mem_text(m, 64)}"]
                    assert disasm(enc(Asm.lea, Gp.R10, m)) == [
                        f"lea r10, {mem_text(m, 64).removeprefix('qword ptr ')}"]


@needs_capstone
def test_immediates_choose_the_short_forms_correctly() -> None:
    for value in (0, 1, -1, 127, -128, 128, -129, 0x7FFFFFFF, -0x80000000):
        for reg in (Gp.RAX, Gp.R12):
            (got,) = disasm(enc(Asm.alu, Alu.ADD, reg, value))
            head, imm = got.rsplit(", ", 1)
            assert head == f"add {R64[reg]}" and int(imm, 0) & U64 == value & U64
            size = len(enc(Asm.alu, Alu.ADD, reg, value))
            assert size == (4 if -128 <= value < 128 else 7)  # REX + 83 /0 ib, or REX + 81 /0 id
        (got,) = disasm(enc(Asm.alu, Alu.CMP, Mem(Gp.R12, 8), value))
        head, imm = got.rsplit(", ", 1)
        assert head == "cmp qword ptr [r12 + 8]" and int(imm, 0) & U64 == value & U64
    for value in (0, 5, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, -1, -0x80000000, 1 << 40, -(1 << 40)):
        for reg in Gp:
            text = disasm(enc(Asm.mov, reg, value))
            assert len(text) == 1
            mnemonic, operands = text[0].split(" ", 1)
            dst, imm = operands.split(", ")
            assert mnemonic in ("mov", "movabs")
            if 0 <= value < 1 << 32:
                assert dst == R32[reg] and int(imm, 0) == value
            else:
                assert dst == R64[reg] and int(imm, 0) == value & 0xFFFFFFFFFFFFFFFF


@needs_capstone
def test_extensions_shifts_and_unary_forms() -> None:
    for d in Gp:
        for s in Gp:
            assert disasm(enc(Asm.movzx, d, s, 8)) == [f"movzx {R32[d]}, {R8[s]}"]
            assert disasm(enc(Asm.movzx, d, s, 16)) == [f"movzx {R32[d]}, {R16[s]}"]
            assert disasm(enc(Asm.movsx, d, s, 8)) == [f"movsx {R64[d]}, {R8[s]}"]
            assert disasm(enc(Asm.movsx, d, s, 16, 32)) == [f"movsx {R32[d]}, {R16[s]}"]
            assert disasm(enc(Asm.movsx, d, s, 32)) == [f"movsxd {R64[d]}, {R32[s]}"]
            assert disasm(enc(Asm.imul, d, s, 32)) == [f"imul {R32[d]}, {R32[s]}"]
        for op in Shift:
            name = op.name.lower()
            assert disasm(enc(Asm.shift, op, d, None)) == [f"{name} {R64[d]}, cl"]
            assert disasm(enc(Asm.shift, op, d, 7, 32)) == [f"{name} {R32[d]}, 7"]
        for uop in Unary:
            assert disasm(enc(Asm.unary, uop, d)) == [f"{uop.name.lower()} {R64[d]}"]
        assert disasm(enc(Asm.bswap, d)) == [f"bswap {R64[d]}"]
        assert disasm(enc(Asm.bswap, d, 32)) == [f"bswap {R32[d]}"]
        assert disasm(enc(Asm.push, d)) == [f"push {R64[d]}"]
        assert disasm(enc(Asm.pop, d)) == [f"pop {R64[d]}"]


@needs_capstone
def test_atomic_forms() -> None:
    for base in (Gp.R11, Gp.RSP, Gp.RBP, Gp.R13):
        m = Mem(base, 8)
        for s in Gp:
            for bits in (32, 64):
                n = NAMES[bits][s]
                t = mem_text(m, bits)
                assert disasm(enc(Asm.xadd, m, s, bits)) == [f"lock xadd {t}, {n}"]
                got = disasm(enc(Asm.cmpxchg, m, s, bits))
                assert got == [f"lock cmpxchg {t}, {n}"]
                assert disasm(enc(Asm.xchg, m, s, bits)) == [f"xchg {t}, {n}"]
                for op in (Alu.ADD, Alu.OR, Alu.AND, Alu.XOR):
                    got = disasm(enc(Asm.alu, op, m, s, bits, lock=True))
                    assert got == [f"lock {op.name.lower()} {t}, {n}"]


# -- branches and layout ------------------------------------------------------------------------
@pytest.mark.parametrize(("gap", "short"), [(0, True), (127, True), (128, False), (5000, False)])
def test_forward_branches_are_short_exactly_while_they_fit(gap: int, short: bool) -> None:
    a = Asm()
    target = Label("t")
    a.jcc(Cond.NE, target)
    a.raw(b"\x90" * gap)
    a.bind(target)
    a.ret()
    out = a.assemble()
    if short:
        assert out[:2] == bytes([0x75, gap])
    else:
        assert out[:2] == b"\x0f\x85" and int.from_bytes(out[2:6], "little") == gap
    assert target.offset == len(out) - 1


@pytest.mark.parametrize(("gap", "short"), [(126, True), (127, False)])
def test_backward_branches(gap: int, short: bool) -> None:
    a = Asm()
    top = Label("top")
    a.bind(top)
    a.raw(b"\x90" * gap)
    a.jmp(top)
    out = a.assemble()
    if short:
        assert out[gap:] == bytes([0xEB, (-(gap + 2)) & 0xFF])
    else:
        assert out[gap] == 0xE9 and int.from_bytes(out[gap + 1:], "little", signed=True) == -(gap + 5)


def test_widening_one_branch_can_widen_another() -> None:
    """Relaxation iterates: a branch that fits only while its neighbour is short gets widened too."""
    a = Asm()
    first, second = Label("first"), Label("second")
    a.jmp(first)  # spans the second branch and 124 bytes: 126 when short, 129 when the second widens
    a.jmp(second)
    a.raw(b"\x90" * 124)
    a.bind(first)
    a.raw(b"\x90" * 10)
    a.bind(second)
    out = a.assemble()
    assert out[0] == 0xE9 and out[5] == 0xE9  # both long
    assert first.offset == 5 + 5 + 124 and second.offset == first.offset + 10
    assert int.from_bytes(out[1:5], "little") == first.offset - 5


@needs_capstone
def test_call_and_rip_relative_targets_resolve() -> None:
    a = Asm()
    fn = Label("fn")
    a.call(fn)
    a.mov(Gp.RAX, rip(DataRef(16)))
    a.lea(Gp.R10, rip(fn))
    a.ret()
    a.bind(fn)
    a.ret()
    out = a.assemble()
    text = disasm(out)
    assert fn.offset is not None
    assert text[0] == f"call {fn.offset:#x}"
    assert text[1] == f"mov rax, qword ptr [rip + {4096 + 16 - 12:#x}]"  # rip = end of the mov
    assert text[2] == f"lea r10, [rip + {num(fn.offset - 19)}]"


def test_invalid_forms_are_refused() -> None:
    with pytest.raises(AsmEncodingError):
        Mem(Gp.RAX, index=Gp.RSP)
    with pytest.raises(AsmEncodingError):
        Mem(Gp.RAX, scale=3)
    with pytest.raises(AsmEncodingError):
        enc(Asm.alu, Alu.ADD, Gp.RAX, 1 << 32)
    with pytest.raises(AsmEncodingError):
        enc(Asm.mov, Mem(Gp.RAX), Mem(Gp.RBX))
    with pytest.raises(AsmEncodingError, match="never bound"):
        enc(Asm.jmp, Label("nowhere"))
    with pytest.raises(AsmEncodingError):
        enc(Asm.mov, Mem(Gp.RAX), 1 << 40)
