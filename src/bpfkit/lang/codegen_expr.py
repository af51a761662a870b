"""Expression code generation: integers into r0, strings and tuples into stack memory.

`ExprGen` is the half of the per-probe code generator that evaluates expressions. Integer-typed
expressions leave their value in r0 (`gen_int`); strings and tuples are written to a stack slot
(`gen_mem`, which returns the slot's offset from r10 and writes into `dest` when given one).
Intermediate integers are spilled to stack slots, so no register allocation is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bpfkit.errors import CompileError
from bpfkit.lang import ast
from bpfkit.lang.big_values import is_big, map_value_addr, too_big_message
from bpfkit.lang.codegen_arrays import ArrayGen
from bpfkit.lang.diagnostics import error
from bpfkit.lang.emit import R0, R1, R2, R3, R6, R10, Emitter
from bpfkit.lang.probes import canonical_name
from bpfkit.lang.resources import KSTACK_MAP, USTACK_MAP, MapInfo
from bpfkit.lang.semantic import Analysis, KfuncInfo, tracepoint_field_type
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.lang.types import STRLEN, Kind, Type
from bpfkit.obj.usdt import UsdtArgSpec, emit_usdt_arg
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


class ExprGen(ArrayGen):
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
        self.usdt_sites: Sequence[Sequence[UsdtArgSpec]] | None = None
        """The parsed arguments of each site of a usdt attach point's probe (None: no binary read)."""

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
        elif isinstance(e, ast.Unary) and e.op == "*":
            self.gen_int(e.operand)
            t, pt = self.type_of(e), self.type_of(e.operand)
            self.read_int(t.size, t.signed, pt.user, anyspace=pt.anyspace)
        elif isinstance(e, ast.Unary) and e.op == "&":
            self.gen_addr(e.operand)
        elif isinstance(e, ast.Index):
            self.index_int(e)
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
        elif isinstance(e, ast.FieldAccess) and self.type_of(e.expr).kind is Kind.STRUCT:
            self.member_int(e)
        elif isinstance(e, ast.FieldAccess) and id(e) in self.analysis.fields:
            self.struct_field_int(e)
        elif isinstance(e, ast.FieldAccess):
            self.tracepoint_int(e)
        elif isinstance(e, ast.TupleAccess):
            off = self.gen_mem(e.expr)
            t = self.type_of(e.expr)
            b.ldx(8, R0, R10, off + t.offsets()[e.index])
        elif isinstance(e, ast.Call) and e.name in ("kaddr", "uaddr"):
            self.em.load_imm(R0, self.analysis.consts[id(e)])
        elif isinstance(e, ast.Call) and e.name == "strftime":  # the time; the format is in the type
            self.gen_int(e.args[1])
        elif isinstance(e, ast.Call) and e.name == "cgroup_path":  # the id; the runtime finds the path
            self.gen_int(e.args[0])
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
        elif name == "ctx":
            b.mov(R0, R6)
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
            elif self.attach.provider == "usdt":
                self.usdt_arg(n)
            else:
                b.ldx(8, R0, R6, PT_REGS_ARGS[n])
        else:
            raise AssertionError(f"builtin_int: {name}")

    def usdt_arg(self, n: int) -> None:
        """Argument `n` of the usdt probe into r0 (a memory operand needs a stack slot for the read)."""
        where = f"usdt probe {self.attach.raw}"
        span = self.em.span or self.attach.span
        sites = self.usdt_sites
        if not sites:
            raise CompileError([error(f"{where}: its arguments are unknown (compiled without reading the "
                                      "binary's USDT notes)", span)])
        b, mark = self.b, self.em.mark()
        slot = self.em.alloc(8)
        try:
            if all(site == sites[0] for site in sites):
                emit_usdt_arg(b, R0, R6, sites[0], n, stack_off=slot, where=where)
            else:  # sites keep it in different places: the attach cookie is the site's index
                end = self.em.label("usdt_end")
                b.mov(R1, R6)
                b.call(Helper.GET_ATTACH_COOKIE)
                for i, site in enumerate(sites):
                    other = self.em.label("usdt_site")
                    b.jmp("jne", R0, i, other)
                    emit_usdt_arg(b, R0, R6, site, n, stack_off=slot, where=f"{where} (site {i + 1})")
                    b.ja(end)
                    b.label(other)
                b.mov(R0, 0)
                b.label(end)
        except CompileError as e:  # plain messages: give them the source position
            raise CompileError([error(str(e), span)]) from None
        self.em.release(mark)

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

    # -- kernel structs (BTF) ----------------------------------------------------------------------
    def gen_addr(self, e: ast.Expr) -> None:
        """r0 = the address of struct-valued (RECORD) expression `e`."""
        if isinstance(e, ast.FieldAccess) and id(e) in self.analysis.fields:
            self.field_addr(e)
        elif isinstance(e, ast.Unary) and e.op == "*":
            self.gen_int(e.operand)
        elif isinstance(e, ast.Index):
            self.element_addr(e)
        elif isinstance(e, ast.Var):  # a big struct variable: it holds the address (`big_values`)
            self.b.ldx(8, R0, R10, self.var_slots[e.name])
        elif isinstance(e, ast.Map) and is_big(self.type_of(e)):  # its value, where the map keeps it
            map_value_addr(self, e)
        else:
            raise AssertionError(f"gen_addr: unexpected {type(e).__name__}")

    def field_addr(self, e: ast.FieldAccess) -> None:
        """r0 = the address of field access `e` (its struct's address plus the field's offset)."""
        base = self.type_of(e.expr)
        if base.kind is Kind.RECORD or is_big(base):
            self.gen_addr(e.expr)
        else:
            self.gen_int(e.expr)  # a pointer to the struct
        offset = self.analysis.fields[id(e)].offset
        if offset:
            self.b.add(R0, offset)

    def read_int(self, size: int, signed: bool, user: bool, bit_shift: int = 0, bit_size: int = 0, *,
                 anyspace: bool = False) -> None:
        """r0 = the `size`-byte integer at address r0, read with bpf_probe_read_kernel (or _user; or, for
        an address of no known space, `anyspace`, the legacy bpf_probe_read: see `read_helpers`).

        A failed read gives 0, as in bpftrace. For a bitfield, bits [bit_shift, bit_shift + bit_size)
        of the bytes read are extracted and sign- or zero-extended.
        """
        b = self.b
        slot = self.em.alloc(8)
        b.st(8, R10, slot, 0)
        b.mov(R3, R0)
        self.em.stack_ptr(R1, slot)
        b.mov(R2, size)
        b.call(Helper.PROBE_READ if anyspace else Helper.PROBE_READ_USER if user
               else Helper.PROBE_READ_KERNEL)
        if bit_size:
            b.ldx(8, R0, R10, slot)
            if bit_shift:
                b.alu("rsh", R0, bit_shift)
            b.alu("lsh", R0, 64 - bit_size)
            b.alu("arsh" if signed else "rsh", R0, 64 - bit_size)
            return
        b.ldx(size, R0, R10, slot)
        self.em.truncate(R0, size, signed)

    def base_user(self, e: ast.FieldAccess) -> bool:
        return self.type_of(e.expr).user

    def struct_field_int(self, e: ast.FieldAccess) -> None:
        info = self.analysis.fields[id(e)]
        self.field_addr(e)
        self.read_int(info.size, info.type.signed, self.base_user(e), info.bit_shift, info.bit_size)

    def struct_field_str(self, e: ast.FieldAccess, out: int) -> None:
        """An array of chars in a struct: its bytes, NUL-terminated (bpftrace prints it as a string)."""
        info = self.analysis.fields[id(e)]
        b = self.b
        self.field_addr(e)
        self.em.zero(out, STRLEN)
        b.mov(R3, R0)
        self.em.stack_ptr(R1, out)
        b.mov(R2, info.size)
        b.call(Helper.PROBE_READ_USER if self.base_user(e) else Helper.PROBE_READ_KERNEL)

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
        info = self.maps[e.name]
        if info.value.kind in (Kind.COUNT, Kind.SUM, Kind.MIN, Kind.MAX, Kind.AVG):
            key = self.build_key(e)
            self.percpu_read(e.name, info.value.kind, lambda: self.em.stack_ptr(R2, key))
            return
        key = self.build_key(e)
        missing, done = self.em.label("miss"), self.em.label("mread")
        self.em.lookup(e.name, key)
        b.jmp("jeq", R0, 0, missing)
        b.ldx(8, R0, R0, 0)
        b.ja(done)
        b.label(missing)
        b.mov(R0, 0)
        b.label(done)

    def percpu_read(self, name: str, kind: Kind, load_key: Callable[[], object]) -> None:
        """r0 = a per-CPU aggregation's value over every CPU (bpf_map_lookup_percpu_elem per CPU):
        the sum for count/sum, the best sample for min/max, total / count (rounded toward zero) for
        avg; 0 when no CPU has one. `load_key` puts the key's address in r2. Minimum kernel: 5.19."""
        b, em = self.b, self.em
        acc, seen = em.alloc(8), em.alloc(8)  # for avg: the count and the total
        b.st(8, R10, acc, 0)
        b.st(8, R10, seen, 0)
        for cpu in range(max(1, self.ncpus)):
            skip = em.label("cpu")
            b.ld_map(R1, name)
            load_key()
            b.mov(R3, cpu)
            b.call(Helper.MAP_LOOKUP_PERCPU_ELEM)
            b.jmp("jeq", R0, 0, skip)
            if kind in (Kind.COUNT, Kind.SUM, Kind.AVG):
                for at, slot in ((0, acc), (8, seen)) if kind is Kind.AVG else ((0, acc),):
                    b.ldx(8, R1, R0, at)
                    b.ldx(8, R2, R10, slot)
                    b.add(R2, R1)
                    b.stx(8, R10, slot, R2)
            else:
                take = em.label("take")
                b.ldx(8, R1, R0, 8)
                b.jmp("jeq", R1, 0, skip)  # this CPU never saw a sample
                b.ldx(8, R1, R0, 0)
                b.ldx(8, R2, R10, seen)
                b.jmp("jeq", R2, 0, take)
                b.ldx(8, R2, R10, acc)
                b.jmp("jsge" if kind is Kind.MIN else "jsle", R1, R2, skip)
                b.label(take)
                b.stx(8, R10, acc, R1)
                b.st(8, R10, seen, 1)
            b.label(skip)
        if kind is Kind.AVG:
            self.signed_divide(seen, acc)
            return
        b.ldx(8, R0, R10, acc)

    def signed_divide(self, num: int, den: int) -> None:
        """r0 = the signed 64-bit value at r10+num divided by the unsigned one at r10+den, rounded
        toward zero (0 when den is 0): unsigned division of the magnitude, as BPF before sdiv."""
        b, em = self.b, self.em
        pos, done = em.label("dpos"), em.label("ddone")
        b.ldx(8, R2, R10, den)
        b.mov(R0, 0)
        b.jmp("jeq", R2, 0, done)
        b.ldx(8, R0, R10, num)
        b.jmp("jsge", R0, 0, pos)
        b.neg(R0)
        b.alu("div", R0, R2)
        b.neg(R0)
        b.ja(done)
        b.label(pos)
        b.alu("div", R0, R2)
        b.label(done)

    # -- memory values -----------------------------------------------------------------------------
    def gen_mem(self, e: ast.Expr, dest: int | None = None) -> int:
        """Write string/tuple expression `e` to the stack (at `dest` if given); return its offset."""
        t = self.type_of(e)
        size = t.storage
        if is_big(t):  # staged in the scratch map instead, where it can be (`big_values`)
            raise CompileError([error(too_big_message(t), e.span)])
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
        elif isinstance(e, ast.Call) and e.name == "path":  # bpf_d_path(path, buf, size)
            null = self.em.label("nopath")
            self.em.zero(out, STRLEN)
            self.btf_pointer(e.args[0], null)
            b.mov(R1, R0)
            self.em.stack_ptr(R2, out)
            b.mov(R3, STRLEN)
            b.call(Helper.D_PATH)
            b.label(null)
        elif isinstance(e, ast.Call) and e.name in ("ksym", "usym"):
            self.gen_int(e.args[0])
            b.stx(8, R10, out, R0)
            if e.name == "usym":
                b.call(Helper.GET_CURRENT_PID_TGID)
                b.alu("rsh", R0, 32)
                b.stx(8, R10, out + 8, R0)
        elif isinstance(e, ast.Call) and e.name in ("kstack", "ustack"):
            self.stack(e.name, out)
        elif isinstance(e, ast.Call) and e.name == "buf":
            self.buf(e, out)
        elif isinstance(e, ast.Call) and e.name == "ntop":
            self.ntop(e, out)
        elif t.kind is Kind.STRUCT and isinstance(e, ast.FieldAccess | ast.Unary | ast.Index) \
                and not self.in_copy(e):
            self.struct_copy(e, out)
        elif isinstance(e, ast.FieldAccess) and self.type_of(e.expr).kind is Kind.STRUCT:
            self.member_copy(e, out)
        elif isinstance(e, ast.FieldAccess) and t.kind is Kind.ARRAY:
            self.array_field(e, out)
        elif isinstance(e, ast.FieldAccess) and id(e) in self.analysis.fields:
            self.struct_field_str(e, out)
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

    def buf(self, e: ast.Call, out: int) -> None:
        """buf(src, n): [u64 n][n bytes of src] (an array is copied, a pointer read from memory)."""
        b = self.b
        t = self.type_of(e)
        self.em.zero(out, t.storage)
        b.st(8, R10, out, t.size)
        src = e.args[0]
        st = self.type_of(src)
        if st.kind is Kind.STR:
            self.em.copy(out + 8, self.gen_mem(src), t.storage - 8)
            return
        if not t.size:
            return
        self.gen_int(src)
        b.mov(R3, R0)
        self.em.stack_ptr(R1, out + 8)
        b.mov(R2, t.size)
        b.call(read_helpers(st)[0])

    def ntop(self, e: ast.Call, out: int) -> None:
        """ntop([af,] addr): [u64 family][16 address bytes]; an integer address is stored little-endian
        (so an IPv4 address in network order prints as a.b.c.d), a byte array is copied."""
        b = self.b
        self.em.zero(out, 24)
        if len(e.args) == 2:
            self.gen_int(e.args[0])
            b.stx(8, R10, out, R0)
        else:
            b.st(8, R10, out, 2)  # AF_INET
        addr = e.args[-1]
        at = self.type_of(addr)
        if at.kind in (Kind.STR, Kind.ARRAY):
            src = self.gen_mem(addr)
            self.em.copy(out + 8, src, min(16, at.storage))
        else:
            self.gen_int(addr)
            b.stx(8, R10, out + 8, R0)

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
                b.call(read_helpers(st)[1])
                return
        self.gen_int(src)
        b.mov(R3, R0)
        self.em.zero(out, STRLEN)
        self.em.stack_ptr(R1, out)
        b.mov(R2, limit)
        b.call(read_helpers(st)[1])

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


def read_helpers(t: Type) -> tuple[Helper, Helper]:
    """The helpers (read, read_str) that read from an address of type `t` (str(), buf(), join(), ints
    through an integer pointer): by its address space, and for an address of none known (a plain
    integer, or an integer pointer cast from one) the legacy bpf_probe_read(_str), as bpftrace 0.17
    does. The legacy helpers read either space only on architectures whose user and kernel address
    spaces do not overlap (CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE: x86-64, the only one bpfkit
    targets); elsewhere the kernel does not offer them, as for bpftrace."""
    if t.user:
        return Helper.PROBE_READ_USER, Helper.PROBE_READ_USER_STR
    if t.anyspace:
        return Helper.PROBE_READ, Helper.PROBE_READ_STR
    if t.kernel or t.is_pointer or t.kind is not Kind.INT:
        return Helper.PROBE_READ_KERNEL, Helper.PROBE_READ_KERNEL_STR
    return Helper.PROBE_READ, Helper.PROBE_READ_STR


def field_type_ok(fmt: TracepointFormat, name: str) -> bool:
    """Whether tracepoint field `name` exists and has a readable type (for per-attach-point checks)."""
    f = fmt.field(name)
    return f is not None and tracepoint_field_type(f, fmt.category) is not None
