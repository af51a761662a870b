"""Casts of user addresses to struct pointers: typed as user memory all the way down, read with
bpf_probe_read_user (run in bpfkit's VM; tests/kernel/trace/test_user_struct_casts.py runs the same
reads in the kernel against bpftrace 0.17).

The VM here models the two address spaces as the kernel does: bpf_probe_read_kernel(_str) of a user
address fails, and so does bpf_probe_read_user(_str) of anything else; a failed read leaves zeros.
"""

from __future__ import annotations

import struct

from bpfkit.btf import Spec
from bpfkit.btf.marshal import BtfBuilder
from bpfkit.btf.types import Array, Int, Member, Ptr, Struct
from bpfkit.lang.btftypes import MAX_STRUCT_VALUE
from bpfkit.lang.parser import parse
from bpfkit.lang.semantic import Analysis, analyze
from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format
from bpfkit.lang.types import Kind, Type
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import Helper
from bpfkit.vm import Vm
from bpfkit.vm.helpers import probe_read, probe_read_str
from bpfkit.vm.memory import RegionKind
from bpfkit.vm.runtime import HelperFn, RunState

from .trace_vm import run_script

NVALS = 56
BIG_SIZE = 8 * NVALS + 8  # vals, text: 456 bytes, past what a struct copy may take on the stack
USTR_SIZE = 56
TEXT_AT, BIG_AT, PP_AT, USER_SIZE = 64, 80, 80 + BIG_SIZE, 80 + BIG_SIZE + 8


def _spec() -> Spec:
    """struct inner { int x, y; }; struct ustr { long long a; int b; char name[16]; char *text;
    struct inner in; struct ustr *self; } (56 bytes); struct big { long long vals[56]; char *text; };
    struct task_struct { int pid; }."""
    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    u32 = b.add(Int("unsigned int", 4))
    char = b.add(Int("char", 1, IntEncoding.CHAR | IntEncoding.SIGNED))
    i64 = b.add(Int("long long", 8, IntEncoding.SIGNED))
    name = b.add(Array(char, u32, 16))
    charp = b.add(Ptr(char))
    inner = b.add(Struct("inner", 8, (Member("x", i32, 0), Member("y", i32, 32))))
    ustr = b.type_count
    b.add(Struct("ustr", USTR_SIZE, (Member("a", i64, 0), Member("b", i32, 64), Member("name", name, 96),
                                     Member("text", charp, 256), Member("in", inner, 320),
                                     Member("self", ustr + 1, 384))))
    b.add(Ptr(ustr))
    vals = b.add(Array(i64, u32, NVALS))
    b.add(Struct("big", BIG_SIZE, (Member("vals", vals, 0), Member("text", charp, 64 * NVALS))))
    b.add(Struct("task_struct", 8, (Member("pid", i32, 0),)))
    return Spec(b.marshal())


SPEC = _spec()
WRITE = parse_format("name: sys_enter_write\nID: 1\nformat:\n"
                     "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
                     "\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n"
                     "\tfield:const char * buf;\toffset:24;\tsize:8;\tsigned:0;\n"
                     "\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n", "syscalls", "sys_enter_write")


def _formats(category: str, name: str) -> TracepointFormat | None:
    return WRITE if (category, name) == ("syscalls", "sys_enter_write") else None


def _analyze(text: str) -> Analysis:
    return analyze(parse(text), _formats, btf=lambda: SPEC)


def _chain(t: Type) -> list[bool]:
    """The `user` flags of `t` and of what it points to, down to the struct or integer."""
    out = [t.user]
    while t.target is not None:
        t = t.target
        out.append(t.user)
    return out


def test_a_cast_of_a_user_address_points_into_user_memory_all_the_way_down() -> None:
    a = _analyze("tracepoint:syscalls:sys_enter_write { $p = (struct ustr *)args->buf; "
                 "$pp = (struct ustr **)args->buf; $i = (int32 *)args->buf; $c = *$p; $in = $p->in; "
                 "$k = (struct task_struct *)curtask; }")
    v = a.vars[0]
    assert _chain(v["p"]) == [True, True] and v["p"].target is not None and v["p"].target.kind is Kind.RECORD
    assert _chain(v["pp"]) == [True, True, True]
    assert _chain(v["i"]) == [True, False]  # the integer pointed to is a plain value
    assert v["c"].kind is Kind.STRUCT and v["c"].user
    assert {m.name: m.type.user for m in v["c"].members if m.type.is_pointer} == {"text": True, "self": True}
    assert v["in"].kind is Kind.STRUCT and v["in"].user
    assert _chain(v["k"]) == [False, False]


def test_user_probes_flag_their_arguments_and_return_values_but_not_kernel_pointers() -> None:
    a = _analyze("uprobe:/bin/x:f { $p = (struct ustr *)arg0; $k = (struct task_struct *)curtask; } "
                 "uretprobe:/bin/x:f { $r = (struct ustr *)retval; } "
                 "BEGIN { $b = (struct ustr *)1234; }")
    assert _chain(a.vars[0]["p"]) == [True, True] and _chain(a.vars[0]["k"]) == [False, False]
    assert _chain(a.vars[1]["r"]) == [True, True]
    assert _chain(a.vars[2]["b"]) == [False, False]


ADDRESSES: dict[str, int] = {}


def _guarded(read: HelperFn, user: bool) -> HelperFn:
    """`read` (probe_read or probe_read_str) for one address space: a source outside it fails."""
    def helper(rt: RunState, dst: int, size: int, src: int, a4: int, a5: int) -> int:
        base = ADDRESSES["user"]
        if (base <= src < base + USER_SIZE) != user:
            rt.mem.write_bytes(dst, bytes(size & 0xFFFFFFFF))
            return -14 & (1 << 64) - 1  # -EFAULT
        return read(rt, dst, size, src, a4, a5)
    return helper


def _setup(vm: Vm) -> None:
    mem = vm.mem.map(bytearray(USER_SIZE), RegionKind.MEMORY)
    task = vm.mem.map(bytearray(struct.pack("<iI", 4321, 0)), RegionKind.MEMORY)
    base = ADDRESSES["user"] = mem.base
    raw = bytearray(USER_SIZE)
    struct.pack_into("<qi16s4xQiiQ", raw, 0, -5000000000, 42, b"username", base + TEXT_AT, 7, -8, base)
    raw[TEXT_AT:TEXT_AT + 10] = b"user text\0"
    struct.pack_into(f"<{NVALS}qQ", raw, BIG_AT, *[i * 3 - 50 for i in range(NVALS)], base + TEXT_AT)
    struct.pack_into("<Q", raw, PP_AT, base)
    mem.buf[:] = raw  # type: ignore[index]
    vm.register_helper(Helper.GET_CURRENT_TASK, lambda rt, *_: task.base, "get_current_task")
    for helper, read, user in ((Helper.PROBE_READ_USER, probe_read, True),
                               (Helper.PROBE_READ_KERNEL, probe_read, False),
                               (Helper.PROBE_READ_USER_STR, probe_read_str, True),
                               (Helper.PROBE_READ_KERNEL_STR, probe_read_str, False)):
        vm.register_helper(helper, _guarded(read, user), helper.name.lower())


def _ctx(provider: str) -> bytes:
    base = ADDRESSES["user"]
    if provider == "tracepoint":
        return struct.pack("<8xi4xQQQ", 1, 1, base, USTR_SIZE)
    regs = bytearray(168)
    struct.pack_into("<Q", regs, 80, base)  # ax: retval
    struct.pack_into("<QQQ", regs, 96, base + PP_AT, base + BIG_AT, base)  # dx, si, di: arg2, arg1, arg0
    return bytes(regs)


def _run(text: str) -> str:
    return run_script(text, formats=_formats, ctx=_ctx, btf=lambda: SPEC, setup=_setup)


def _signed(address: int) -> int:
    """`address` as struct copies show pointers (signed, as bpftrace)."""
    return address - (1 << 64) if address >= 1 << 63 else address


USTR = ("{{ .a = -5000000000, .b = 42, .name = username, .text = {text}, .in = {{ .x = 7, .y = -8 }}, "
        ".self = {base} }}")


def test_fields_derefs_copies_and_strings_through_a_tracepoint_cast_read_user_memory() -> None:
    out = _run("tracepoint:syscalls:sys_enter_write { $p = (struct ustr *)args->buf; "
               'printf("%lld %d %s %s %d %d\\n", $p->a, $p->b, $p->name, str($p->text), $p->in.y, '
               "$p->self->b); print(*(struct ustr *)args->buf); @t = *$p; $c = *$p; "
               'printf("%s|%d|%d\\n", str($c.text), $c.in.x, $c.self->in.y); '
               'printf("%d\\n", ((struct task_struct *)curtask)->pid); }')
    base = ADDRESSES["user"]
    shown = USTR.format(text=_signed(base + TEXT_AT), base=_signed(base))
    assert out == (f"-5000000000 42 username user text -8 42\n{shown}\nuser text|7|-8\n4321\n\n\n"
                   f"@t: {shown}\n")


def test_uprobe_arguments_and_retval_casts_read_user_memory() -> None:
    out = _run('uprobe:/bin/x:f { printf("%d %d %d %d\\n", ((struct ustr *)arg0)[0].b, '
               "(*(struct ustr *)arg0).in.x, (*(struct ustr **)arg2)->in.y, "
               "((struct task_struct *)curtask)->pid); } "
               'uretprobe:/bin/x:f { printf("%d %s\\n", ((struct ustr *)retval)->b, '
               "str(((struct ustr *)retval)->text)); }")
    assert out == "42 7 -8 4321\n42 user text\n\n\n"


def test_user_structs_past_the_stack_limit_are_staged_from_user_memory() -> None:
    assert BIG_SIZE > MAX_STRUCT_VALUE
    out = _run("uprobe:/bin/x:f { $b = (struct big *)arg1; print(*$b); @b = *(struct big *)arg1; $v = *$b; "
               'printf("%d %s %s\\n", $v.vals[3], str($v.text), str($b->text)); }')
    vals = ",".join(str(i * 3 - 50) for i in range(NVALS))
    shown = f"{{ .vals = [{vals}], .text = {_signed(ADDRESSES['user'] + TEXT_AT)} }}"
    assert out == f"{shown}\n-41 user text user text\n\n\n@b: {shown}\n"


def test_the_address_of_a_field_in_user_memory_is_a_user_pointer() -> None:
    out = _run('uprobe:/bin/x:f { $p = (struct ustr *)arg0; printf("%d %d %s\\n", *&$p->b, *&$p->in.y, '
               'str(&$p->name)); printf("%d\\n", *&curtask->pid); }')
    assert out == "42 -8 username\n4321\n\n\n"


def test_variables_maps_and_arithmetic_keep_a_user_address_and_kernel_values_stay_kernel() -> None:
    a = _analyze("tracepoint:syscalls:sys_enter_write { $b = args->buf; $c = $b + 8; @m = $b; "
                 "$w = (uint32)$b; $p = (struct ustr *)@m; $t = curtask; $u = (uint64)curtask; "
                 "$q = (struct task_struct *)$u; $n = 1 ? $b : 0; $f = ((struct ustr *)$b)->a; "
                 "$kf = curtask->pid; } "
                 "uprobe:/bin/x:f { $a = arg0; $l = 5; $s = (struct ustr *)$l; "
                 "$k = (struct task_struct *)curtask; $ku = (uint64)curtask; $kp = (struct ustr *)$ku; "
                 "$x = (struct ustr *)curtask->pid; }")
    v, u = a.vars
    assert v["b"].user and v["c"].user and v["w"].user and a.maps["m"].value.user
    assert _chain(v["p"]) == [True, True]
    assert _chain(v["t"]) == [False, False] and not v["u"].user and v["u"].kernel
    assert _chain(v["q"]) == [False, False]
    assert not v["n"].user and not v["n"].kernel  # as bpftrace 0.17: a ternary has no address space
    assert v["f"].user and not v["kf"].user and v["kf"].kernel  # an integer field: its struct's space
    # uprobes: a value of no known address space cast to a pointer is a user address; kernel ones stay
    assert u["a"].user and _chain(u["s"]) == [True, True]
    assert _chain(u["k"]) == [False, False] and _chain(u["kp"]) == [False, False]
    assert _chain(u["x"]) == [False, False]


def test_user_addresses_kept_in_variables_and_maps_are_read_from_user_memory() -> None:
    out = _run("tracepoint:syscalls:sys_enter_write { $b = args->buf; $p = (struct ustr *)$b; "
               '@m = args->buf; $c = (uint64)args->buf + 8; printf("%lld %d %s|%s|%d\\n", $p->a, '
               "((struct ustr *)@m)->b, str(((struct ustr *)$b)->text), str($b + 12), *(int32 *)$c); "
               "print(*(struct ustr *)$b); "
               "$t = curtask; printf(\"%d\\n\", ((struct task_struct *)$t)->pid); } "
               "uprobe:/bin/x:f { $a = arg0; $q = (struct ustr *)$a; @u = arg1; $big = (struct big *)@u; "
               '$z = 1 ? arg0 : 0; printf("%d %d %d %s %d\\n", $q->b, $q->in.y, $big->vals[3], '
               "str($big->text), ((struct ustr *)$z)->b); "
               "printf(\"%s|%s\\n\", str(1 ? arg0 + 12 : 0), str(*(uint64 *)(arg0 + 32))); "
               "$u = (uint64)curtask; printf(\"%d\\n\", ((struct task_struct *)$u)->pid);}")
    base = ADDRESSES["user"]
    shown = USTR.format(text=_signed(base + TEXT_AT), base=_signed(base))
    assert out == (f"-5000000000 42 user text|username|42\n{shown}\n4321\n"
                   f"42 -8 -41 user text 42\nusername|user text\n4321\n\n\n@m: {base}\n@u: {base + BIG_AT}\n")


def test_a_ternary_of_user_addresses_has_no_address_space_outside_user_probes() -> None:
    """As bpftrace 0.17: a tracepoint cast of a ternary reads kernel memory, so the user struct reads as
    zeros (the VM, like the kernel, refuses a kernel read of a user address)."""
    out = _run("tracepoint:syscalls:sys_enter_write { $n = pid >= 0 ? args->buf : 0; "
               'printf("%d\\n", ((struct ustr *)$n)->b); }')
    assert out == "0\n\n\n"


def test_integers_read_through_user_pointers_are_user_addresses_and_ternaries_read_either_space() -> None:
    """``*(uint64 *)user_address`` is a user address (as bpftrace); str() of a value of no address
    space (a ternary) uses the legacy bpf_probe_read_str, which reads either space."""
    out = _run("tracepoint:syscalls:sys_enter_write { $t = *(uint64 *)(args->buf + 32); "
               'printf("%s|%s|%s\\n", str($t), str(pid >= 0 ? $t : 0), str(*(uint64 *)(args->buf + 32))); '
               "$k = *(int32 *)curtask; printf(\"%d\\n\", $k); }")
    assert out == "user text|user text|user text\n4321\n\n\n"


def test_integer_pointer_casts_of_values_of_no_address_space_read_either_space_in_every_probe() -> None:
    """As bpftrace 0.17: ``*(int32 *)x`` / ``((int32 *)x)[i]`` of a value of no address space (a ternary,
    a literal, a builtin) reads with the legacy bpf_probe_read (which reads either space; the VM's, like
    the kernel's on x86-64), in tracepoints and uprobes alike: a user address in a tracepoint and a
    kernel one in a uprobe both read. Struct-pointer casts of such values still take the probe's space
    (`test_a_ternary_of_user_addresses_has_no_address_space_outside_user_probes`)."""
    a = _analyze("tracepoint:syscalls:sys_enter_write { $n = pid >= 0 ? args->buf : 0; $p = (int8 *)$n; "
                 "$q = (int8 *)nsecs; $v = *(uint64 *)$n; $w = (uint64)$p; $u = (int8 *)args->buf; "
                 "$k = (int8 *)curtask; $s = (struct ustr *)$n; } "
                 "uprobe:/bin/x:f { $p = (int32 *)(1 ? arg0 : 0); $q = (int8 *)nsecs; "
                 "$s = (struct ustr *)nsecs; }")
    v, u = a.vars
    for t in (v["p"], v["q"], u["p"], u["q"]):
        assert t.anyspace and not t.user and not t.kernel
    assert not v["v"].user and not v["v"].kernel and not v["w"].user and not v["w"].kernel
    assert v["u"].user and not v["u"].anyspace and not v["k"].user and not v["k"].anyspace
    assert not v["s"].anyspace and _chain(v["s"]) == [False, False] and _chain(u["s"]) == [True, True]
    out = _run("tracepoint:syscalls:sys_enter_write { $n = pid >= 0 ? (uint64)args->buf : 0; "
               'printf("%d %d %d %s|%s\\n", *(int32 *)($n + 8), ((int32 *)$n)[2], *(int32 *)(args->buf + 8), '
               "str((int8 *)($n + 12)), str(*(uint64 *)($n + 32))); } "
               "uprobe:/bin/x:f { $k = 1 ? (uint64)curtask : 0; "
               'printf("%d %d %d %d\\n", *(int32 *)$k, ((int32 *)$k)[0], ((int32 *)(1 ? arg0 : 0))[2], '
               "*(int32 *)curtask); }")
    assert out == "42 42 42 username|user text\n4321 4321 42 4321\n\n\n"
