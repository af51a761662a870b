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
from bpfkit.lang.btftypes import MAX_STRUCT_COPY, MAX_STRUCT_VALUE
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
