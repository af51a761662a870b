"""Struct values too large for the BPF stack (``@x = *curtask``, ``print(*file)``), staged in a scratch map.

A program has 512 bytes of stack (MAX_BPF_STACK), so bpfkit assembles values there only up to
`MAX_STRUCT_VALUE` bytes. A larger struct is read with bpf_probe_read_kernel (or _user) into the value
of a one-element per-CPU array (`BIG_MAP`, sized for the largest use in the script; a program runs on
one CPU at a time, without preemption by itself), and the helpers take it from there: map update for a
map assignment, ring buffer output for print() and printf (the event id first, then each argument).
Register r7 holds the scratch pointer across the helper calls of the statement (callee-saved).

A variable assigned such a struct holds its address (8 bytes of stack), and its uses read the memory
then (``$t = *curtask; $t.pid``), as bpftrace 0.17 does. A map key or a tuple holding such a struct
would need it on the stack: the analysis refuses them with a caret error, as bpftrace 0.17 refuses every
copy of a struct past about 500 bytes ("the BPF stack limit of 512 bytes is exceeded").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit.lang import ast
from bpfkit.lang.btftypes import MAX_STRUCT_VALUE
from bpfkit.lang.emit import R0, R1, R2, R3, R4, R7, R10
from bpfkit.lang.resources import EVENTS_MAP, PrintfEvent
from bpfkit.lang.types import Kind, Type
from bpfkit.uapi.enums import Helper

if TYPE_CHECKING:
    from bpfkit.lang.codegen import ProbeGen

#: The per-CPU scratch map big values are staged in.
BIG_MAP = "__big"


def is_big(t: Type) -> bool:
    """Whether `t` is a struct value too large to assemble on the stack."""
    return t.kind is Kind.STRUCT and t.storage > MAX_STRUCT_VALUE


def slot_size(t: Type) -> int:
    """Stack bytes of a variable of type `t`: a big struct variable holds the struct's address."""
    return 8 if is_big(t) else t.storage


def too_big_message(t: Type) -> str:
    return (f"'{t}' is {t.size} bytes: too large for the 512-byte BPF stack here; a struct this large can "
            "be copied to a map (@x = ...), printed with print() or printf(), or read field by field")


def _stage(gen: ProbeGen, size: int) -> str:
    """r7 = this CPU's scratch value (at least `size` bytes); returns the label to jump to when the
    lookup fails (it never does for an array's only element, but the verifier wants the check)."""
    b, em = gen.b, gen.em
    gen.big_size = max(gen.big_size, size)
    key = em.alloc(8)
    b.st(8, R10, key, 0)
    skip = em.label("bigskip")
    em.lookup(BIG_MAP, key)
    b.jmp("jeq", R0, 0, skip)
    b.mov(R7, R0)
    return skip


def _read_into(gen: ProbeGen, e: ast.Expr, at: int) -> None:
    """Copy the struct struct-valued `e` names into r7+at (its padding zeroed: the scratch is reused)."""
    b = gen.b
    t = gen.type_of(e)
    if t.storage != t.size:
        b.st(8, R7, at + t.storage - 8, 0)
    gen.gen_addr(e)
    b.mov(R3, R0)
    b.mov(R1, R7)
    b.add(R1, at)
    b.mov(R2, t.size)
    b.call(Helper.PROBE_READ_USER if t.user else Helper.PROBE_READ_KERNEL)


def stageable(gen: ProbeGen, e: ast.Expr) -> bool:
    """Whether big struct `e` has an address in memory (``*p``, ``p->s``, ``p[i]``, a variable holding
    one, a member of such a variable), as staging needs."""
    if isinstance(e, ast.Var):
        return True
    if isinstance(e, ast.FieldAccess) and gen.in_copy(e):
        return is_big(gen.type_of(e.expr)) and stageable(gen, e.expr)
    return isinstance(e, ast.FieldAccess | ast.Unary | ast.Index)


def assign(gen: ProbeGen, m: ast.Map, value: ast.Expr) -> None:
    """``@m[k] = <big struct>``: read into the scratch value, then update the map from it."""
    from bpfkit.errors import CompileError
    from bpfkit.lang.diagnostics import error

    t = gen.type_of(value)
    if not stageable(gen, value):
        raise CompileError([error(too_big_message(t), value.span)])
    b, em = gen.b, gen.em
    key = gen.build_key(m)
    skip = _stage(gen, t.storage)
    _read_into(gen, value, 0)
    b.ld_map(R1, m.name)
    em.stack_ptr(R2, key)
    b.mov(R3, R7)
    b.mov(R4, 0)
    b.call(Helper.MAP_UPDATE_ELEM)
    b.label(skip)


def send(gen: ProbeGen, event: PrintfEvent, args: list[ast.Expr]) -> None:
    """A printf/print() event with a big struct argument: assembled in the scratch value (the id, each
    argument in its storage layout: big structs read in place, the rest built on the stack and copied),
    then sent to the ring buffer from there."""
    from bpfkit.errors import CompileError
    from bpfkit.lang.diagnostics import error

    for a, t in zip(args, event.args, strict=True):
        if is_big(t) and not stageable(gen, a):
            raise CompileError([error(too_big_message(t), a.span)])
    b, em = gen.b, gen.em
    size = 8 + sum(t.storage for t in event.args)
    skip = _stage(gen, size)
    b.st(8, R7, 0, gen.event_id(event))
    pos = 8
    for a, t in zip(args, event.args, strict=True):
        if is_big(t):
            _read_into(gen, a, pos)
        else:
            mark = em.mark()
            tmp = em.alloc(t.storage)
            gen.gen_into(a, tmp)
            em.copy(pos, tmp, t.storage, dst_reg=R7)
            em.release(mark)
        pos += t.storage
    b.ld_map(R1, EVENTS_MAP)
    b.mov(R2, R7)
    b.mov(R3, size)
    b.mov(R4, 0)
    b.call(Helper.RINGBUF_OUTPUT)
    b.label(skip)
