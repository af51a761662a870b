"""Lower a type-checked script to eBPF: one program per attach point, plus the maps and events it uses.

`compile_script(text)` is the whole pipeline: parse, analyze (`bpfkit.lang.semantic`), then generate
code for each probe with `bpfkit.isa.Builder`. The result, a `CompiledScript`, is pure data: programs
whose map loads are recorded as (slot, map name) for the runtime to patch with map fds.

Program types: BEGIN/END are raw tracepoint programs run once with BPF_PROG_TEST_RUN; tracepoints are
TRACEPOINT programs; uprobes and kprobes KPROBE; profile/interval/software PERF_EVENT; rawtracepoint
RAW_TRACEPOINT; kfunc/kretfunc TRACING (fentry/fexit, typed from the kernel's BTF through
`Options.kfuncs`). Every program saves its context in r6 and returns 0.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from bpfkit._records import record, replace
from bpfkit.errors import AsmError, BpfkitError, CompileError
from bpfkit.isa import Instruction
from bpfkit.lang import ast, big_values, walk
from bpfkit.lang.big_values import is_big, slot_size
from bpfkit.lang.btftypes import BtfLookup
from bpfkit.lang.codegen_expr import ExprGen, field_type_ok, read_helpers
from bpfkit.lang.diagnostics import error
from bpfkit.lang.emit import R0, R1, R2, R3, R4, R5, R6, R7, R10, Emitter
from bpfkit.lang.parser import parse
from bpfkit.lang.probes import canonical_name
from bpfkit.lang.resources import (
    EVENTS_MAP,
    EVENTS_SIZE,
    JOIN_MAP,
    JOIN_MAX,
    KSTACK_MAP,
    USTACK_MAP,
    CompiledProbe,
    CompiledScript,
    Event,
    ExitEvent,
    JoinEvent,
    MapEvent,
    MapInfo,
    PrintfEvent,
    TimeEvent,
)
from bpfkit.lang.semantic import (
    Analysis,
    FormatLookup,
    KfuncLookup,
    MapDecl,
    SymbolLookup,
    UsdtLookup,
    UserSymbolLookup,
    analyze,
    signal_number,
)
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.lang.types import AGGREGATIONS, STACK_FRAMES, STRLEN, Kind, value_size
from bpfkit.obj.spec import MapSpec, ProgramSpec
from bpfkit.obj.usdt import UsdtArgSpec
from bpfkit.uapi.enums import AttachType, Helper, MapFlags, MapType, ProgType

#: Entries of each script map (bpftrace's default BPFTRACE_MAP_KEYS_MAX).
MAP_ENTRIES = 4096
#: Bytes of a join() event: id, count, the strings.
JOIN_SIZE = 16 + JOIN_MAX * STRLEN

PROG_TYPES = {
    "BEGIN": ProgType.RAW_TRACEPOINT, "END": ProgType.RAW_TRACEPOINT,
    "rawtracepoint": ProgType.RAW_TRACEPOINT, "tracepoint": ProgType.TRACEPOINT,
    "uprobe": ProgType.KPROBE, "uretprobe": ProgType.KPROBE, "usdt": ProgType.KPROBE,
    "kprobe": ProgType.KPROBE, "kretprobe": ProgType.KPROBE, "profile": ProgType.PERF_EVENT,
    "interval": ProgType.PERF_EVENT,
    "software": ProgType.PERF_EVENT, "hardware": ProgType.PERF_EVENT,
    "fentry": ProgType.TRACING, "fexit": ProgType.TRACING, "iter": ProgType.TRACING,
}
ATTACH_TYPES = {"fentry": AttachType.TRACE_FENTRY, "fexit": AttachType.TRACE_FEXIT,
                "iter": AttachType.TRACE_ITER}

#: Expands an attach point with wildcards into concrete ones (the runtime's knowledge of the system).
Expander = Callable[[ast.AttachPoint], "list[ast.AttachPoint]"]


@record
class Options:
    """Facts of the running system the code depends on."""

    start_ns: int = 0
    """CLOCK_MONOTONIC at start, subtracted by ``elapsed``."""
    ncpus: int = 1
    params: tuple[str, ...] = ()
    cpid: int = 0
    """Pid of the -c child (the ``cpid`` builtin)."""
    unsafe: bool = False
    """Allow system() and signal() (bpftrace's --unsafe)."""
    kfuncs: KfuncLookup | None = None
    """Kernel function signatures for kfunc/kretfunc probes (from BTF)."""
    btf: BtfLookup | None = None
    """The kernel's BTF, asked for only when a script uses kernel types (curtask->..., casts)."""
    ksyms: SymbolLookup | None = None
    """Kernel symbol addresses for kaddr()."""
    usdt: UsdtLookup | None = None
    """The argument specs of usdt probes, read from their binaries (needed by scripts reading argN)."""
    usyms: UserSymbolLookup | None = None
    """Symbol addresses and sizes in user binaries for uaddr()."""


def map_infos(decls: dict[str, MapDecl]) -> dict[str, MapInfo]:
    """The map to create for each declared script map."""
    out: dict[str, MapInfo] = {}
    for name, d in decls.items():
        key_size = d.key.storage if d.key is not None else 0
        if d.value.kind in (Kind.HIST, Kind.LHIST):
            key_size += 8
        # Aggregations are per-CPU, as in bpftrace: no atomics, no lost min/max updates; the runtime
        # merges the CPUs' values when printing.
        mtype = MapType.PERCPU_HASH if d.value.kind in AGGREGATIONS else MapType.HASH
        spec = MapSpec(mtype, key_size=max(key_size, 8), value_size=value_size(d.value),
                       max_entries=MAP_ENTRIES, name=f"AT_{name}"[:15])
        out[name] = MapInfo(name, d.key, d.value, spec, d.lhist)
    return out


class ProbeGen(ExprGen):
    """Statements and the program frame for one attach point."""

    def __init__(self, em: Emitter, analysis: Analysis, maps: dict[str, MapInfo], events: list[Event],
                 probe: ast.Probe, attach: ast.AttachPoint,
                 fmt: TracepointFormat | None, options: Options) -> None:
        super().__init__(em, analysis, maps, attach, fmt, options.start_ns, options.ncpus)
        self.cpid = options.cpid
        self.events = events
        self.probe = probe
        self.loops: list[tuple[str, str]] = []
        self.join_used = False
        self.exit_label = ".exit"
        self.jumped: set[str] = set()
        self.callbacks: list[tuple[str, ast.For]] = []
        self.func_starts: list[int] = []
        """Instruction slots where callback subprograms start (for func_info)."""
        self.big_size = 0
        """Bytes of the per-CPU scratch value big struct values are staged in (0: none)."""
        self.seq_formats: list[bytes] = []
        """The bpf_seq_printf formats of the script (shared by its probes: one read-only map)."""

    def generate(self) -> list[Instruction]:
        b, em = self.b, self.em
        em.at(self.probe.span)
        b.mov(R6, R1)
        if self.attach.provider == "iter":  # the iterator's last call has no object (ctx->task == NULL)
            b.ldx(8, R0, R6, 8)
            self.jumped.add(self.exit_label)
            b.jmp("jeq", R0, 0, self.exit_label)
        for name, t in self.analysis.vars[self.probe_index].items():
            slot = em.alloc(slot_size(t))
            em.zero(slot, slot_size(t))
            self.var_slots[name] = slot
        if self.probe.predicate is not None:
            em.at(self.probe.predicate.span)
            self.gen_int(self.probe.predicate)
            b.jmp("jeq", R0, 0, ".exit")
        self.block(self.probe.body)
        b.label(".exit")
        b.mov(R0, 0)
        b.exit()
        while self.callbacks:  # for-loop bodies, as subprograms after the main one
            self.callback(*self.callbacks.pop(0))
        try:
            return b.build()
        except AsmError as e:  # a jump too far: a huge unrolled body
            raise CompileError([error(f"the generated program is too large: {e}", self.probe.span)]) from None

    probe_index = 0

    # -- statements --------------------------------------------------------------------------------
    def block(self, block: ast.Block) -> bool:
        """Emit `block`; True when it always jumps away (exit, return, break, continue).

        Code after such a statement is unreachable, and the verifier refuses unreachable code, so it is
        not emitted (bpftrace does the same).
        """
        for s in block.stmts:
            mark = self.em.mark()
            self.em.at(s.span)
            done = self.stmt(s)
            self.em.release(mark)
            if done:
                return True
        return False

    def stmt(self, s: ast.Stmt) -> bool:
        """Emit one statement; True when control never continues after it."""
        b = self.b
        if isinstance(s, ast.Block):
            return self.block(s)
        if isinstance(s, ast.ExprStmt):
            return self.expr_stmt(s.expr)
        if isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.VarDecl):
            if s.value is not None:
                self.store_var(s.var.name, s.value)
        elif isinstance(s, ast.If):
            other, end = self.em.label("else"), self.em.label("fi")
            self.gen_int(s.cond)
            b.jmp("jeq", R0, 0, other)
            then_done = self.block(s.then)
            if not then_done:
                b.ja(end)
            b.label(other)
            else_done = self.stmt(s.orelse) if s.orelse is not None else False
            b.label(end)
            if then_done and else_done:
                return True
        elif isinstance(s, ast.While):
            top, end = self.em.label("while"), self.em.label("wend")
            b.label(top)
            self.gen_int(s.cond)
            b.jmp("jeq", R0, 0, end)
            self.loops.append((top, end))
            if not self.block(s.body):
                b.ja(top)
            self.loops.pop()
            b.label(end)
        elif isinstance(s, ast.Unroll):
            count = self.const_count(s.count)
            for _ in range(count):
                if self.block(s.body):
                    return True
        elif isinstance(s, ast.For):
            self.for_each(s)
        elif isinstance(s, ast.Break):
            self.jump(self.loops[-1][1])
            return True
        elif isinstance(s, ast.Continue):
            self.jump(self.loops[-1][0])
            return True
        elif isinstance(s, ast.Return):
            self.jump(self.exit_label)
            return True
        else:
            raise AssertionError(f"stmt: unexpected {type(s).__name__}")
        return False

    def const_count(self, e: ast.Expr) -> int:
        if isinstance(e, ast.Int):
            return e.value
        assert isinstance(e, ast.Positional)
        return int(self.param(e.index) or "0", 0)

    def store_var(self, name: str, value: ast.Expr) -> None:
        slot = self.var_slots[name]
        if is_big(self.type_of(value)):  # the variable holds the struct's address (`big_values`)
            self.gen_addr(value)
            self.b.stx(8, R10, slot, R0)
        elif self.type_of(value).in_memory:
            src = self.gen_mem(value)
            self.em.copy(slot, src, self.type_of(value).storage)
        else:
            self.gen_int(value)
            self.b.stx(8, R10, slot, R0)

    def assign(self, s: ast.Assign) -> None:
        value = self.analysis.rewrites.get(id(s), s.value)
        if isinstance(s.target, ast.Var):
            self.store_var(s.target.name, value)
            return
        m = s.target
        info = self.maps[m.name]
        is_agg = info.value.kind in AGGREGATIONS
        if isinstance(value, ast.Call) and is_agg and info.value.kind.value == value.name and s.op is None:
            self.aggregate(m, info, value)
            return
        if is_big(self.type_of(value)):  # staged in the scratch map: too large for the stack
            big_values.assign(self, m, value)
            return
        val = self.em.alloc(info.spec.value_size)
        self.gen_into(value, val)
        key = self.build_key(m)
        self.em.update(m.name, key, val)

    def aggregate(self, m: ast.Map, info: MapInfo, call: ast.Call) -> None:
        """count/sum/min/max/avg/stats/hist/lhist: update the value in place, or insert it."""
        b, em = self.b, self.em
        kind = info.value.kind
        arg = em.alloc(8)
        if call.args:
            self.gen_int(call.args[0])
        else:
            b.mov(R0, 1)
        b.stx(8, R10, arg, R0)
        if kind in (Kind.HIST, Kind.LHIST):
            key = self.build_key(m, extra=8)
            bucket_at = key + (info.key.storage if info.key is not None else 0)
            b.ldx(8, R0, R10, arg)
            if kind is Kind.HIST:
                em.log2_bucket(R0, R1)
            else:
                assert info.lhist is not None
                em.linear_bucket(R0, *info.lhist)
            b.stx(8, R10, bucket_at, R0)
            b.st(8, R10, arg, 1)  # each sample counts one in its bucket
        else:
            key = self.build_key(m)
        have, done = em.label("have"), em.label("agg")
        em.lookup(m.name, key)
        b.jmp("jne", R0, 0, have)
        # Missing: insert this CPU's first value (the kernel zeroes the other CPUs' copies; two CPUs
        # racing to insert the same key may lose one sample, as in bpftrace).
        val = em.alloc(16)
        b.ldx(8, R1, R10, arg)
        if kind in (Kind.AVG, Kind.STATS):
            b.st(8, R10, val, 1)
            b.stx(8, R10, val + 8, R1)
        elif kind is Kind.COUNT:
            b.st(8, R10, val, 1)
        elif kind in (Kind.MIN, Kind.MAX):
            b.stx(8, R10, val, R1)
            b.st(8, R10, val + 8, 1)
        else:
            b.stx(8, R10, val, R1)
        em.update(m.name, key, val)
        b.ja(done)
        b.label(have)  # r0: this CPU's value, which only this CPU writes
        b.ldx(8, R1, R10, arg)
        if kind in (Kind.COUNT, Kind.SUM, Kind.HIST, Kind.LHIST):
            b.ldx(8, R2, R0, 0)
            b.add(R2, R1)
            b.stx(8, R0, 0, R2)
        elif kind in (Kind.AVG, Kind.STATS):
            b.ldx(8, R2, R0, 0)
            b.add(R2, 1)
            b.stx(8, R0, 0, R2)
            b.ldx(8, R2, R0, 8)
            b.add(R2, R1)
            b.stx(8, R0, 8, R2)
        else:  # min / max: the first sample on this CPU, or a better one
            keep, store = em.label("keep"), em.label("store")
            b.ldx(8, R2, R0, 8)
            b.jmp("jeq", R2, 0, store)
            b.ldx(8, R2, R0, 0)
            b.jmp("jsge" if kind is Kind.MIN else "jsle", R1, R2, keep)
            b.label(store)
            b.stx(8, R0, 0, R1)
            b.st(8, R0, 8, 1)
            b.label(keep)
        b.label(done)

    # -- calls as statements -----------------------------------------------------------------------
    def event_id(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1

    def emit_event(self, event_id: int) -> None:
        off = self.em.alloc(8)
        self.b.st(8, R10, off, event_id)
        self.em.ringbuf_output(EVENTS_MAP, off, 8)

    def expr_stmt(self, e: ast.Expr) -> bool:
        """Emit an expression statement; True for exit(), after which control never continues."""
        if not isinstance(e, ast.Call):
            if self.type_of(e).in_memory:
                self.gen_mem(e)
            else:
                self.gen_int(e)
            return False
        if e.name in ("printf", "errorf", "warnf", "system", "cat"):
            self.printf(e)
        elif e.name == "join":
            self.join(e)
        elif e.name == "signal":
            a = e.args[0]
            if isinstance(a, ast.Str):
                self.b.mov(R1, signal_number(a.value.decode()) or 0)
            else:
                self.gen_int(a)
                self.b.mov(R1, R0)
            self.b.call(Helper.SEND_SIGNAL)
        elif e.name == "exit":
            self.emit_event(self.event_id(ExitEvent()))
            self.jump(self.exit_label)
            return True
        elif e.name in ("print", "clear", "zero"):
            a = e.args[0]
            if isinstance(a, ast.Map) and not a.keys:
                top, div = (self.const_arg(x) for x in (*e.args[1:], ast.Int(0), ast.Int(0))[:2])
                self.emit_event(self.event_id(MapEvent(e.name, a.name, top, div)))
            else:  # print(value)
                t = self.type_of(a)
                text = (Kind.STR, Kind.TIMESTAMP, Kind.INET, Kind.KSTACK, Kind.USTACK, Kind.CGROUP_PATH,
                        Kind.ARRAY, Kind.STRUCT)
                fmt = "%r\n" if t.kind is Kind.BUF else "%s\n" if t.kind in text else "%d\n"
                self.printf_args(PrintfEvent(fmt, (t,), e.span), list(e.args))
        elif e.name == "delete":
            a = e.args[0]
            assert isinstance(a, ast.Map)
            key = self.build_key(a)
            self.em.delete(a.name, key)
        elif e.name == "time":
            fmt = e.args[0].value.decode() if e.args and isinstance(e.args[0], ast.Str) else "%H:%M:%S\n"
            self.emit_event(self.event_id(TimeEvent(fmt)))
        elif self.type_of(e).in_memory:
            self.gen_mem(e)
        else:
            self.gen_int(e)
        return False

    def join(self, e: ast.Call) -> None:
        """Copy up to JOIN_MAX strings of a NULL-terminated pointer array into a per-CPU scratch value
        (r7 holds it across the helper calls) and send it as one event."""
        b, em = self.b, self.em
        self.join_used = True
        delim = e.args[1].value.decode() if len(e.args) == 2 and isinstance(e.args[1], ast.Str) else " "
        read, read_str = read_helpers(self.type_of(e.args[0]))
        base, ptr, key = em.alloc(8), em.alloc(8), em.alloc(8)
        self.gen_int(e.args[0])
        b.stx(8, R10, base, R0)
        b.st(8, R10, key, 0)
        done, send = em.label("jdone"), em.label("jsend")
        em.lookup(JOIN_MAP, key)
        b.jmp("jeq", R0, 0, done)
        b.mov(R7, R0)
        b.st(8, R7, 0, self.event_id(JoinEvent(delim)))
        b.st(8, R7, 8, 0)
        for i in range(JOIN_MAX):
            em.stack_ptr(R1, ptr)
            b.mov(R2, 8)
            b.ldx(8, R3, R10, base)
            b.add(R3, i * 8)
            b.call(read)
            b.jmp("jne", R0, 0, send)
            b.ldx(8, R3, R10, ptr)
            b.jmp("jeq", R3, 0, send)
            b.mov(R1, R7)
            b.add(R1, 16 + i * STRLEN)
            b.mov(R2, STRLEN)
            b.call(read_str)
            b.st(8, R7, 8, i + 1)
        b.label(send)
        em.ringbuf_output_from(EVENTS_MAP, R7, JOIN_SIZE)
        b.label(done)

    def jump(self, label: str) -> None:
        self.jumped.add(label)
        self.b.ja(label)

    # -- for ($kv : @m) ----------------------------------------------------------------------------
    def for_each(self, s: ast.For) -> None:
        """bpf_for_each_map_elem(map, callback, &stop, 0); the callback sets `stop` when the body calls
        exit(), and then this program exits too. Minimum kernel: 5.13."""
        b, em = self.b, self.em
        assert isinstance(s.iterable, ast.Map)
        cb = em.label("foreach")
        stop = em.alloc(8)
        b.st(8, R10, stop, 0)
        b.ld_map(R1, s.iterable.name)
        b.ld_func(R2, cb)
        em.stack_ptr(R3, stop)
        b.mov(R4, 0)
        b.call(Helper.FOR_EACH_MAP_ELEM)
        b.ldx(8, R1, R10, stop)
        self.jumped.add(self.exit_label)
        b.jmp("jne", R1, 0, self.exit_label)
        self.callbacks.append((cb, s))

    def callback(self, label: str, s: ast.For) -> None:
        """The body of `s` as a callback(map, key, value, stop): returns 0 to go on, 1 to stop."""
        b, em = self.b, self.em
        assert isinstance(s.iterable, ast.Map)
        info = self.maps[s.iterable.name]
        assert info.key is not None
        saved = (em.top, dict(self.var_slots), self.exit_label, self.loops)
        em.top = 0  # a frame of its own
        self.func_starts.append(b.slot)
        b.label(label)
        keyp, valp, stopp = em.alloc(8), em.alloc(8), em.alloc(8)
        b.stx(8, R10, keyp, R2)
        b.stx(8, R10, valp, R3)
        b.stx(8, R10, stopp, R4)
        kv_type = self.type_of(s.var)
        kv = em.alloc(kv_type.storage)
        self.var_slots = {s.var.name: kv}
        body_vars = {n.name: self.type_of(n) for n in walk.nodes(s.body)
                     if isinstance(n, ast.Var) and id(n) in self.analysis.types and n.name != s.var.name}
        for name, t in sorted(body_vars.items()):
            self.var_slots[name] = em.alloc(slot_size(t))
            em.zero(self.var_slots[name], slot_size(t))
        b.ldx(8, R2, R10, keyp)
        em.copy(kv, 0, info.key.storage, src_reg=R2)
        at = kv + info.key.storage
        if info.value.kind in AGGREGATIONS:  # this CPU's copy is not the value: merge the CPUs'
            self.percpu_read(s.iterable.name, info.value.kind, lambda: b.ldx(8, R2, R10, keyp))
            b.stx(8, R10, at, R0)
        else:
            b.ldx(8, R2, R10, valp)
            em.copy(at, 0, kv_type.storage - info.key.storage, src_reg=R2)
        nxt, stop, leave = em.label("cbnext"), em.label("cbstop"), em.label("cbexit")
        self.loops, self.exit_label = [(nxt, stop)], leave
        if not self.block(s.body) or nxt in self.jumped:  # emit only reachable code: the verifier asks
            b.label(nxt)
            b.mov(R0, 0)
            b.exit()
        if stop in self.jumped:
            b.label(stop)
            b.mov(R0, 1)
            b.exit()
        if leave in self.jumped:  # exit(): tell the caller, and stop iterating
            b.label(leave)
            b.ldx(8, R1, R10, stopp)
            b.st(8, R1, 0, 1)
            b.mov(R0, 1)
            b.exit()
        em.top, self.var_slots, self.exit_label, self.loops = saved

    def const_arg(self, e: ast.Expr) -> int:
        """The value of an integer literal or positional parameter (checked by the analysis)."""
        if isinstance(e, ast.Positional):
            text = self.param(e.index)
            return int(text, 0) if text else 0
        assert isinstance(e, ast.Int)
        return e.value

    def printf(self, e: ast.Call) -> None:
        fmt = e.args[0]
        assert isinstance(fmt, ast.Str)
        if self.attach.provider == "iter" and self.attach.pin and e.name == "printf":
            self.seq_printf(fmt, e.args[1:])
            return
        types = tuple(self.type_of(a) for a in e.args[1:])
        streams = {"errorf": "error", "warnf": "warning", "system": "system", "cat": "cat"}
        stream = streams.get(e.name, "stdout")
        event = PrintfEvent(fmt.value.decode("utf-8", "replace"), types, e.span, stream)
        self.printf_args(event, list(e.args[1:]))

    def seq_printf(self, fmt: ast.Str, args: Sequence[ast.Expr]) -> None:
        """printf in a pinned iter probe: bpf_seq_printf(ctx->meta->seq, fmt, fmt_len, data, data_len),
        `fmt` read from the read-only format map, each argument a u64 in `data` (a string by the
        address of its stack copy)."""
        from bpfkit.lang.seq_printf import FORMAT_MAP, add_format, kernel_format

        b, em = self.b, self.em
        if self.exit_label != ".exit":  # in a for-loop callback, r6 is not the context
            raise CompileError([error("printf in a pinned iter probe cannot be used in a for loop over a "
                                      "map: the loop body runs without the iterator's context", fmt.span)])
        text, _ = kernel_format(fmt.value.decode("utf-8", "replace"))
        encoded = text.encode()
        offset = add_format(self.seq_formats, encoded)
        data = em.alloc(8 * len(args)) if args else 0
        for i, a in enumerate(args):
            if self.type_of(a).kind is Kind.STR:
                at = self.gen_mem(a)
                em.stack_ptr(R0, at)
            else:
                self.gen_int(a)
            b.stx(8, R10, data + 8 * i, R0)
        key = em.alloc(8)
        b.st(8, R10, key, 0)
        skip = em.label("seqskip")
        em.lookup(FORMAT_MAP, key)
        b.jmp("jeq", R0, 0, skip)
        b.ldx(8, R1, R6, 0)  # ctx->meta (struct bpf_iter_meta *), first in every bpf_iter__* context
        b.ldx(8, R1, R1, 0)  # meta->seq
        b.mov(R2, R0)
        b.add(R2, offset)
        b.mov(R3, len(encoded) + 1)
        if args:
            em.stack_ptr(R4, data)
        else:
            b.mov(R4, 0)
        b.mov(R5, 8 * len(args))
        b.call(Helper.SEQ_PRINTF)
        b.label(skip)

    def printf_args(self, event: PrintfEvent, args: list[ast.Expr]) -> None:
        if any(is_big(t) for t in event.args):  # assembled in the scratch map: too large for the stack
            big_values.send(self, event, args)
            return
        size = 8 + sum(t.storage for t in event.args)
        off = self.em.alloc(size)
        self.em.zero(off, size)
        self.b.st(8, R10, off, self.event_id(event))
        pos = off + 8
        for a, t in zip(args, event.args, strict=True):
            self.gen_into(a, pos)
            pos += t.storage
        self.em.ringbuf_output(EVENTS_MAP, off, size)


def func_btf(name: str, callbacks: list[int]) -> tuple[bytes, bytes]:
    """A BTF blob naming the main program and each callback (starting at the given instruction
    slots), and the func_info records (u32 instruction offset, u32 FUNC type id) that point at them."""
    from bpfkit.btf.marshal import BtfBuilder
    from bpfkit.btf.types import Func, FuncProto, Int, Param
    from bpfkit.uapi.btf import IntEncoding

    bb = BtfBuilder()
    long = bb.add(Int("long", 8, IntEncoding.SIGNED))
    main_proto = bb.add(FuncProto(long, (Param("ctx", long),)))
    cb_proto = bb.add(FuncProto(long, tuple(Param(p, long) for p in ("map", "key", "value", "ctx"))))
    records = [(0, bb.add(Func(name or "prog", main_proto)))]
    records += [(slot, bb.add(Func(f"foreach_{i}", cb_proto))) for i, slot in enumerate(callbacks)]
    return bb.marshal(), b"".join(struct.pack("<II", off, tid) for off, tid in records)


def _tracepoint_format(ap: ast.AttachPoint, formats: FormatLookup) -> TracepointFormat | None:
    return formats(ap.target, ap.func) if ap.provider == "tracepoint" else None


def _uses_args(probe: ast.Probe) -> list[ast.FieldAccess]:
    """The ``args.field`` / ``args->field`` reads of a probe's predicate and body, in source order."""
    return [n for n in walk.nodes((probe.predicate, probe.body))
            if isinstance(n, ast.FieldAccess) and n.expr == ast.Builtin("args")]


def compile_program(program: ast.Program, formats: FormatLookup, options: Options = Options(),
                    expand: Expander | None = None) -> CompiledScript:
    """Analyze and generate code for a parsed script; `expand` turns wildcard attach points into
    concrete ones first, so ``args`` of ``tracepoint:syscalls:sys_enter_open*`` is typed."""
    if expand is not None:
        program = replace(program, probes=tuple(
            replace(p, attach_points=tuple(x for ap in p.attach_points for x in expand(ap)))
            for p in program.probes))
    analysis = analyze(program, formats, options.params, unsafe=options.unsafe, kfuncs=options.kfuncs,
                       btf=options.btf, ksyms=options.ksyms, usdt=options.usdt, usyms=options.usyms)
    maps = map_infos(analysis.maps)
    events: list[Event] = []
    probes: list[CompiledProbe] = []
    stacks: set[str] = set()
    join_used = False
    seq_formats: list[bytes] = []
    big_size = 0
    for index, probe in enumerate(program.probes):
        for ap in probe.attach_points:
            fmt = _tracepoint_format(ap, formats)
            if fmt is not None:
                for fa in _uses_args(probe):
                    if not field_type_ok(fmt, fa.field):
                        raise CompileError([error(f"tracepoint {ap.target}:{ap.func} has no readable "
                                                  f"field '{fa.field}'", fa.span)])
            em = Emitter()
            gen = ProbeGen(em, analysis, maps, events, probe, ap, fmt, options)
            kf = options.kfuncs(ap.func) if ap.provider in ATTACH_TYPES and options.kfuncs else None
            gen.kfunc = kf
            if ap.provider == "usdt" and options.usdt is not None:
                gen.usdt_sites = _usdt_sites(ap, options.usdt)
            gen.probe_index = index
            gen.seq_formats = seq_formats
            insns = gen.generate()
            stacks |= gen.stacks_used
            join_used = join_used or gen.join_used
            big_size = max(big_size, gen.big_size)
            btf_id = kf.btf_id if kf is not None else 0
            if ap.provider == "iter":
                btf_id = _iter_btf_id(ap, options)
            spec = ProgramSpec(PROG_TYPES[ap.provider], tuple(insns), name=_prog_name(ap),
                               expected_attach_type=ATTACH_TYPES.get(ap.provider), attach_btf_id=btf_id)
            btf = b""
            if gen.func_starts:  # the kernel wants func_info for programs with callbacks
                btf, finfo = func_btf(_prog_name(ap), gen.func_starts)
                spec = replace(spec, func_info=finfo, func_info_rec_size=8)
            refs = tuple((r.slot, r.symbol) for r in em.b.relocations)
            spans = tuple(sorted(em.spans, key=lambda x: x[0]))
            probes.append(CompiledProbe(ap, canonical_name(ap), spec, refs, spans, btf))
    ring = MapSpec(MapType.RINGBUF, max_entries=EVENTS_SIZE, name="bpfkit_events")
    aux = tuple((KSTACK_MAP if s == "kstack" else USTACK_MAP,
                 MapSpec(MapType.STACK_TRACE, 4, 8 * STACK_FRAMES, MAP_ENTRIES, name=f"bpfkit_{s}"))
                for s in sorted(stacks))
    if join_used:
        aux += ((JOIN_MAP, MapSpec(MapType.PERCPU_ARRAY, 4, JOIN_SIZE, 1, name="bpfkit_join")),)
    if big_size:
        aux += ((big_values.BIG_MAP, MapSpec(MapType.PERCPU_ARRAY, 4, big_size, 1, name="bpfkit_big")),)
    if seq_formats:
        from bpfkit.lang.seq_printf import FORMAT_MAP, formats_blob

        blob = formats_blob(seq_formats)
        aux += ((FORMAT_MAP, MapSpec(MapType.ARRAY, 4, len(blob), 1, flags=MapFlags.RDONLY_PROG,
                                     name="bpfkit_seqfmt", contents=((bytes(4), blob),), freeze=True)),)
    return CompiledScript(tuple(maps.values()), tuple(events), tuple(probes), ring, aux)


def _usdt_sites(ap: ast.AttachPoint, lookup: UsdtLookup) -> Sequence[Sequence[UsdtArgSpec]]:
    try:
        return lookup(ap)
    except BpfkitError as e:  # analyze() reported it already; kept for callers of codegen alone
        raise CompileError([error(str(e), ap.span)]) from None


def _iter_btf_id(ap: ast.AttachPoint, options: Options) -> int:
    """The BTF id of the kernel function ``bpf_iter_<target>`` an iter program is loaded against."""
    from bpfkit.btf.types import Func

    spec = options.btf() if options.btf is not None else None
    ids = spec.find_ids(f"bpf_iter_{ap.target}", Func) if spec is not None else []
    if not ids:
        raise CompileError([error(f"iter {ap.target} not available for your kernel version (no function "
                                  f"bpf_iter_{ap.target} in its BTF)", ap.span)])
    return ids[0]


def _prog_name(ap: ast.AttachPoint) -> str:
    base = {"BEGIN": "BEGIN", "END": "END"}.get(ap.provider, ap.func or ap.provider)
    return "".join(c if c.isalnum() or c == "_" else "_" for c in base)[:15]


def compile_script(text: str, formats: FormatLookup, *, name: str = "stdin", options: Options = Options(),
                   expand: Expander | None = None) -> CompiledScript:
    """Parse and compile script `text` (see `compile_program`)."""
    return compile_program(parse(text, name), formats, options, expand)


def no_formats(category: str, name: str) -> TracepointFormat | None:
    """A `FormatLookup` that knows no tracepoints (for scripts with only BEGIN/END)."""
    return None

