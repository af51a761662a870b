"""Language features checked against bpftrace 0.17's behaviour, run in the userspace VM.

Expected texts are what bpftrace 0.17 prints (checked live by tests/kernel/trace/test_trace_vs_bpftrace.py)
or, for features newer than 0.17, what the script's own arithmetic gives.
"""

from __future__ import annotations

import struct

import pytest

from bpfkit.btf import Spec
from bpfkit.btf.marshal import BtfBuilder
from bpfkit.btf.types import Array, Int, Member, Ptr, Struct, TypeTag
from bpfkit.errors import CompileError
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import Helper
from bpfkit.vm import Vm
from bpfkit.vm.memory import RegionKind

from .trace_vm import run_script

TAIL = "\n\n"


def test_sum_of_unsigned_values_prints_unsigned_and_keys_print_signed() -> None:
    out = run_script("BEGIN { @s = sum((uint64)-5); @u = sum((uint32)-5); @n = sum(-5); "
                     "@mn = min((uint64)-5); @a = avg((uint64)-4); @k[(uint64)-3] = 1; "
                     "@t[(uint64)-3, 1] = 1; @q[(uint32)-3] = 1; "
                     "@v = (uint64)-1; exit(); }")
    assert out == TAIL + ("@a: -4\n\n@k[-3]: 1\n@mn: -5\n@n: -5\n@q[4294967293]: 1\n"
                          "@s: 18446744073709551611\n@t[-3, 1]: 1\n@u: 4294967291\n"
                          "@v: 18446744073709551615\n")


def test_reading_an_unsigned_sum_compares_unsigned() -> None:
    out = run_script('BEGIN { @s = sum((uint64)-5); if (@s > 5) { printf("big\\n"); } '
                     '@i = sum(-5); if (@i < 5) { printf("small\\n"); } exit(); }')
    assert out.startswith("big\nsmall\n")


def test_avg_maps_read_in_a_probe_give_the_average() -> None:
    out = run_script('BEGIN { @a = avg(5); @a = avg(8); @n[1] = avg(-3); @n[1] = avg(-4); '
                     '$x = @a; printf("%d %d %d %d\\n", $x, @a * 2, @n[1], @n[2]); exit(); }')
    assert out.startswith("6 12 -3 0\n")


def test_avg_maps_read_over_two_cpus() -> None:
    from bpfkit.lang.codegen import Options, compile_script

    from .trace_vm import no_formats, run_compiled

    script = compile_script('BEGIN { @a = avg(4); @b = avg(-10); } '
                            'interval:s:1 { @a = avg(20); @a = avg(-3); @b = avg(1); @b = avg(2); } '
                            'END { printf("%d %d\\n", @a, @b); }', no_formats, options=Options(ncpus=2))
    out = run_compiled(script, cpu_of=lambda provider: 1 if provider == "interval" else 0)
    assert out.startswith("7 -2\n")  # (4 + 20 - 3) / 3 and -7 / 3 rounded toward zero


@pytest.mark.parametrize(("kind", "call"), [("stats", "stats(1)"), ("hist", "hist(1)"),
                                            ("lhist", "lhist(1, 0, 10, 1)")])
def test_reading_stats_and_histograms_is_a_caret_error(kind: str, call: str) -> None:
    script = f"BEGIN {{ @x = {call}; $y = @x; }}"
    with pytest.raises(CompileError) as e:
        run_script(script)
    col = script.index("$y = ") + 6
    assert str(e.value).splitlines()[:3] == [
        f"stdin:1:{col}-{col + 2}: ERROR: the value of a {kind}() map cannot be read in a probe (only count, "
        "sum, min, max and avg maps can)", script, " " * (col - 1) + "~~"]


def _btf_run(body: str) -> str:
    from .test_codegen_btf import SPEC, _setup

    return run_script("BEGIN { " + body + " exit(); }", btf=lambda: SPEC, setup=_setup)


def test_address_of_struct_fields() -> None:
    out = _btf_run(r'printf("%d %d %d %d ", (uint64)&curtask->se - (uint64)curtask, '
                   r'(uint64)&curtask->se.on_rq - (uint64)curtask, *&curtask->pid, '
                   r'(*&curtask->parent)->pid); '
                   r'$p = &curtask->se; printf("%s %lu %d\n", str(&curtask->comm), $p->vruntime, '
                   r'(uint64)&*curtask == (uint64)curtask);')
    assert out == "56 64 100 1 child 123456789012 1\n" + TAIL


@pytest.mark.parametrize("operand", ["curtask->lo", "$x", "@m", "*curtask->iptr"])
def test_address_of_anything_else_is_a_caret_error(operand: str) -> None:
    from .test_codegen_btf import SPEC

    script = f"BEGIN {{ $x = 1; @m = 1; $y = &{operand}; }}"
    with pytest.raises(CompileError) as e:
        run_script(script, btf=lambda: SPEC)
    start = script.index("&") + 1
    lines = str(e.value).splitlines()
    assert lines[0] == (f"stdin:1:{start}-{start + len(operand) + 1}: ERROR: The & operator takes the "
                        "address of a struct field or struct (through BTF) only")
    assert lines[2] == " " * (start - 1) + "~" * (len(operand) + 1)


def _user_tag_spec() -> tuple[Spec, int]:
    """A task_struct with `int __user *uptr`, `int *kptr` and `struct task_struct __user *up` (BTF type
    tag "user", as clang-built kernels emit for __user); returns the spec and the struct's size."""
    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    tag = b.add(TypeTag("user", i32))
    uptr = b.add(Ptr(tag))
    kptr = b.add(Ptr(i32))
    task = b.type_count
    b.add(Struct("task_struct", 24, (Member("uptr", uptr, 0), Member("kptr", kptr, 64),
                                     Member("up", task + 2, 128))))
    b.add(TypeTag("user", task))
    b.add(Ptr(task + 1))
    return Spec(b.marshal()), 24


@pytest.mark.parametrize(("expr", "user"), [("*curtask->uptr", True), ("*curtask->kptr", False),
                                            ("curtask->up->uptr == 0", True), ("curtask->kptr == 0", False)])
def test_user_tagged_pointers_are_read_with_probe_read_user(expr: str, user: bool) -> None:
    from bpfkit.vm.helpers import probe_read

    spec, size = _user_tag_spec()
    reads: list[Helper] = []

    def setup(vm: Vm) -> None:
        task = vm.mem.map(bytearray(size), RegionKind.MEMORY)
        number = vm.mem.map(bytearray(struct.pack("<i", -9)), RegionKind.MEMORY)
        task.buf[:] = struct.pack("<QQQ", number.base, number.base, task.base)  # type: ignore[index]
        vm.register_helper(Helper.GET_CURRENT_TASK, lambda rt, *_: task.base, "get_current_task")
        for h in (Helper.PROBE_READ_USER, Helper.PROBE_READ_KERNEL, Helper.PROBE_READ):
            vm.register_helper(h, lambda rt, *a, h=h: reads.append(h) or probe_read(rt, *a), h.name.lower())

    out = run_script(f'BEGIN {{ printf("%d\\n", {expr}); exit(); }}', btf=lambda: spec, setup=setup)
    assert out == ("-9\n" if expr.startswith("*") else "0\n") + TAIL
    assert (Helper.PROBE_READ_USER in reads) is user


def test_cgroup_path_prints_through_the_runtime_resolver() -> None:
    from bpfkit.trace.cgroup import cgroup_path

    out = run_script('BEGIN { printf("%s|%s|\\n", cgroup_path(1), cgroup_path(1, "no-such-hierarchy")); '
                     '$c = cgroup_path(1, "uni*"); print($c); exit(); }')
    assert out == f"{cgroup_path(1)}||\n{cgroup_path(1, 'uni*')}\n" + TAIL


@pytest.mark.parametrize(("script", "message"), [
    ("BEGIN { $x = cgroup_path(); }", "cgroup_path() requires 1 to 2 arguments (0 provided)"),
    ('BEGIN { $x = cgroup_path("a"); }', "cgroup_path() expects an integer cgroup id"),
    ("BEGIN { $x = cgroup_path(1, comm); }", "cgroup_path() filter must be a string literal"),
    ("BEGIN { $x = cgroup_path(1) + 1; }", "Type mismatch for '+': comparing 'cgroup_path' with 'int64'"),
])
def test_cgroup_path_errors(script: str, message: str) -> None:
    with pytest.raises(CompileError) as e:
        run_script(script)
    assert message in str(e.value).splitlines()[0]


def test_path_calls_bpf_d_path_with_the_struct_path_pointer() -> None:
    from bpfkit.lang.semantic import KfuncInfo
    from bpfkit.lang.types import pointer_to

    info = KfuncInfo(7, (("path", pointer_to(None, "const struct path *")),), None)
    seen: list[tuple[int, int]] = []

    def setup(vm: Vm) -> None:
        def d_path(rt: object, path: int, buf: int, size: int, *_: int) -> int:
            seen.append((path, size))
            rt.mem.write_bytes(buf, b"/etc/hostname\0")  # type: ignore[attr-defined]
            return 14

        vm.register_helper(Helper.D_PATH, d_path, "d_path")

    out = run_script('kfunc:vfs_open { printf("%s|\\n", path(args->path)); @[path(args->path)] = count(); }',
                     kfuncs=lambda name: info, ctx=lambda provider: struct.pack("<Q", 0x1234), setup=setup)
    assert out == "/etc/hostname|\n" + TAIL + "@[/etc/hostname]: 1\n"
    assert seen == [(0x1234, 64), (0x1234, 64)]


def test_path_elsewhere_is_a_caret_error() -> None:
    script = 'tracepoint:syscalls:sys_enter_openat { printf("%s\\n", path(args->filename)); }'
    from bpfkit.lang.tracepoint_format import parse_format

    fmt = parse_format("name: sys_enter_openat\nID: 1\nformat:\n"
                       "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
                       "\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n", "syscalls")
    with pytest.raises(CompileError) as e:
        run_script(script, formats=lambda c, n: fmt)
    assert str(e.value).splitlines()[:3] == [
        "stdin:1:55-75: ERROR: The path function can only be used with 'kfunc', 'kretfunc', 'iter' probes",
        script, " " * 54 + "~" * 20]


def _first_region_base() -> int:
    """The address the first memory a fresh VM maps gets (the same in every VM)."""
    with Vm() as vm:
        return vm.mem.map(bytearray(8), RegionKind.MEMORY).base


def test_uaddr_gives_a_typed_pointer_to_the_symbol() -> None:
    from bpfkit.lang.codegen import Options, compile_script

    from .trace_vm import no_formats, run_compiled

    base = _first_region_base()
    symbols = {"g_long": (base, 8), "g_int": (base + 8, 4), "g_short": (base + 12, 2),
               "g_char": (base + 14, 1), "g_arr": (base + 16, 10)}
    asked: list[tuple[str, str]] = []

    def usyms(binary: str, name: str) -> tuple[int, int] | None:
        asked.append((binary, name))
        return symbols.get(name)

    def setup(vm: Vm) -> None:
        data = struct.pack("<qihb", -77, 42, 7, -3).ljust(16, b"\0") + b"hello".ljust(16, b"\0")
        region = vm.mem.map(bytearray(data), RegionKind.MEMORY)
        assert region.base == base

    script = compile_script(
        'uprobe:/bin/x:f { printf("%d %d %d %d %ld %s\\n", *uaddr("g_long"), *uaddr("g_int"), '
        '*uaddr("g_short"), *uaddr("g_char"), *uaddr("g_arr") & 0xffffffffff, str(uaddr("g_arr"))); '
        '@[uaddr("g_int")] = 1; }', no_formats, options=Options(usyms=usyms))
    out = run_compiled(script, ctx=lambda provider: bytes(168), setup=setup)
    hello = int.from_bytes(b"hello", "little")
    assert out == f"-77 42 7 -3 {hello} hello\n" + TAIL + f"@[{base + 8:#x}]: 1\n"
    assert set(asked) == {("/bin/x", n) for n in symbols}


@pytest.mark.parametrize(("script", "message"), [
    ('BEGIN { printf("%d\\n", uaddr("g")); }',
     'stdin:1:24-34: ERROR: uaddr can not be used with "BEGIN" probes'),
    ('uprobe:/bin/x:f { $a = uaddr("nope"); }',
     "stdin:1:24-37: ERROR: Could not resolve symbol: /bin/x:nope"),
    ("uprobe:/bin/x:f { $a = uaddr(comm); }",
     "stdin:1:30-34: ERROR: uaddr() expects a symbol name as a string literal"),
])
def test_uaddr_errors(script: str, message: str) -> None:
    from bpfkit.lang.codegen import Options, compile_script

    from .trace_vm import no_formats

    with pytest.raises(CompileError) as e:
        compile_script(script, no_formats, options=Options(usyms=lambda b, n: None))
    assert str(e.value).splitlines()[0] == message


def test_hardware_probes_compile_to_perf_event_programs_that_run() -> None:
    from bpfkit.lang.codegen import compile_script
    from bpfkit.uapi.enums import ProgType

    from .trace_vm import no_formats

    script = compile_script("hardware:cache-misses:1000000 { @c = count(); } h:cycles { @d = count(); }",
                            no_formats)
    assert [p.program.type for p in script.probes] == [ProgType.PERF_EVENT, ProgType.PERF_EVENT]
    assert [(p.attach.target, p.attach.freq) for p in script.probes] == [("cache-misses", 1000000),
                                                                          ("cycles", None)]
    out = run_script("hardware:branch-misses:10 { @c = count(); }", ctx=lambda provider: bytes(256))
    assert out == TAIL + "@c: 1\n"


def test_unknown_hardware_event_is_a_caret_error() -> None:
    with pytest.raises(CompileError) as e:
        run_script("hardware:nope:100 { @ = count(); }")
    assert str(e.value).splitlines()[:3] == ["stdin:1:1-18: ERROR: nope is not a hardware probe",
                                             "hardware:nope:100 { @ = count(); }", "~" * 17]


def _array_spec() -> Spec:
    """struct task_struct { int vals[4]; short s16[3]; struct pair { int a; short b; } pairs[2];
    struct pair *pp; int *ip; unsigned long long big[2]; }: 72 bytes."""
    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    u32 = b.add(Int("unsigned int", 4))
    i16 = b.add(Int("short", 2, IntEncoding.SIGNED))
    u64 = b.add(Int("unsigned long long", 8))
    pair = b.add(Struct("pair", 8, (Member("a", i32, 0), Member("b", i16, 32))))
    vals = b.add(Array(i32, u32, 4))
    s16 = b.add(Array(i16, u32, 3))
    pairs = b.add(Array(pair, u32, 2))
    big = b.add(Array(u64, u32, 2))
    pp = b.add(Ptr(pair))
    ip = b.add(Ptr(i32))
    b.add(Struct("task_struct", 72, (Member("vals", vals, 0), Member("s16", s16, 128),
                                     Member("pairs", pairs, 192), Member("pp", pp, 320),
                                     Member("ip", ip, 384), Member("big", big, 448))))
    return Spec(b.marshal())


ARRAY_SPEC = _array_spec()


def _array_setup(vm: Vm) -> None:
    task = vm.mem.map(bytearray(72), RegionKind.MEMORY)
    raw = struct.pack("<4i3hxx", 1, -2, 3, 2**31 - 1, -5, 6, -7) + struct.pack("<ihxxihxx", 10, -11, 20, 21)
    raw += struct.pack("<QQ", task.base + 24, task.base) + struct.pack("<QQ", 2**64 - 1, 5)
    task.buf[:] = raw  # type: ignore[index]
    vm.register_helper(Helper.GET_CURRENT_TASK, lambda rt, *_: task.base, "get_current_task")


def _array_run(body: str) -> str:
    return run_script("BEGIN { " + body + " exit(); }", btf=lambda: ARRAY_SPEC, setup=_array_setup)


def test_btf_int_arrays_index_print_and_store_like_bpftrace() -> None:
    out = _array_run(r'printf("%d %d %d %d\n", curtask->vals[0], curtask->vals[1], curtask->s16[2], '
                     r'curtask->big[0] == 0xffffffffffffffff); print(curtask->vals); print(curtask->s16); '
                     r'$v = curtask->vals; printf("%d\n", $v[3]); @a = curtask->vals; @k[curtask->s16] = 1; '
                     r'@b = curtask->big;')
    assert out == ("1 -2 -7 1\n[1,-2,3,2147483647]\n[-5,6,-7]\n2147483647\n" + TAIL +
                   "@a: [1,-2,3,2147483647]\n@b: [18446744073709551615,5]\n@k[[-5,6,-7]]: 1\n")


def test_btf_struct_arrays_and_pointer_subscripts() -> None:
    out = _array_run(r'printf("%d %d %d %d ", curtask->pairs[0].a, curtask->pairs[0].b, curtask->pairs[1].a, '
                     r'curtask->pairs[1].b); printf("%d %d %d %d\n", curtask->pp[0].b, curtask->pp[1].a, '
                     r'curtask->ip[1], curtask->ip[1 + 1]);')
    assert out == "10 -11 20 21 -11 20 -2 3\n" + TAIL


@pytest.mark.parametrize(("body", "message"), [
    ("$i = 1; $x = curtask->vals[$i];", "The array index operator [] only accepts literal integer indices."),
    ("$x = curtask->vals[4];", "the index 4 is out of bounds for array of size 4"),
    ("$x = curtask->pairs;", "an array of structs ('struct pair[2]') can only be indexed: curtask->pairs[0]"),
    ("$x = pid[0];", "The array index operator [] can not be used on expressions of type 'uint64'"),
])
def test_array_errors(body: str, message: str) -> None:
    with pytest.raises(CompileError) as e:
        _array_run(body)
    assert message in str(e.value).splitlines()[0]


SYS_ENTER = ("name: sys_enter\nID: 1\nformat:\n"
             "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
             "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n"
             "\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n"
             "\tfield:__u8 saddr[4];\toffset:64;\tsize:4;\tsigned:0;\n"
             "\tfield:short small[2];\toffset:68;\tsize:4;\tsigned:1;\n")


def test_tracepoint_array_arguments() -> None:
    from bpfkit.lang.tracepoint_format import parse_format

    fmt = parse_format(SYS_ENTER, "raw_syscalls", "sys_enter")
    ctx = struct.pack("<Q", 0) + struct.pack("<q6Q", 230, 1, 2, 2**64 - 3, 4, 5, 6) + bytes([127, 0, 0, 1]) \
        + struct.pack("<hh", -4, 9)
    out = run_script('tracepoint:raw_syscalls:sys_enter { printf("%d %d %lu %d %d\\n", args->id, '
                     'args->args[0], args.args[2], args->small[0], args->small[1]); print(args->args); '
                     'print(args->saddr); '
                     'printf("%s\\n", ntop(args->saddr)); @[args->small] = count(); }',
                     formats=lambda c, n: fmt if (c, n) == ("raw_syscalls", "sys_enter") else None,
                     ctx=lambda provider: ctx)
    assert out == (f"230 1 {2**64 - 3} -4 9\n[1,2,{2**64 - 3},4,5,6]\n[127,0,0,1]\n127.0.0.1\n" + TAIL
                   + "@[[-4,9]]: 1\n")


def _iter_spec() -> Spec:
    """struct task_struct { int pid; char comm[16]; }, struct bpf_iter__task { meta, task } and the
    kernel function bpf_iter_task the program is loaded against."""
    from bpfkit.btf.types import Func, FuncProto, Param

    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    u32 = b.add(Int("unsigned int", 4))
    char = b.add(Int("char", 1, IntEncoding.CHAR | IntEncoding.SIGNED))
    comm = b.add(Array(char, u32, 16))
    task = b.add(Struct("task_struct", 20, (Member("pid", i32, 0), Member("comm", comm, 32))))
    meta = b.add(Struct("bpf_iter_meta", 8, (Member("seq_num", u32, 0),)))
    ctx = b.add(Struct("bpf_iter__task", 16, (Member("meta", b.type_count + 1, 0),
                                              Member("task", b.type_count + 2, 64))))
    b.add(Ptr(meta))
    b.add(Ptr(task))
    proto = b.add(FuncProto(i32, (Param("ctx", b.add(Ptr(ctx))),)))
    b.add(Func("bpf_iter_task", proto))
    return Spec(b.marshal())


def test_iter_task_probes_read_ctx_and_skip_the_final_null_call() -> None:
    from bpfkit.btf.types import Func
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.uapi.enums import AttachType, ProgType

    from .trace_vm import no_formats, run_compiled

    spec = _iter_spec()
    base = _first_region_base()

    def setup(vm: Vm) -> None:
        task = vm.mem.map(bytearray(struct.pack("<i", 42).ljust(4, b"\0") + b"kworker".ljust(16, b"\0")),
                          RegionKind.MEMORY)
        assert task.base == base

    script = compile_script('iter:task { printf("%d %s\\n", ctx->task->pid, ctx->task->comm); '
                            '@n = count(); }',
                            no_formats, options=Options(btf=lambda: spec))
    prog = script.probes[0].program
    assert (prog.type, prog.expected_attach_type) == (ProgType.TRACING, AttachType.TRACE_ITER)
    assert prog.attach_btf_id == spec.find_ids("bpf_iter_task", Func)[0]
    out = run_compiled(script, ctx=lambda provider: struct.pack("<QQ", 0, base), setup=setup)
    assert out == "42 kworker\n" + TAIL + "@n: 1\n"
    last = run_compiled(script, ctx=lambda provider: bytes(16), setup=setup)  # ctx->task == NULL
    assert last == TAIL + "\n"  # nothing printed, @n empty (bpftrace shows an empty map as a blank line)


@pytest.mark.parametrize(("script", "message"), [
    ("iter:nope { }", "stdin:1:1-10: ERROR: iter nope not available for your kernel version (no struct "
                      "bpf_iter__nope in its BTF)"),
    ("BEGIN { $x = ctx; }", "stdin:1:14-17: ERROR: The ctx builtin can only be used with iter probes (of one "
                            "iterator)"),
    ("iter:task:/sys/fs/bpf/x.y { }", "stdin:1:1-26: ERROR: iter pin path '/sys/fs/bpf/x.y': a bpf file "
                                      "system name cannot contain '.'"),
])
def test_iter_errors(script: str, message: str) -> None:
    spec = _iter_spec()
    with pytest.raises(CompileError) as e:
        run_script(script, btf=lambda: spec)
    assert str(e.value).splitlines()[0] == message


def test_structs_as_values_print_like_bpftrace() -> None:
    out = _btf_run(r'@s = curtask->se; print(curtask->se); $s = curtask->se; '
                   r'printf("%lu %d\n", $s.vruntime, $s.on_rq); @k[curtask->se] = 1; '
                   r'@p[1] = *curtask->parent;')
    se = "{ .vruntime = 123456789012, .on_rq = 1 }"
    parent = ("{ .pid = 1, .flags = 2147483649, .comm = init-with-a-long, .parent = 0, .lo = 5, .mid = 17, "
              ".neg = -6, .wide = 703710, .s16 = -2, .u8 = 200, .s64 = -5, .a = -7, .b = 4294967289, "
              ".se = { .vruntime = 123456789012, .on_rq = 1 }, .iptr = 0 }")
    assert out == (f"{se}\n123456789012 1\n" + TAIL + "@k[{.vruntime=123456789012,.on_rq=1}]: 1\n"
                   + f"@p[1]: {parent}\n@s: {se}\n")


def test_struct_array_elements_as_values() -> None:
    out = _array_run(r'@e = curtask->pairs[1]; $p = curtask->pp[0]; printf("%d %d\n", $p.a, $p.b); '
                     r'print(curtask->pairs[0]);')
    assert out == "10 -11\n{ .a = 10, .b = -11 }\n" + TAIL + "@e: { .a = 20, .b = 21 }\n"


@pytest.mark.parametrize(("body", "message"), [
    ("$s = curtask->se; $x = $s.nope;", "Struct/union of type 'struct sched_entity' does not contain a field "
                                        "named 'nope'"),
    ("$s = curtask->se; $x = $s->on_rq;", "Can not access field 'on_rq' on type 'struct sched_entity' with "
                                          "'->': it is not a pointer (use '.')"),
])
def test_struct_value_errors(body: str, message: str) -> None:
    with pytest.raises(CompileError) as e:
        _btf_run(body)
    assert message in str(e.value).splitlines()[0]


def test_for_loops_over_avg_maps_give_the_averages() -> None:
    out = run_script('BEGIN { @a[1] = avg(4); @a[1] = avg(7); @a[2] = avg(-9); '
                     'for ($kv : @a) { printf("%d %d\\n", $kv.0, $kv.1); } exit(); }')
    assert sorted(out.split("\n\n\n")[0].splitlines()) == ["1 5", "2 -9"]


@pytest.mark.parametrize("probe", ["uprobe:/bin/x:f", "usdt:/bin/x:p", "BEGIN"])
def test_integer_pointer_casts_of_plain_values_read_with_the_legacy_helper_in_every_probe(probe: str) -> None:
    """As bpftrace 0.17: a literal has no address space, so ``*(int64 *)$a`` reads with bpf_probe_read
    (which reads either space on x86-64) in user probes and elsewhere alike."""
    from bpfkit.lang.codegen import Options, compile_script
    from bpfkit.vm.helpers import probe_read

    from .trace_vm import no_formats, run_compiled

    base = _first_region_base()
    reads: list[Helper] = []

    def setup(vm: Vm) -> None:
        assert vm.mem.map(bytearray(struct.pack("<q", -77)), RegionKind.MEMORY).base == base
        for h in (Helper.PROBE_READ_USER, Helper.PROBE_READ_KERNEL, Helper.PROBE_READ):
            vm.register_helper(h, lambda rt, *a, h=h: reads.append(h) or probe_read(rt, *a), h.name.lower())

    script = compile_script(f'{probe} {{ $a = {base}; printf("%d\\n", *(int64 *)$a); }}', no_formats,
                            options=Options(usdt=lambda ap: [[]]))
    out = run_compiled(script, ctx=lambda provider: bytes(168), setup=setup)
    assert out == "-77\n" + TAIL
    assert reads == [Helper.PROBE_READ]


def _task_file_spec() -> Spec:
    """bpf_iter__task_file { meta, task, u32 fd, struct file *file } with struct file { int x;
    struct path f_path; }, and the function bpf_iter_task_file."""
    from bpfkit.btf.types import Func, FuncProto, Param

    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    u32 = b.add(Int("unsigned int", 4))
    path = b.add(Struct("path", 16, (Member("mnt", i32, 0), Member("dentry", i32, 64))))
    file = b.add(Struct("file", 24, (Member("x", i32, 0), Member("f_path", path, 64))))
    task = b.add(Struct("task_struct", 4, (Member("pid", i32, 0),)))
    first = b.type_count
    ctx = b.add(Struct("bpf_iter__task_file", 32, (Member("meta", first + 1, 0),
                                                   Member("task", first + 2, 64), Member("fd", u32, 128),
                                                   Member("file", first + 3, 192))))
    b.add(Ptr(i32))
    b.add(Ptr(task))
    b.add(Ptr(file))
    b.add(Func("bpf_iter_task_file", b.add(FuncProto(i32, (Param("ctx", b.add(Ptr(ctx))),)))))
    return Spec(b.marshal())


def test_path_in_iter_probes_passes_the_kernel_pointer_loaded_from_the_context() -> None:
    from bpfkit.lang.codegen import Options, compile_script

    from .trace_vm import no_formats, run_compiled

    spec = _task_file_spec()
    base = _first_region_base()
    seen: list[int] = []

    def setup(vm: Vm) -> None:
        assert vm.mem.map(bytearray(24), RegionKind.MEMORY).base == base  # the struct file

        def d_path(rt: object, path: int, buf: int, size: int, *_: int) -> int:
            seen.append(path)
            rt.mem.write_bytes(buf, b"/tmp/x\0")  # type: ignore[attr-defined]
            return 7

        vm.register_helper(Helper.D_PATH, d_path, "d_path")

    script = compile_script('iter:task_file { printf("%d %s|%s\\n", ctx->fd, path(ctx->file->f_path), '
                            'path(&ctx->file->f_path)); }', no_formats, options=Options(btf=lambda: spec))
    out = run_compiled(script, ctx=lambda provider: struct.pack("<QQIxxxxQ", 0, 1, 5, base), setup=setup)
    assert out == "5 /tmp/x|/tmp/x\n" + TAIL
    assert seen == [base + 8, base + 8]
    no_file = run_compiled(script, ctx=lambda provider: struct.pack("<QQIxxxxQ", 0, 1, 5, 0), setup=setup)
    assert no_file == "5 |\n" + TAIL  # a NULL pointer on the way: no call, an empty path
