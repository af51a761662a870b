"""Struct values too large for the BPF stack (``@x = *curtask``, ``print(*file)``), staged in a scratch map.

A program has 512 bytes of stack (MAX_BPF_STACK), so bpfkit assembles values there only up to
`MAX_STRUCT_VALUE` bytes. A larger struct is read with bpf_probe_read_kernel (or _user) into the value
of a one-element per-CPU array (`BIG_MAP`, sized for the largest use in the script; a program runs on
one CPU at a time, without preemption by itself), and the helpers take it from there: map update for a
map assignment, ring buffer output for print() and printf (the event id first, then each argument).
Register r7 holds the scratch pointer across the helper calls of the statement (callee-saved).

A variable assigned such a struct holds its address (8 bytes of stack), and its uses read the memory
then (``$t = *curtask; $t.pid``), as bpftrace 0.17 does. A map holding one is read where its value
lies (``@t.pid``, ``@n = @t``, ``printf("%s", @t)``): the address is the value's, found by a lookup
(0 for a missing key, so that the reads fail and give zeros, as a missing key reads as zero). What one
statement stages (an event's id and every argument) must fit the kernel's per-CPU value limit,
`MAX_PERCPU_VALUE`. A map key or a tuple holding such a struct would need it on the stack: the analysis
refuses them with a caret error, as bpftrace 0.17 refuses every copy of a struct past about 500 bytes
("the BPF stack limit of 512 bytes is exceeded").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit.lang import ast
from bpfkit.lang.btftypes import MAX_PERCPU_VALUE, MAX_STRUCT_VALUE
from bpfkit.lang.emit import R0, R1, R2, R3, R4, R7, R10
from bpfkit.lang.resources import EVENTS_MAP, PrintfEvent
from bpfkit.lang.source import Span
from bpfkit.lang.types import Kind, Type
from bpfkit.uapi.enums import Helper

if TYPE_CHECKING:
    from collections.abc import Callable

    from bpfkit.lang.codegen import ProbeGen
    from bpfkit.lang.codegen_expr import ExprGen

#: The per-CPU scratch map big values are staged in.
BIG_MAP = "__big"


def is_big(t: Type) -> bool:
    """Whether `t` is a struct value too large to assemble on the stack."""
    return t.kind is Kind.STRUCT and t.storage > MAX_STRUCT_VALUE


def slot_size(t: Type) -> int:
    """Stack bytes of a variable of type `t`: a big struct variable holds the struct's address."""
    return 8 if is_big(t) else t.storage


def too_big_message(t: Type, what: str | None = None) -> str:
    """Why struct `t` cannot be used here: it would have to be on the stack (as a `what`, such as "map
    key", or as an intermediate value when `what` is None), and what can be done with it instead."""
    where = f"a {what} ({what}s live on the 512-byte BPF stack)" if what else "the 512-byte BPF stack here"
    return (f"'{t}' is {t.size} bytes: too large for {where}; a struct this large can only be copied to a "
            "map (@x = ...), printed (print(), printf()) or read field by field, from where it lies (*ptr, "
            "ptr->member, or a variable or map holding it)")


def lies_in_user_memory(type_of: Callable[[ast.Expr], Type], e: ast.Expr) -> bool:
    """Whether big struct `e` (of types `type_of`) lies in user memory: a user struct read through a
    pointer or a variable holding its address; never a map's value (nor a member of one): kernel memory."""
    while isinstance(e, ast.FieldAccess) and is_big(type_of(e.expr)):
        e = e.expr
    return not isinstance(e, ast.Map) and type_of(e).user


def map_value_addr(gen: ExprGen, m: ast.Map) -> None:
    """r0 = the address of map `m`'s big struct value, or 0 when the key is missing (so that reads
    from it fail and leave zeros: a missing key reads as zero)."""
    b, em = gen.b, gen.em
    key = gen.build_key(m)
    done = em.label("bigmap")
    em.lookup(m.name, key)
    b.jmp("jne", R0, 0, done)  # the verifier wants the null check before any arithmetic on r0
    b.label(done)


def _stage(gen: ProbeGen, size: int, span: Span | None) -> str:
    """r7 = this CPU's scratch value (at least `size` bytes); returns the label to jump to when the
    lookup fails (it never does for an array's only element, but the verifier wants the check).
    A caret error at `span` when `size` is past the kernel's per-CPU value limit."""
    from bpfkit.errors import CompileError
    from bpfkit.lang.diagnostics import error

    if size > MAX_PERCPU_VALUE:
        raise CompileError([error(f"the values of this call take {size} bytes together (with the event's "
                                  f"8-byte id): more than the {MAX_PERCPU_VALUE} bytes of a per-CPU map "
                                  "value the kernel allows (PCPU_MIN_UNIT_SIZE), where they are assembled; "
                                  "print them in separate calls", span or gen.probe.span)])
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
    b.call(Helper.PROBE_READ_USER if lies_in_user_memory(gen.type_of, e) else Helper.PROBE_READ_KERNEL)


def stageable(gen: ProbeGen, e: ast.Expr) -> bool:
    """Whether big struct `e` has an address in memory (``*p``, ``p->s``, ``p[i]``, a variable holding
    one, a map holding one, a member of such a variable or map), as staging needs."""
    if isinstance(e, ast.Var | ast.Map):
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
    skip = _stage(gen, t.storage, value.span)
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
    skip = _stage(gen, size, event.span)
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
    em.ringbuf_output_from(EVENTS_MAP, R7, size)
    b.label(skip)
