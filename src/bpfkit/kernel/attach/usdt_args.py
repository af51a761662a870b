"""USDT argument specs (``-4@%eax 8@-8(%rbp) 4@$5``) parsed into a structured form a BPF fetch can use.

Pure parsing. Each argument is ``[-]SIZE@OPERAND``: SIZE is the byte size, negative when signed; the
OPERAND is GNU assembler syntax for the architecture (sys/sdt.h emits it with the "nor" asm
constraint): on x86-64 a register ``%rdi``, a constant ``$5``, or memory ``-8(%rbp)``, ``sym(%rip)``,
``8(%rax,%rbx,4)``; on arm64 ``x0``, ``5``, ``[sp, 16]``, ``[x1]``. Registers become their offset in
the kernel's ``struct pt_regs`` (arch/x86/include/asm/ptrace.h, arch/arm64/include/asm/ptrace.h), which
is what a BPF program reads them from.
"""

from __future__ import annotations

import enum
import re

from bpfkit._records import record
from bpfkit.errors import ParseError


class ArgKind(enum.Enum):
    """Where an argument's value is."""

    CONST = "const"
    """The value itself (`value`)."""
    REG = "reg"
    """In register `reg`."""
    REG_DEREF = "reg_deref"
    """In memory at `reg` + `value` (+ `index_reg` * `scale`), or at `symbol` + `value` for %rip."""


# struct pt_regs on x86-64: 21 unsigned longs in this order.
_X86_PT_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
                "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss")
X86_64_PT_REGS = {name: 8 * i for i, name in enumerate(_X86_PT_REGS)}
"""Offsets of the x86-64 registers in struct pt_regs."""

# Sub-register names -> the 64-bit register they are part of.
_X86_ALIASES: dict[str, str] = {}
for _r in ("ax", "bx", "cx", "dx"):
    _X86_ALIASES.update({f"e{_r}": f"r{_r}", _r: f"r{_r}", f"{_r[0]}l": f"r{_r}", f"{_r[0]}h": f"r{_r}"})
for _r in ("si", "di", "bp", "sp"):
    _X86_ALIASES.update({f"e{_r}": f"r{_r}", _r: f"r{_r}", f"{_r}l": f"r{_r}"})
for _n in range(8, 16):
    _X86_ALIASES.update({f"r{_n}d": f"r{_n}", f"r{_n}w": f"r{_n}", f"r{_n}b": f"r{_n}", f"r{_n}l": f"r{_n}"})
_X86_ALIASES["eip"] = "rip"

ARM64_PT_REGS = {**{f"x{i}": 8 * i for i in range(31)}, "sp": 248, "pc": 256, "pstate": 264}
"""Offsets of the arm64 registers in struct pt_regs (user_pt_regs: regs[31], sp, pc, pstate)."""


@record
class UsdtArg:
    """One parsed argument. `reg_offset` (and `index_offset`) are pt_regs offsets; -1 when unused."""

    size: int
    signed: bool
    kind: ArgKind
    value: int = 0
    reg: str = ""
    reg_offset: int = -1
    index_reg: str = ""
    index_offset: int = -1
    scale: int = 1
    symbol: str = ""
    text: str = ""

    @property
    def bits(self) -> int:
        return self.size * 8


_SIZE = re.compile(r"^(-?\d+)@(.+)$")
_X86_MEM = re.compile(
    r"^(?P<disp>[-+]?(?:0x[0-9a-fA-F]+|\d+))?(?P<sym>[A-Za-z_.$][\w.$@]*(?:[-+](?:0x[0-9a-fA-F]+|\d+))?)?"
    r"\(%(?P<base>\w+)(?:,%(?P<index>\w+)(?:,(?P<scale>\d+))?)?\)$")
_ARM64_MEM = re.compile(r"^\[(?P<base>\w+)(?:\s*,\s*#?(?P<disp>-?(?:0x[0-9a-fA-F]+|\d+)))?\]$")


def _x86_reg(name: str, where: str) -> tuple[str, int]:
    reg = _X86_ALIASES.get(name, name)
    if reg not in X86_64_PT_REGS:
        raise ParseError(f"{where}: unknown x86-64 register %{name}")
    return reg, X86_64_PT_REGS[reg]


def _arm64_reg(name: str, where: str) -> tuple[str, int]:
    reg = "x" + name[1:] if re.fullmatch(r"w\d+", name) else name
    if reg not in ARM64_PT_REGS:
        raise ParseError(f"{where}: unknown arm64 register {name}")
    return reg, ARM64_PT_REGS[reg]


def _int(text: str) -> int:
    return int(text, 0) if text else 0


def _parse_x86(size: int, signed: bool, op: str, text: str, where: str) -> UsdtArg:
    if op.startswith("$"):
        try:
            return UsdtArg(size, signed, ArgKind.CONST, _int(op[1:]), text=text)
        except ValueError:
            raise ParseError(f"{where}: bad constant {op!r}") from None
    if op.startswith("%"):
        reg, off = _x86_reg(op[1:], where)
        return UsdtArg(size, signed, ArgKind.REG, reg=reg, reg_offset=off, text=text)
    m = _X86_MEM.match(op)
    if m is None:
        raise ParseError(f"{where}: cannot parse operand {op!r}")
    reg, off = _x86_reg(m["base"], where)
    disp = _int(m["disp"] or "")
    symbol = ""
    if m["sym"]:
        sym = m["sym"]
        sm = re.match(r"^(.*?)([-+](?:0x[0-9a-fA-F]+|\d+))?$", sym)
        assert sm is not None
        symbol = sm[1]
        disp += _int(sm[2] or "")
    index, ioff, scale = "", -1, 1
    if m["index"]:
        index, ioff = _x86_reg(m["index"], where)
        scale = int(m["scale"] or 1)
        if scale not in (1, 2, 4, 8):
            raise ParseError(f"{where}: bad scale {scale} in {op!r}")
    return UsdtArg(size, signed, ArgKind.REG_DEREF, disp, reg, off, index, ioff, scale, symbol, text)


def _parse_arm64(size: int, signed: bool, op: str, text: str, where: str) -> UsdtArg:
    m = _ARM64_MEM.match(op)
    if m is not None:
        reg, off = _arm64_reg(m["base"], where)
        return UsdtArg(size, signed, ArgKind.REG_DEREF, _int(m["disp"] or ""), reg, off, text=text)
    if re.fullmatch(r"#?-?(?:0x[0-9a-fA-F]+|\d+)", op):
        return UsdtArg(size, signed, ArgKind.CONST, _int(op.lstrip("#")), text=text)
    reg, off = _arm64_reg(op, where)
    return UsdtArg(size, signed, ArgKind.REG, reg=reg, reg_offset=off, text=text)


def parse_usdt_arg(text: str, arch: str = "x86_64", where: str = "USDT argument") -> UsdtArg:
    """Parse one ``SIZE@OPERAND`` argument for `arch` (``x86_64`` or ``aarch64``)."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ParseError(f"{where}: expected SIZE@OPERAND, got {text!r}")
    n = int(m[1])
    size, signed = abs(n), n < 0
    if size not in (1, 2, 4, 8):
        raise ParseError(f"{where}: bad argument size {n} in {text!r} (1, 2, 4 or 8, negative if signed)")
    op = m[2].strip()
    if arch in ("x86_64", "amd64"):
        return _parse_x86(size, signed, op, text.strip(), where)
    if arch in ("aarch64", "arm64"):
        return _parse_arm64(size, signed, op, text.strip(), where)
    raise ParseError(f"{where}: USDT arguments of architecture {arch!r} are not supported")


def split_usdt_args(spec: str, arch: str = "x86_64") -> list[str]:
    """The argument texts of a spec string. Arguments are separated by spaces, except inside ``[...]``
    (arm64 memory operands contain ``, ``)."""
    out: list[str] = []
    depth, cur = 0, ""
    for ch in spec.strip():
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch.isspace() and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def parse_usdt_args(spec: str, arch: str = "x86_64", where: str = "USDT probe") -> tuple[UsdtArg, ...]:
    """Parse a whole argument spec string (empty for a probe without arguments)."""
    parts = split_usdt_args(spec, arch)
    return tuple(parse_usdt_arg(p, arch, f"{where}, argument {i + 1}") for i, p in enumerate(parts))
