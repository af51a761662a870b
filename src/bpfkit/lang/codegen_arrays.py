"""Code generation for arrays, subscripts and struct copies: ``array[N]`` of BTF and tracepoint array
fields, arrays as values (copied to the stack, printed as bpftrace prints them), ``ptr[i]``, kernel
structs copied as values (``@x = curtask->se.load``) and the members of such copies (``$s.weight``).

`ArrayGen` is a mixin of `bpfkit.lang.codegen_expr.ExprGen`; it relies on the generator's `gen_int`,
`gen_addr`, `gen_mem`, `spill`, `read_int`, `field_addr`, `base_user`, `param` and state.
"""

from __future__ import annotations

from bpfkit.lang import ast
from bpfkit.lang.big_values import is_big, lies_in_user_memory
from bpfkit.lang.emit import R0, R1, R2, R3, R6, R10, Emitter
from bpfkit.lang.semantic import Analysis
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.lang.types import Kind, Type
from bpfkit.uapi.enums import Helper


class ArrayGen:
    """Array element reads and copies for one probe's program."""

    em: Emitter
    analysis: Analysis
    fmt: TracepointFormat | None

    def type_of(self, e: ast.Expr) -> Type:
        raise NotImplementedError

    def gen_int(self, e: ast.Expr) -> None:
        raise NotImplementedError

    def gen_addr(self, e: ast.Expr) -> None:
        raise NotImplementedError

    def gen_mem(self, e: ast.Expr, dest: int | None = None) -> int:
        raise NotImplementedError

    def spill(self) -> int:
        raise NotImplementedError

    def read_int(self, size: int, signed: bool, user: bool, bit_shift: int = 0, bit_size: int = 0, *,
                 anyspace: bool = False) -> None:
        raise NotImplementedError

    def field_addr(self, e: ast.FieldAccess) -> None:
        raise NotImplementedError

    def base_user(self, e: ast.FieldAccess) -> bool:
        raise NotImplementedError

    def param(self, index: int) -> str:
        raise NotImplementedError

    def in_kernel_memory(self, e: ast.Expr) -> bool:
        """Whether array-valued `e` is read where it lies (a struct field, through BTF) rather than
        evaluated to the stack."""
        return isinstance(e, ast.FieldAccess) and id(e) in self.analysis.fields

    def reads_user(self, e: ast.Expr) -> bool:
        """Whether the memory that address-valued `e` (a field, element or dereference) points into is
        user memory."""
        if isinstance(e, ast.FieldAccess):
            return self.type_of(e.expr).user
        if isinstance(e, ast.Index) and self.type_of(e.expr).kind is Kind.ARRAY:
            return self.reads_user(e.expr)
        if isinstance(e, ast.Index | ast.Unary):
            inner = e.expr if isinstance(e, ast.Index) else e.operand
            return self.type_of(inner).user
        return False

    def element_addr(self, e: ast.Index) -> None:
        """r0 = the address of element `e` of an array in kernel memory, or of ``ptr[i]``."""
        size = self.analysis.consts[id(e)]
        if self.type_of(e.expr).kind is Kind.ARRAY:
            self.gen_addr(e.expr)
            offset = self.const_index(e.index) * size
            if offset:
                self.em.b.add(R0, offset)
            return
        self.gen_int(e.index)
        self.em.b.alu("mul", R0, size)
        index = self.spill()
        self.gen_int(e.expr)
        self.em.b.ldx(8, R1, R10, index)
        self.em.b.add(R0, R1)

    def const_index(self, e: ast.Expr) -> int:
        if isinstance(e, ast.Positional):
            text = self.param(e.index)
            return int(text, 0) if text else 0
        assert isinstance(e, ast.Int)
        return e.value

    def index_int(self, e: ast.Index) -> None:
        """r0 = integer element `e`: read from kernel/user memory, from the tracepoint record, or from
        the array's copy on the stack."""
        t = self.type_of(e)
        base = e.expr
        size = self.analysis.consts[id(e)]
        bt = self.type_of(base)
        if bt.kind is Kind.ARRAY and isinstance(base, ast.FieldAccess) and not self.in_kernel_memory(base) \
                and self.fmt is not None:
            f = self.fmt.field(base.field)
            assert f is not None
            self.em.b.ldx(size, R0, R6, f.offset + self.const_index(e.index) * size)
            self.em.truncate(R0, size, t.signed)
        elif bt.kind is Kind.ARRAY and not self.in_kernel_memory(base):
            off = self.gen_mem(base)
            self.em.b.ldx(size, R0, R10, off + self.const_index(e.index) * size)
            self.em.truncate(R0, size, t.signed)
        else:
            self.element_addr(e)
            self.read_int(size, t.signed, self.reads_user(e), anyspace=bt.anyspace)

    def array_field(self, e: ast.FieldAccess, out: int) -> None:
        """An array field's bytes: from kernel (or user) memory through BTF, or from the tracepoint
        record (read with bpf_probe_read_kernel too: the record is kernel memory)."""
        b = self.em.b
        t = self.type_of(e)
        self.em.zero(out, t.storage)
        user = False
        if id(e) in self.analysis.fields:
            self.field_addr(e)
            user = self.base_user(e)
            b.mov(R3, R0)
        else:
            assert self.fmt is not None
            f = self.fmt.field(e.field)
            assert f is not None
            b.mov(R3, R6)
            b.add(R3, f.offset)
        self.em.stack_ptr(R1, out)
        b.mov(R2, t.size * t.limit)
        b.call(Helper.PROBE_READ_USER if user else Helper.PROBE_READ_KERNEL)

    def in_copy(self, e: ast.FieldAccess | ast.Unary | ast.Index) -> bool:
        """Whether `e` is part of a struct already copied to the stack (a member of a copy)."""
        return isinstance(e, ast.FieldAccess) and self.type_of(e.expr).kind is Kind.STRUCT

    def struct_copy(self, e: ast.Expr, out: int) -> None:
        """A kernel (or user) struct, at the address struct-valued `e` names, copied to r10+out."""
        b = self.em.b
        t = self.type_of(e)
        self.em.zero(out, t.storage)
        self.gen_addr(e)
        b.mov(R3, R0)
        self.em.stack_ptr(R1, out)
        b.mov(R2, t.size)
        b.call(Helper.PROBE_READ_USER if t.user else Helper.PROBE_READ_KERNEL)

    def member_addr(self, e: ast.FieldAccess) -> int:
        """r0 = the address of member `e` of a struct copy on the stack; returns the member's size."""
        info = self.analysis.fields[id(e)]
        if self.big_base(e):  # a member of a big struct variable: in memory, at its address
            self.field_addr(e)
            return info.size
        src = self.gen_mem(e.expr)
        self.em.stack_ptr(R0, src + info.offset)
        return info.size

    def big_base(self, e: ast.FieldAccess) -> bool:
        """Whether `e` is a member of a struct too large for the stack, read where it lies."""
        return is_big(self.type_of(e.expr))

    def member_int(self, e: ast.FieldAccess) -> None:
        """r0 = integer member `e` of a struct copy (read through the helper: members and bitfields need
        not be 8-byte aligned on the stack)."""
        info = self.analysis.fields[id(e)]
        self.member_addr(e)
        user = self.big_base(e) and lies_in_user_memory(self.type_of, e.expr)
        self.read_int(info.size, info.type.signed, user, info.bit_shift, info.bit_size)

    def member_copy(self, e: ast.FieldAccess, out: int) -> None:
        """A string, array or struct member of a struct copy, copied to r10+out."""
        b = self.em.b
        t = self.type_of(e)
        size = self.member_addr(e)
        self.em.zero(out, t.storage)
        b.mov(R3, R0)
        self.em.stack_ptr(R1, out)
        b.mov(R2, min(size, t.storage - 1) if t.kind is Kind.STR else size)
        user = self.big_base(e) and lies_in_user_memory(self.type_of, e.expr)
        b.call(Helper.PROBE_READ_USER if user else Helper.PROBE_READ_KERNEL)

    def btf_pointer(self, e: ast.Expr, null: str) -> None:
        """r0 = the kernel's pointer to what `e` names, loaded directly from the context and the
        structs it points to (so the verifier knows its BTF type, as helpers such as bpf_d_path
        require); jumps to `null` when a pointer on the way is NULL. For ``ctx``, kfunc ``args->p``,
        ``p->member`` (a pointer member: loaded; a struct member: its address) and ``&x``."""
        b = self.em.b
        if isinstance(e, ast.Builtin) and e.name == "ctx":
            b.mov(R0, R6)
            return
        if isinstance(e, ast.Unary) and e.op == "&":
            self.btf_pointer(e.operand, null)
            return
        if isinstance(e, ast.FieldAccess) and id(e) in self.analysis.fields:
            self.btf_pointer(e.expr, null)
            info = self.analysis.fields[id(e)]
            if self.type_of(e).kind is Kind.RECORD:  # a struct inside the struct: its address
                if info.offset:
                    b.add(R0, info.offset)
                return
            b.ldx(8, R0, R0, info.offset)
        else:  # kfunc args->p, or anything else (which the verifier then refuses, pointing here)
            self.gen_int(e)
        b.jmp("jeq", R0, 0, null)
