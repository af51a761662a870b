"""Kernel struct access through BTF (``curtask->parent->pid``, casts, ``*ptr``), run in the VM.

A small hand-made BTF describes a fake ``struct task_struct`` with fields of every integer width and
signedness, bitfields, a char array, an anonymous union, a nested struct and pointers; the VM maps two
such tasks and answers bpf_get_current_task with the first. The expected values are the bytes the test
wrote, so each test checks that the generated code found and decoded the right bits.
"""

from __future__ import annotations

import struct

import pytest

from bpfkit.btf import Spec
from bpfkit.btf.marshal import BtfBuilder
from bpfkit.btf.types import Array, Int, Member, Ptr, Struct, Union
from bpfkit.errors import CompileError
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import Helper
from bpfkit.vm import Vm
from bpfkit.vm.memory import RegionKind

from .trace_vm import no_formats, run_script

TAIL = "\n\n"
TASK_SIZE = 80


def _spec() -> Spec:
    b = BtfBuilder()
    s = IntEncoding.SIGNED
    i32 = b.add(Int("int", 4, s))
    u32 = b.add(Int("unsigned int", 4))
    char = b.add(Int("char", 1, IntEncoding.CHAR | s))
    comm = b.add(Array(char, u32, 16))
    task_id = b.type_count  # the struct refers to a pointer to itself: the pointer comes first
    ptr_task = task_id + 1
    i64 = task_id + 2
    u8 = task_id + 3
    i16 = task_id + 4
    union = task_id + 5
    u64 = task_id + 6
    se = task_id + 7
    ptr_int = task_id + 8
    members = (
        Member("pid", i32, 0), Member("flags", u32, 32), Member("comm", comm, 64),
        Member("parent", ptr_task, 192),
        Member("lo", u32, 256, 3), Member("mid", u32, 259, 5), Member("neg", i32, 264, 4),
        Member("wide", u32, 268, 20),
        Member("s16", i16, 288), Member("u8", u8, 304), Member("s64", i64, 320),
        Member("", union, 384), Member("se", se, 448), Member("iptr", ptr_int, 576),
    )
    assert b.add(Struct("task_struct", TASK_SIZE, members)) == task_id
    b.add(Ptr(task_id))
    b.add(Int("long long", 8, s))
    b.add(Int("unsigned char", 1))
    b.add(Int("short", 2, s))
    b.add(Union("", 4, (Member("a", i32, 0), Member("b", u32, 0))))
    b.add(Int("unsigned long long", 8))
    b.add(Struct("sched_entity", 16, (Member("vruntime", u64, 0), Member("on_rq", i32, 64))))
    b.add(Ptr(i32))
    return Spec(b.marshal())


SPEC = _spec()


def _task(pid: int, comm: bytes, parent: int, iptr: int) -> bytes:
    raw = bytearray(TASK_SIZE)
    struct.pack_into("<iI16sQ", raw, 0, pid, 0x8000_0001, comm, parent)
    bits = 5 | 17 << 3 | 0b1010 << 8 | 0xABCDE << 12  # lo=5, mid=17, neg=-6 (4-bit signed), wide
    struct.pack_into("<IhBxq", raw, 32, bits, -2, 200, -5)
    struct.pack_into("<i", raw, 48, -7)
    struct.pack_into("<Qi", raw, 56, 123456789012, 1)
    struct.pack_into("<Q", raw, 72, iptr)
    return bytes(raw)


#: The address of the current task in the VM of the latest run.
CURRENT: list[int] = []


def _setup(vm: Vm) -> None:
    child = vm.mem.map(bytearray(TASK_SIZE), RegionKind.MEMORY)
    parent = vm.mem.map(bytearray(TASK_SIZE), RegionKind.MEMORY)
    number = vm.mem.map(bytearray(8), RegionKind.MEMORY)
    number.buf[:4] = struct.pack("<i", -42)  # type: ignore[index]
    child.buf[:] = _task(100, b"child", parent.base, number.base)  # type: ignore[index]
    parent.buf[:] = _task(1, b"init-with-a-long", 0, 0)  # type: ignore[index]
    vm.register_helper(Helper.GET_CURRENT_TASK, lambda rt, *_: child.base, "get_current_task")
    CURRENT[:] = [child.base]


def run(body: str) -> str:
    return run_script("BEGIN { " + body + " exit(); }", btf=lambda: SPEC, setup=_setup)


def test_integer_fields_of_every_width_and_sign() -> None:
    out = run(r'printf("%d %u %d %d %d\n", curtask->pid, curtask->flags, curtask->s16, curtask->u8, '
              r'curtask->s64);')
    assert out == f"100 {0x8000_0001} -2 200 -5\n" + TAIL


def test_pointer_chasing_and_char_arrays() -> None:
    out = run(r'printf("%s %s %d\n", curtask->comm, curtask->parent->comm, curtask->parent->pid);')
    assert out == "child init-with-a-long 1\n" + TAIL


def test_bitfields() -> None:
    out = run(r'printf("%d %d %d %d\n", curtask->lo, curtask->mid, curtask->neg, curtask->wide);')
    assert out == f"5 17 -6 {0xABCDE}\n" + TAIL


def test_anonymous_union_and_nested_struct() -> None:
    out = run(r'printf("%d %u %lu %d\n", curtask->a, curtask->b, curtask->se.vruntime, curtask->se.on_rq);')
    assert out == f"-7 {2**32 - 7} 123456789012 1\n" + TAIL


def test_casts_deref_and_variables() -> None:
    out = run(r'$t = (struct task_struct *)curtask; printf("%d %d %d ", $t->parent->pid, (*$t).pid, '
              r'*$t->iptr); $p = (int32 *)$t->iptr; printf("%d %d\n", *$p, *(uint8 *)$t->iptr);')
    assert out == f"1 100 -42 -42 {(-42) & 0xFF}\n" + TAIL


def test_struct_values_in_maps_and_comparisons() -> None:
    out = run(r'@[curtask->comm] = count(); @p = curtask->parent->pid; '
              r'printf("%d\n", curtask->parent->comm == "init-with-a-long");')
    assert out == '1\n\n\n@[child]: 1\n@p: 1\n'


def test_null_pointer_reads_give_zero() -> None:
    out = run(r'printf("%d|%s|\n", curtask->parent->parent->pid, curtask->parent->parent->comm);')
    assert out == "0||\n" + TAIL


@pytest.mark.parametrize(("body", "message"), [
    ("printf(\"%d\\n\", curtask->nosuch);",
     "Struct/union of type 'struct task_struct' does not contain a field named 'nosuch'"),
    ("printf(\"%d\\n\", curtask->pid->x);", "Can not access field 'x' on type 'int32'"),
    ("printf(\"%d\\n\", *curtask->pid);", "Can not dereference type 'int32': not a pointer"),
    ("$x = curtask->se; $y = $x->vruntime;", "Can not access field 'vruntime' on type 'struct sched_entity' "
                                              "with '->': it is not a pointer (use '.')"),
    ("$x = (struct nosuch *)0;", "Unknown type: 'struct nosuch'"),
])
def test_errors(body: str, message: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_script("BEGIN { " + body + " }", no_formats, options=Options(btf=lambda: SPEC))
    assert message in str(info.value)


def test_without_btf_field_access_is_a_clear_error() -> None:
    with pytest.raises(CompileError) as info:
        compile_script('BEGIN { printf("%d", curtask->pid); }', no_formats, options=Options())
    assert "Can not access field 'pid' on type 'uint64'" in str(info.value)


def test_kfunc_struct_pointer_arguments() -> None:
    from bpfkit.lang.btftypes import named_type
    from bpfkit.lang.semantic import KfuncInfo

    task_ptr = named_type(SPEC, "struct task_struct", 1)
    assert task_ptr is not None
    info = KfuncInfo(1, (("p", task_ptr),), None)
    out = run_script(r'kfunc:f { printf("%s %d %d\n", args->p->comm, args->p->parent->pid, '
                     r'args->p->se.on_rq); }', kfuncs=lambda name: info if name == "f" else None,
                     btf=lambda: SPEC, setup=_setup, ctx=lambda provider: struct.pack("<Q", CURRENT[0]))
    assert out == "child 1 1\n" + TAIL


def test_print_top_and_div() -> None:
    out = run_script(r'BEGIN { @a[1] = 10; @a[2] = 25; @a[3] = -7; @a[4] = 100; print(@a, 2); '
                     r'print(@a, 0, 10); @h = hist(5); @h = hist(5); @h = hist(100); print(@h, 1, 2); '
                     r'@t[1] = (3, "a"); print(@t, 1, 2); clear(@a); clear(@h); clear(@t); exit(); }')
    assert out == ("@a[2]: 25\n@a[4]: 100\n"
                   "@a[3]: 0\n@a[1]: 1\n@a[2]: 2\n@a[4]: 10\n"
                   "@h: \n[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
                   "[8, 16)                0 |                                                    |\n"
                   "[16, 32)               0 |                                                    |\n"
                   "[32, 64)               0 |                                                    |\n"
                   "[64, 128)              0 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n\n"
                   "@t[1]: (1, a)\n" + TAIL + "\n\n\n")


def test_print_top_must_be_a_literal() -> None:
    with pytest.raises(CompileError) as info:
        compile_script("BEGIN { @a = 1; print(@a, pid); }", no_formats)
    assert "top and div must be non-negative integer literals" in str(info.value)


def test_strftime_values_print_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from bpfkit.trace import output

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(output, "_boot_realtime_ns", [0])  # boot at the epoch: times are absolute
    try:
        out = run_script(r'BEGIN { $t = strftime("%Y-%m-%d %H:%M:%S.%f %%", 86400123456789); '
                         r'printf("%s|\n", $t); print(strftime("%j", 0)); @[strftime("%a", 0)] = 1; '
                         r'exit(); }')
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert out == "1970-01-02 00:00:00.123456 %|\n001\n" + TAIL + "@[Thu]: 1\n"


def test_ntop_formats_ipv4_and_ipv6() -> None:
    out = run_script(r'BEGIN { printf("%s %s|\n", ntop(0x0100007f), ntop(2, 0x0101a8c0)); '
                     r'@[ntop(0x0100007f)] = count(); $x = ntop(2, 1); print($x); '
                     r'print(ntop(10, 0x0100007f)); @t[1] = (ntop(2, 2), 5); exit(); }')
    assert out == ("127.0.0.1 192.168.1.1|\n1.0.0.0\n7f00:1::\n" + TAIL
                   + "@[127.0.0.1]: 1\n@t[1]: (2.0.0.0, 5)\n")


def test_ntop_of_a_byte_array_field() -> None:
    out = run(r'printf("%s\n", ntop(2, curtask->comm));')  # the first bytes of "child"
    assert out == "99.104.105.108\n" + TAIL


def test_kaddr_is_resolved_at_compile_time() -> None:
    syms = {"vfs_read": 0xFFFFFFFF816B89F0}
    script = compile_script('BEGIN { printf("%lx\\n", kaddr("vfs_read")); exit(); }', no_formats,
                            options=Options(ksyms=syms.get))
    from .trace_vm import run_compiled

    assert run_compiled(script) == "ffffffff816b89f0\n" + TAIL
    with pytest.raises(CompileError) as info:
        compile_script('BEGIN { $a = kaddr("nope"); }', no_formats, options=Options(ksyms=syms.get))
    assert "Failed to resolve kernel symbol: nope" in str(info.value)


def test_buf_prints_hex_escaped_bytes() -> None:
    out = run(r'printf("%r|%r|\n", buf(curtask->comm, 8), buf(curtask->iptr, 4)); '
              r'@[buf(curtask->comm, 3)] = 1; print(buf(curtask->comm)); '
              r'$b = buf(curtask->parent->parent, 2); printf("%r\n", $b);')
    assert out == ("child\\x00\\x00\\x00|\\xd6\\xff\\xff\\xff|\n"
                   "child\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\n" + r"\x00\x00" + "\n"
                   + TAIL + "@[chi]: 1\n")


def test_buf_needs_a_length_for_pointers() -> None:
    with pytest.raises(CompileError) as info:
        compile_script("BEGIN { $b = buf(curtask); }", no_formats, options=Options(btf=lambda: SPEC))
    assert "buf() needs a length unless its argument is an array" in str(info.value)


def test_aggregations_are_per_cpu_and_merged() -> None:
    """BEGIN runs on CPU 0, END on CPU 1: each CPU keeps its own copy; reads and prints merge them."""
    from .trace_vm import run_compiled

    script = compile_script(
        'BEGIN { @c = count(); @s = sum(5); @mn = min(-3); @mx = max(-3); @a = avg(10); @h = hist(1); } '
        'END { @c = count(); @s = sum(7); @mn = min(4); @mx = max(-9); @a = avg(20); @h = hist(1); '
        'printf("%d %d %d %d\\n", @c, @s, @mn, @mx); }', no_formats, options=Options(ncpus=2))
    assert all(i.spec.type.name == "PERCPU_HASH" for i in script.maps)
    out = run_compiled(script, cpu_of=lambda provider: 0 if provider == "BEGIN" else 1)
    assert out == ("2 12 -3 -3\n" + TAIL + "@a: 15\n\n@c: 2\n"
                   "@h: \n[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"
                   "@mn: -3\n@mx: -3\n@s: 12\n")


def test_for_loops_over_maps() -> None:
    out = run_script(
        r'BEGIN { @m[1] = 10; @m[2] = 20; @s["a", 1] = "x"; @c[5] = count(); @c[5] = count(); '
        r'for ($kv : @m) { printf("%d %d\n", $kv.0, $kv.1); } '
        r'for ($x : @s) { printf("%s %d=%s\n", $x.0.0, $x.0.1, $x.1); } '
        r'for ($k : @c) { $t = $k.1 * 2; printf("c %d %d\n", $k.0, $t); } '
        r'for ($kv2 : @m) { if ($kv2.0 == 1) { continue; } printf("second %d\n", $kv2.0); break; } '
        r'clear(@m); clear(@s); clear(@c); exit(); }')
    lines = out.split("\n")
    assert sorted(lines[:2]) == ["1 10", "2 20"]
    assert lines[2:] == ["a 1=x", "c 5 4", "second 2", "", "", "", "", "", ""]


def test_exit_inside_a_for_loop_stops_the_probe() -> None:
    out = run_script(r'BEGIN { @m[1] = 1; @m[2] = 2; for ($kv : @m) { printf("in\n"); exit(); } '
                     r'printf("not reached\n"); } END { printf("end\n"); clear(@m); }')
    assert out == "in\nend\n" + TAIL + "\n"


@pytest.mark.parametrize(("body", "message"), [
    ("$a = 1; @m[1] = 1; for ($kv : @m) { printf(\"%d\", $a); }", "$a is declared outside the for loop"),
    ("@m[1] = 1; for ($kv : @m) { printf(\"%s\", kstack); }", "cannot read the probe context"),
    ("@h[1] = hist(1); for ($kv : @h) { }", "for loops over hist() maps are not supported yet"),
    ("@m = 1; for ($kv : @m) { }", "for loops need a map with keys"),
    ("for ($kv : @nope) { }", "Undefined map: @nope"),
])
def test_for_loop_errors(body: str, message: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_script("BEGIN { " + body + " }", no_formats)
    assert message in str(info.value)
