"""Expression code generation: integers into r0, strings and tuples into stack memory.

`ExprGen` is the half of the per-probe code generator that evaluates expressions. Integer-typed
expressions leave their value in r0 (`gen_int`); strings and tuples are written to a stack slot
(`gen_mem`, which returns the slot's offset from r10 and writes into `dest` when given one).
Intermediate integers are spilled to stack slots, so no register allocation is needed.
"""

from __future__ import annotations

from bpfkit.lang import ast
from bpfkit.lang.emit import R0, R1, R2, R3, R6, R10, Emitter
from bpfkit.lang.probes import canonical_name
from bpfkit.lang.resources import KSTACK_MAP, USTACK_MAP, MapInfo
from bpfkit.lang.semantic import Analysis, KfuncInfo, tracepoint_field_type
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.lang.types import STRLEN, Kind, Type
from bpfkit.uapi.enums import Helper, StackFlags

#: struct pt_regs offsets of the x86-64 argument registers di, si, dx, cx, r8, r9 and of ax.
PT_REGS_ARGS = (112, 104, 96, 88, 72, 64)
PT_REGS_AX = 80

_SIMPLE_HELPERS = {
    "nsecs": Helper.KTIME_GET_NS, "cpu": Helper.GET_SMP_PROCESSOR_ID, "rand": Helper.GET_PRANDOM_U32,
    "cgroup": Helper.GET_CURRENT_CGROUP_ID, "curtask": Helper.GET_CURRENT_TASK,
    "jiffies": Helper.JIFFIES64, "numaid": Helper.GET_NUMA_NODE_ID,
}
_ALU = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or", "^": "xor",
        "<<": "lsh"}
_CMP = {"==": ("jeq", "jeq"), "!=": ("jne", "jne"), "<": ("jlt", "jslt"), "<=": ("jle", "jsle"),
        ">": ("jgt", "jsgt"), ">=": ("jge", "jsge")}


class ExprGen:
    """Expression evaluation for one probe's program."""

    def __init__(self, em: Emitter, analysis: Analysis, maps: dict[str, MapInfo], attach: ast.AttachPoint,
                 fmt: TracepointFormat | None, start_ns: int, ncpus: int) -> None:
        self.em = em
        self.b = em.b
        self.analysis = analysis
        self.maps = maps
        self.attach = attach
        self.fmt = fmt
        self.start_ns = start_ns
        self.ncpus = ncpus
        self.var_slots: dict[str, int] = {}
        self.cpid = 0
        self.stacks_used: set[str] = set()
        self.kfunc: KfuncInfo | None = None

    def type_of(self, e: ast.Expr) -> Type:
        return self.analysis.type_of(e)

    # -- integers ----------------------------------------------------------------------------------
    def gen_int(self, e: ast.Expr) -> None:
        """Evaluate integer expression `e` into r0."""
        b = self.b
        if isinstance(e, ast.Int):
            self.em.load_imm(R0, e.value)
        elif isinstance(e, ast.Bool):
            b.mov(R0, int(e.value))
        elif isinstance(e, ast.Positional):
            text = self.param(e.index)
            self.em.load_imm(R0, int(text, 0) if text else 0)
        elif isinstance(e, ast.PositionalCount):
            b.mov(R0, len(self.analysis.params))
        elif isinstance(e, ast.Builtin):
            self.builtin_int(e.name)
        elif isinstance(e, ast.Var):
            b.ldx(8, R0, R10, self.var_slots[e.name])
        elif isinstance(e, ast.Map):
            self.map_read_int(e)
        elif isinstance(e, ast.Binary):
            self.binary(e)
        elif isinstance(e, ast.Unary):
            self.unary(e)
        elif isinstance(e, ast.Ternary):
            other, end = self.em.label("else"), self.em.label("tend")
            self.gen_int(e.cond)
            b.jmp("jeq", R0, 0, other)
            self.gen_int(e.then)
            b.ja(end)
            b.label(other)
            self.gen_int(e.orelse)
            b.label(end)
        elif isinstance(e, ast.Cast):
            self.gen_int(e.expr)
            t = self.type_of(e)
            self.em.truncate(R0, t.size, t.signed)
        elif isinstance(e, ast.FieldAccess):
            self.tracepoint_int(e)
        elif isinstance(e, ast.TupleAccess):
            off = self.gen_mem(e.expr)
            t = self.type_of(e.expr)
            b.ldx(8, R0, R10, off + t.offsets()[e.index])
        elif isinstance(e, ast.Call) and e.name == "nsecs":
            b.call(Helper.KTIME_GET_NS)
        elif isinstance(e, ast.Call) and e.name == "strncmp":
            self.strncmp(e)
        else:
            raise AssertionError(f"gen_int: unexpected {type(e).__name__}")

    def param(self, index: int) -> str:
        params = self.analysis.params
        return params[index - 1] if index <= len(params) else ""

    def builtin_int(self, name: str) -> None:
        b = self.b
        if name in ("pid", "tid"):
            b.call(Helper.GET_CURRENT_PID_TGID)
            if name == "pid":
                b.alu("rsh", R0, 32)
            else:
                b.mov32(R0, R0)
        elif name in ("uid", "gid"):
            b.call(Helper.GET_CURRENT_UID_GID)
            if name == "gid":
                b.alu("rsh", R0, 32)
            else:
                b.mov32(R0, R0)
        elif name in _SIMPLE_HELPERS:
            b.call(_SIMPLE_HELPERS[name])
        elif name == "elapsed":
            b.call(Helper.KTIME_GET_NS)
            self.em.load_imm(R1, self.start_ns)
            b.sub(R0, R1)
        elif name == "ncpus":
            b.mov(R0, self.ncpus)
        elif name == "cpid":
            self.em.load_imm(R0, self.cpid)
        elif name == "retval" and self.kfunc is not None:  # fexit: after the arguments
            b.ldx(8, R0, R6, len(self.kfunc.params) * 8)
        elif name == "retval":
            b.ldx(8, R0, R6, PT_REGS_AX)
        elif name.startswith("arg"):
            n = int(name[3:])
            if self.attach.provider == "rawtracepoint":
                b.ldx(8, R0, R6, n * 8)
            else:
                b.ldx(8, R0, R6, PT_REGS_ARGS[n])
        else:
            raise AssertionError(f"builtin_int: {name}")

    def tracepoint_int(self, e: ast.FieldAccess) -> None:
        if self.kfunc is not None:  # fentry/fexit: the context is the arguments as an array of u64
            index = [name for name, _ in self.kfunc.params].index(e.field)
            t = self.kfunc.params[index][1]
            self.b.ldx(8, R0, R6, index * 8)
            self.em.truncate(R0, t.size, t.signed)
            return
        assert self.fmt is not None
        f = self.fmt.field(e.field)
        assert f is not None
        self.b.ldx(f.size, R0, R6, f.offset)
        self.em.truncate(R0, f.size, f.signed)

    def spill(self) -> int:
        off = self.em.alloc(8)
        self.b.stx(8, R10, off, R0)
        return off

    def binary(self, e: ast.Binary) -> None:
        b = self.b
        lt, rt = self.type_of(e.left), self.type_of(e.right)
        if e.op in ("&&", "||"):
            short, end = self.em.label("sc"), self.em.label("scend")
            self.gen_int(e.left)
            b.jmp("jeq" if e.op == "&&" else "jne", R0, 0, short)
            self.gen_int(e.right)
            b.jmp("jeq" if e.op == "&&" else "jne", R0, 0, short)
            b.mov(R0, int(e.op == "&&"))
            b.ja(end)
            b.label(short)
            b.mov(R0, int(e.op == "||"))
            b.label(end)
            return
        if lt.kind is Kind.STR:
            self.string_compare(e)
            return
        self.gen_int(e.left)
        left = self.spill()
        self.gen_int(e.right)
        b.mov(R2, R0)
        b.ldx(8, R1, R10, left)
        signed = lt.signed and rt.signed
        if e.op in _CMP:
            yes = self.em.label("yes")
            b.mov(R0, 1)
            b.jmp(_CMP[e.op][1 if signed else 0], R1, R2, yes)
            b.mov(R0, 0)
            b.label(yes)
            return
        if e.op in ("/", "%"):  # the kernel would make x/0 zero; do it explicitly for clarity
            nonzero = self.em.label("nz")
            b.jmp("jne", R2, 0, nonzero)
            b.mov(R0, 0)
            done = self.em.label("div")
            b.ja(done)
            b.label(nonzero)
            b.alu(_ALU[e.op], R1, R2)
            b.mov(R0, R1)
            b.label(done)
            return
        op = "arsh" if e.op == ">>" and lt.signed else "rsh" if e.op == ">>" else _ALU[e.op]
        b.alu(op, R1, R2)
        b.mov(R0, R1)

    def string_compare(self, e: ast.Binary) -> None:
        """``a == b`` / ``a != b`` on strings: byte by byte up to the first NUL."""
        b = self.b
        eq, ne, done = self.em.label("seq"), self.em.label("sne"), self.em.label("scmp")
        lit = e.right if isinstance(e.right, ast.Str) else e.left if isinstance(e.left, ast.Str) else None
        if isinstance(lit, ast.Str):
            off = self.gen_mem(e.left if lit is e.right else e.right)
            for i, ch in enumerate(lit.value[:STRLEN - 1] + b"\0"):
                b.ldx(1, R1, R10, off + i)
                b.jmp("jne", R1, ch, ne)
        else:
            a = self.gen_mem(e.left)
            c = self.gen_mem(e.right)
            for i in range(STRLEN):
                b.ldx(1, R1, R10, a + i)
                b.ldx(1, R2, R10, c + i)
                b.jmp("jne", R1, R2, ne)
                b.jmp("jeq", R1, 0, eq)
        b.label(eq)
        b.mov(R0, int(e.op == "=="))
        b.ja(done)
        b.label(ne)
        b.mov(R0, int(e.op != "=="))
        b.label(done)

    def strncmp(self, e: ast.Call) -> None:
        """strncmp(a, b, n): 0 when the first n bytes (up to a NUL) are equal, else 1 (as bpftrace)."""
        b = self.b
        a = self.gen_mem(e.args[0])
        c = self.gen_mem(e.args[1])
        n = e.args[2]
        assert isinstance(n, ast.Int)
        ne, done = self.em.label("ncne"), self.em.label("ncmp")
        b.mov(R0, 0)
        for i in range(min(n.value, STRLEN)):
            b.ldx(1, R1, R10, a + i)
            b.ldx(1, R2, R10, c + i)
            b.jmp("jne", R1, R2, ne)
            b.jmp("jeq", R1, 0, done)
        b.ja(done)
        b.label(ne)
        b.mov(R0, 1)
        b.label(done)

    def unary(self, e: ast.Unary) -> None:
        b = self.b
        if e.op in ("++", "--"):
            self.incdec(e)
            return
        self.gen_int(e.operand)
        if e.op == "-":
            b.neg(R0)
        elif e.op == "~":
            b.alu("xor", R0, -1)
        elif e.op == "!":
            zero = self.em.label("not")
            b.mov(R1, R0)
            b.mov(R0, 1)
            b.jmp("jeq", R1, 0, zero)
            b.mov(R0, 0)
            b.label(zero)

    def incdec(self, e: ast.Unary) -> None:
        b = self.b
        delta = 1 if e.op == "++" else -1
        target = e.operand
        if isinstance(target, ast.Var):
            slot = self.var_slots[target.name]
            b.ldx(8, R0, R10, slot)
            b.mov(R1, R0)
            b.add(R1, delta)
            b.stx(8, R10, slot, R1)
            if not e.postfix:
                b.mov(R0, R1)
            return
        assert isinstance(target, ast.Map)
        key = self.build_key(target)
        have, done = self.em.label("have"), self.em.label("incd")
        self.em.lookup(target.name, key)
        b.jmp("jne", R0, 0, have)
        val = self.em.alloc(8)
        b.st(8, R10, val, delta)
        self.em.update(target.name, key, val)
        b.mov(R0, 0 if e.postfix else delta)
        b.ja(done)
        b.label(have)
        b.ldx(8, R1, R0, 0)
        b.mov(R2, R1)
        b.add(R2, delta)
        b.stx(8, R0, 0, R2)
        b.mov(R0, R1 if e.postfix else R2)
        b.label(done)

    def map_read_int(self, e: ast.Map) -> None:
        b = self.b
        key = self.build_key(e)
        missing, done = self.em.label("miss"), self.em.label("mread")
        self.em.lookup(e.name, key)
        b.jmp("jeq", R0, 0, missing)
        b.ldx(8, R0, R0, 0)
        b.ja(done)
        b.label(missing)
        b.mov(R0, 0)
        b.label(done)

    # -- memory values -----------------------------------------------------------------------------
    def gen_mem(self, e: ast.Expr, dest: int | None = None) -> int:
        """Write string/tuple expression `e` to the stack (at `dest` if given); return its offset."""
        t = self.type_of(e)
        size = t.storage
        if isinstance(e, ast.Var) and dest is None:
            return self.var_slots[e.name]
        out = dest if dest is not None else self.em.alloc(size)
        b = self.b
        if isinstance(e, ast.Var):
            self.em.copy(out, self.var_slots[e.name], size)
        elif isinstance(e, ast.Str):
            self.em.const_bytes(out, e.value[:STRLEN - 1], STRLEN)
        elif isinstance(e, ast.Positional):
            self.em.const_bytes(out, self.param(e.index).encode()[:STRLEN - 1], STRLEN)
        elif isinstance(e, ast.Builtin) and e.name in ("kstack", "ustack"):
            self.stack(e.name, out)
        elif isinstance(e, ast.Builtin):
            self.builtin_str(e.name, out)
        elif isinstance(e, ast.Tuple):
            for elem, pos in zip(e.elems, t.offsets(), strict=True):
                self.gen_into(elem, out + pos)
        elif isinstance(e, ast.Call) and e.name == "str":
            self.call_str(e, out)
        elif isinstance(e, ast.Call) and e.name in ("ksym", "usym"):
            self.gen_int(e.args[0])
            b.stx(8, R10, out, R0)
            if e.name == "usym":
                b.call(Helper.GET_CURRENT_PID_TGID)
                b.alu("rsh", R0, 32)
                b.stx(8, R10, out + 8, R0)
        elif isinstance(e, ast.FieldAccess):
            self.tracepoint_str(e, out)
        elif isinstance(e, ast.Map):
            key = self.build_key(e)
            missing, done = self.em.label("miss"), self.em.label("mread")
            self.em.lookup(e.name, key)
            b.jmp("jeq", R0, 0, missing)
            self.em.copy(out, 0, size, src_reg=R0)
            b.ja(done)
            b.label(missing)
            self.em.zero(out, size)
            b.label(done)
        elif isinstance(e, ast.Ternary):
            other, end = self.em.label("else"), self.em.label("tend")
            self.gen_int(e.cond)
            b.jmp("jeq", R0, 0, other)
            self.gen_mem(e.then, out)
            b.ja(end)
            b.label(other)
            self.gen_mem(e.orelse, out)
            b.label(end)
        elif isinstance(e, ast.TupleAccess):
            src = self.gen_mem(e.expr)
            inner = self.type_of(e.expr)
            self.em.copy(out, src + inner.offsets()[e.index], size)
        else:
            raise AssertionError(f"gen_mem: unexpected {type(e).__name__}")
        return out

    def gen_into(self, e: ast.Expr, off: int) -> None:
        """Store any value expression at r10+off in its storage layout."""
        if self.type_of(e).in_memory:
            self.gen_mem(e, off)
        else:
            self.gen_int(e)
            self.b.stx(8, R10, off, R0)

    def builtin_str(self, name: str, out: int) -> None:
        if name == "comm":
            self.em.zero(out, STRLEN)
            self.em.stack_ptr(R1, out)
            self.b.mov(R2, 16)
            self.b.call(Helper.GET_CURRENT_COMM)
        elif name == "probe":
            self.em.const_bytes(out, canonical_name(self.attach).encode(), STRLEN)
        elif name == "func":
            self.em.const_bytes(out, (self.attach.func or canonical_name(self.attach)).encode(), STRLEN)
        else:
            raise AssertionError(f"builtin_str: {name}")

    def stack(self, name: str, out: int) -> None:
        """bpf_get_stackid into the stack trace map; ustack also records the pid to symbolize with."""
        b = self.b
        self.stacks_used.add(name)
        b.mov(R1, R6)
        b.ld_map(R2, KSTACK_MAP if name == "kstack" else USTACK_MAP)
        b.mov(R3, 0 if name == "kstack" else int(StackFlags.USER_STACK))
        b.call(Helper.GET_STACKID)
        b.stx(8, R10, out, R0)
        if name == "ustack":
            b.call(Helper.GET_CURRENT_PID_TGID)
            b.alu("rsh", R0, 32)
            b.stx(8, R10, out + 8, R0)

    def call_str(self, e: ast.Call, out: int) -> None:
        b = self.b
        src = e.args[0]
        st = self.type_of(src)
        if st.kind is Kind.STR:
            self.gen_mem(src, out)
            return
        limit = STRLEN
        if len(e.args) == 2:
            n = e.args[1]
            if isinstance(n, ast.Int):
                limit = max(1, min(STRLEN, n.value))
            else:
                self.gen_int(n)
                slot = self.spill()
                self.gen_int(src)
                b.mov(R3, R0)
                b.ldx(8, R2, R10, slot)
                ok = self.em.label("len")
                b.jmp("jle", R2, STRLEN, ok)
                b.mov(R2, STRLEN)
                b.label(ok)
                self.em.zero(out, STRLEN)
                self.em.stack_ptr(R1, out)
                b.call(Helper.PROBE_READ_USER_STR if st.user else Helper.PROBE_READ_KERNEL_STR)
                return
        self.gen_int(src)
        b.mov(R3, R0)
        self.em.zero(out, STRLEN)
        self.em.stack_ptr(R1, out)
        b.mov(R2, limit)
        b.call(Helper.PROBE_READ_USER_STR if st.user else Helper.PROBE_READ_KERNEL_STR)

    def tracepoint_str(self, e: ast.FieldAccess, out: int) -> None:
        assert self.fmt is not None
        f = self.fmt.field(e.field)
        assert f is not None
        b = self.b
        self.em.zero(out, STRLEN)
        if f.data_loc:
            b.ldx(4, R3, R6, f.offset)
            b.alu("and", R3, 0xFFFF)
            b.add(R3, R6)
            b.mov(R2, STRLEN)
        else:
            b.mov(R3, R6)
            b.add(R3, f.offset)
            b.mov(R2, min(STRLEN, f.array or f.size))
        self.em.stack_ptr(R1, out)
        b.call(Helper.PROBE_READ_KERNEL_STR)

    # -- maps --------------------------------------------------------------------------------------
    def build_key(self, m: ast.Map, extra: int = 0) -> int:
        """Write the key of map access `m` (plus `extra` bytes, for hist buckets) to a stack slot."""
        info = self.maps[m.name]
        size = (info.key.storage if info.key is not None else 0) + extra
        off = self.em.alloc(max(size, 8))
        if not m.keys:
            if not extra:
                self.b.st(8, R10, off, 0)
            return off
        if len(m.keys) == 1:
            self.gen_into(m.keys[0], off)
            return off
        assert info.key is not None
        for k, pos in zip(m.keys, info.key.offsets(), strict=True):
            self.gen_into(k, off + pos)
        return off


def field_type_ok(fmt: TracepointFormat, name: str) -> bool:
    """Whether tracepoint field `name` exists and has a readable type (for per-attach-point checks)."""
    f = fmt.field(name)
    return f is not None and tracepoint_field_type(f, fmt.category) is not None
