"""Struct values larger than the BPF stack allows, staged in a per-CPU scratch map (run in bpfkit's VM;
tests/kernel/trace/test_big_structs.py runs them in the kernel)."""

from __future__ import annotations

import struct

import pytest

from bpfkit.btf import Spec
from bpfkit.btf.marshal import BtfBuilder
from bpfkit.btf.types import Array, Int, Member, Ptr, Struct
from bpfkit.errors import CompileError
from bpfkit.lang.big_values import BIG_MAP
from bpfkit.lang.btftypes import MAX_PERCPU_VALUE, MAX_STRUCT_COPY, MAX_STRUCT_VALUE
from bpfkit.lang.codegen import Options, compile_script, no_formats
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import Helper, MapType
from bpfkit.vm import Vm
from bpfkit.vm.memory import RegionKind

from .trace_vm import run_script

NVALS = 70
BIG_SIZE = 4 + 4 + 16 + 8 * NVALS + 8  # pid, flags, comm, vals, self: 592 bytes


def _spec(huge: int = 40000) -> Spec:
    """struct big { int pid; unsigned int flags; char comm[16]; long long vals[70]; struct big *self; }
    (592 bytes) and struct huge { char data[`huge`]; }."""
    b = BtfBuilder()
    i32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    u32 = b.add(Int("unsigned int", 4))
    char = b.add(Int("char", 1, IntEncoding.CHAR | IntEncoding.SIGNED))
    i64 = b.add(Int("long long", 8, IntEncoding.SIGNED))
    comm = b.add(Array(char, u32, 16))
    vals = b.add(Array(i64, u32, NVALS))
    big = b.type_count  # the id the struct gets; its pointer comes next
    b.add(Struct("big", BIG_SIZE, (Member("pid", i32, 0), Member("flags", u32, 32), Member("comm", comm, 64),
                                   Member("vals", vals, 192), Member("self", big + 1, 192 + 64 * NVALS))))
    b.add(Ptr(big))
    data = b.add(Array(char, u32, huge))
    b.add(Struct("huge", huge, (Member("data", data, 0),)))
    return Spec(b.marshal())


SPEC = _spec()


def _setup(vm: Vm) -> None:
    region = vm.mem.map(bytearray(BIG_SIZE), RegionKind.MEMORY)
    raw = struct.pack(f"<iI16s{NVALS}qQ", 4242, 7, b"bigproc", *[(i * 37) - 1000 for i in range(NVALS)],
                      region.base)
    region.buf[:] = raw  # type: ignore[index]
    vm.register_helper(Helper.GET_CURRENT_TASK, lambda rt, *_: region.base, "get_current_task")
    ADDRESS[:] = [region.base]


ADDRESS: list[int] = []


def _shown() -> str:
    vals = ",".join(str((i * 37) - 1000) for i in range(NVALS))
    address = ADDRESS[0] - (1 << 64) if ADDRESS[0] >= 1 << 63 else ADDRESS[0]  # pointers print signed
    return f"{{ .pid = 4242, .flags = 7, .comm = bigproc, .vals = [{vals}], .self = {address} }}"


def _run(body: str) -> str:
    return run_script("BEGIN { " + body + " exit(); }", btf=lambda: SPEC, setup=_setup)


def test_the_test_struct_is_beyond_the_stack_limit() -> None:
    assert BIG_SIZE > MAX_STRUCT_VALUE and BIG_SIZE + 8 > 512


def test_big_struct_in_a_map_print_and_printf() -> None:
    out = _run('$p = (struct big *)curtask; @b = *$p; print(*$p); printf("%d|%s|%s\\n", $p->pid, *$p, '
               '$p->comm); @k[1, "x"] = *(struct big *)curtask;')
    shown = _shown()
    assert out == f"{shown}\n4242|{shown}|bigproc\n\n\n@b: {shown}\n@k[1, x]: {shown}\n"


def test_the_scratch_map_is_per_cpu_and_sized_for_the_largest_use() -> None:
    script = compile_script('BEGIN { $p = (struct big *)curtask; @b = *$p; printf("%d %s\\n", 1, *$p); }',
                            no_formats, options=Options(btf=lambda: SPEC))
    spec = dict(script.aux_maps)[BIG_MAP]
    assert (spec.type, spec.key_size, spec.max_entries) == (MapType.PERCPU_ARRAY, 4, 1)
    assert spec.value_size == 8 + 8 + BIG_SIZE  # the printf event: id, the int, the struct
    small = compile_script("BEGIN { @s = ((struct big *)curtask)->comm; }", no_formats,
                           options=Options(btf=lambda: SPEC))
    assert BIG_MAP not in dict(small.aux_maps)


@pytest.mark.parametrize(("body", "start", "end", "message"), [
    ("@m = *(struct big *)curtask; $b = @m;", 38, 45, "'struct big' is 592 bytes: too large for a variable "
                                                     "(variables live on the 512-byte BPF stack)"),
    ("@m[*(struct big *)curtask] = 1;", 12, 34, "'struct big' is 592 bytes: too large for a map key (map "
                                                "keys live on the 512-byte BPF stack)"),
    ("@t = (1, *(struct big *)curtask);", 18, 40, "'struct big' is 592 bytes: too large for a tuple element "
                                                  "(tuple elements live on the 512-byte BPF stack)"),
    ("@h = *(struct huge *)curtask;", 14, 37, f"'struct huge' is 40000 bytes: too large to copy as a value "
                                              f"(at most {MAX_STRUCT_COPY})"),
])
def test_what_cannot_be_staged_is_a_caret_error(body: str, start: int, end: int, message: str) -> None:
    with pytest.raises(CompileError) as e:
        compile_script("BEGIN { " + body + " }", no_formats, options=Options(btf=lambda: SPEC))
    lines = str(e.value).splitlines()
    assert lines[0].startswith(f"stdin:1:{start}-{end}: ERROR: {message}"), lines[0]
    assert lines[2] == " " * (start - 1) + "~" * (end - start)


def test_a_variable_holds_the_address_and_reads_at_each_use() -> None:
    out = _run('$b = *(struct big *)curtask; $c = $b; printf("%d %s %d %d\\n", $b.pid, $c.comm, $b.vals[3], '
               '$c.self == (uint64)curtask); @b = $c; print($b); @p = $b.pid;')
    shown = _shown()
    assert out == f"4242 bigproc {3 * 37 - 1000} 1\n{shown}\n\n\n@b: {shown}\n@p: 4242\n"
    script = compile_script("BEGIN { $b = *(struct big *)curtask; @p = $b.pid; }", no_formats,
                            options=Options(btf=lambda: SPEC))
    assert BIG_MAP not in dict(script.aux_maps)  # reading a member stages nothing


def test_a_map_holding_a_big_struct_is_read_where_it_lies() -> None:
    """Members of a map's big struct value (a variable, print, a condition, a keyed map, a pointer member
    followed), the whole value copied to another map and printf'ed; a missing key reads as zeros."""
    out = _run('@m = *(struct big *)curtask; @k[1] = *(struct big *)curtask; $x = @m.pid; print(@m.pid); '
               'if (@m.pid == 4242) { printf("yes\\n"); } if (@m.pid == 1) { printf("no\\n"); } '
               '@p = @k[1].comm; @z = @k[2].pid; @s = @m.self->pid; '
               'printf("%d %s %u\\n", $x, @m.comm, @k[1].flags); @n = @m; @e = @k[5]; '
               'printf("%s\\n", @k[1]);')
    shown = _shown()
    zeros = ",".join("0" * NVALS)
    empty = f"{{ .pid = 0, .flags = 0, .comm = , .vals = [{zeros}], .self = 0 }}"
    assert out == (f"4242\nyes\n4242 bigproc 7\n{shown}\n\n\n@e: {empty}\n@k[1]: {shown}\n@m: {shown}\n"
                   f"@n: {shown}\n@p: bigproc\n@s: 4242\n@z: 0\n")


def test_what_is_staged_at_once_fits_the_kernels_per_cpu_value_limit() -> None:
    """The scratch value of one call (the event id and every argument) is at most PCPU_MIN_UNIT_SIZE:
    the kernel refuses a larger per-CPU array value (E2BIG), so bpfkit refuses the call, at the call."""
    assert MAX_STRUCT_COPY == MAX_PERCPU_VALUE - 8 == 32 * 1024 - 8
    body = '$p = (struct huge *)curtask; printf("%s %s\\n", *$p, *$p);'
    with pytest.raises(CompileError) as e:
        compile_script("BEGIN { " + body + " }", no_formats, options=Options(btf=lambda: _spec(20000)))
    lines = str(e.value).splitlines()
    assert lines[0] == ("stdin:1:38-65: ERROR: the values of this call take 40008 bytes together (with the "
                        "event's 8-byte id): more than the 32768 bytes of a per-CPU map value the kernel "
                        "allows (PCPU_MIN_UNIT_SIZE), where they are assembled; print them in separate calls")
    assert lines[2] == " " * 37 + "~" * 27
    one = '$p = (struct huge *)curtask; printf("%d %s\\n", 1, *$p);'  # 8 + 8 + the struct
    at_limit = compile_script("BEGIN { " + one + " }", no_formats,
                              options=Options(btf=lambda: _spec(MAX_PERCPU_VALUE - 16)))
    assert dict(at_limit.aux_maps)[BIG_MAP].value_size == MAX_PERCPU_VALUE
    with pytest.raises(CompileError, match="take 32776 bytes together"):  # 32753 bytes: 32760 stored
        compile_script("BEGIN { " + one + " }", no_formats,
                       options=Options(btf=lambda: _spec(MAX_PERCPU_VALUE - 15)))


@pytest.mark.parametrize("body", ["$b = *(struct big *)curtask; $c = 1 ? $b : $b; print($c);",
                                  '@n = 1 ? *(struct big *)curtask : *(struct big *)curtask;'])
def test_every_refusal_of_a_big_struct_gives_the_same_advice(body: str) -> None:
    """The analysis (a variable) and code generation (a value with no address to stage from) say the
    same thing: one predicate, one message (`big_values.too_big_message`)."""
    with pytest.raises(CompileError) as e:
        compile_script("BEGIN { " + body + " }", no_formats, options=Options(btf=lambda: SPEC))
    first = str(e.value).splitlines()[0]
    assert "ERROR: 'struct big' is 592 bytes: too large for " in first, first
    assert first.endswith("; a struct this large can only be copied to a map (@x = ...), printed (print(), "
                          "printf()) or read field by field, from where it lies (*ptr, ptr->member, or a "
                          "variable or map holding it)"), first


def test_a_map_holding_a_user_struct_is_read_as_kernel_memory() -> None:
    """A struct read from user memory (a uprobe's pointer) and kept in a map lies in the map, kernel
    memory: its members are read with bpf_probe_read_kernel. The VM's bpf_probe_read_user is made to
    fail outside the fake user struct, as the kernel's does for kernel addresses."""
    from bpfkit.vm.helpers import probe_read

    def setup(vm: Vm) -> None:
        _setup(vm)
        base = ADDRESS[0]

        def read_user(rt: object, dst: int, size: int, src: int, r4: int, r5: int) -> int:
            if not base <= src < base + BIG_SIZE:
                vm.mem.write_bytes(dst, bytes(size & 0xFFFFFFFF))
                return -14  # -EFAULT
            return probe_read(rt, dst, size, src, r4, r5)  # type: ignore[arg-type]

        vm.register_helper(Helper.PROBE_READ_USER, read_user, "probe_read_user")

    def ctx(provider: str) -> bytes:
        regs = bytearray(168)  # struct pt_regs: arg0 is di, at 112
        struct.pack_into("<Q", regs, 112, ADDRESS[0])
        return bytes(regs)

    out = run_script('uprobe:/bin/sh:main { @m = *(struct big *)arg0; @p = @m.pid; @c = @m.comm; '
                     '$v = *(struct big *)arg0; @q = $v.pid; @n = @m; printf("%d\\n", @n.flags); }',
                     btf=lambda: SPEC, setup=setup, ctx=ctx)
    shown = _shown()
    assert out == f"7\n\n\n@c: bigproc\n@m: {shown}\n@n: {shown}\n@p: 4242\n@q: 4242\n"
