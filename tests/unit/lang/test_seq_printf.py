"""Pinned iter probes: printf through bpf_seq_printf (formats, checks, the read-only format map).

What the kernel prints from these programs is tested in tests/kernel/trace/test_iter_pin.py.
"""

from __future__ import annotations

import re
import struct

import pytest

from bpfkit.errors import CompileError
from bpfkit.isa import Instruction
from bpfkit.isa.builder import Relocation
from bpfkit.lang.codegen import Options, compile_script, no_formats
from bpfkit.lang.seq_printf import FORMAT_MAP, add_format, formats_blob, kernel_format
from bpfkit.uapi.enums import Helper, MapFlags, MapType
from bpfkit.vm import Vm
from bpfkit.vm.memory import RegionKind

from .test_codegen_features import _iter_spec


@pytest.mark.parametrize(("fmt", "kernel", "convs"), [
    ("%s %d\n", "%s %d\n", ["s", "d"]),
    ("%-16s|%5u|%05x|%+d|% d|%X|%c", "%-16s|%5u|%05x|%+d|% d|%X|%c", ["s", "u", "x", "d", "d", "X", "c"]),
    ("%ld %lld %lu %zu %jd %td", "%ld %lld %lu %lu %lld %ld", ["d", "d", "u", "u", "d", "d"]),
    ("100%% done %i", "100%% done %i", ["i"]),
    ("no conversions", "no conversions", []),
    ("%*d %d", "%%*d %d", ["d"]),  # as bpftrace: a '*' width is no conversion, so it stays text
])
def test_kernel_format_keeps_what_the_kernel_formats(fmt: str, kernel: str, convs: list[str]) -> None:
    assert kernel_format(fmt) == (kernel, convs)


@pytest.mark.parametrize(("fmt", "why"), [
    ("%hd", "no h/hh length modifier"),
    ("%hhu", "no h/hh length modifier"),
    ("%o", "cannot format %o"),
    ("%p", "cannot format %p"),
    ("%r", "cannot format %r"),
    ("%#x", "no '#' flag or precision"),
    ("%.3s", "no '#' flag or precision"),
    ("%ls", "a length modifier does not apply to %s"),
])
def test_kernel_format_refuses_what_the_kernel_cannot_format(fmt: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        kernel_format(fmt)


def test_formats_blob_aligns_each_format() -> None:
    formats: list[bytes] = []
    offsets = [add_format(formats, f) for f in (b"abc", b"12345678", b"")]
    assert offsets == [0, 8, 24] and formats == [b"abc", b"12345678", b""]
    assert formats_blob(formats) == b"abc\0" + bytes(4) + b"12345678\0" + bytes(7) + b"\0" + bytes(7)


def _compile(text: str) -> object:
    spec = _iter_spec()
    return compile_script(text, no_formats, options=Options(btf=lambda: spec))


def test_pinned_iter_printf_goes_through_seq_printf_with_a_frozen_format_map() -> None:
    from bpfkit.lang.resources import CompiledScript

    script = _compile('iter:task:/sys/fs/bpf/t { printf("%d %s\\n", ctx->task->pid, ctx->task->comm); '
                      'printf("x%ld\\n", 5); } iter:task { printf("%d\\n", 1); }')
    assert isinstance(script, CompiledScript)
    aux = dict(script.aux_maps)
    fmt_map = aux[FORMAT_MAP]
    assert fmt_map.type is MapType.ARRAY and fmt_map.max_entries == 1
    assert fmt_map.flags & MapFlags.RDONLY_PROG and fmt_map.freeze
    blob = formats_blob([b"%d %s\n", b"x%ld\n"])
    assert fmt_map.contents == ((bytes(4), blob),) and fmt_map.value_size == len(blob)
    pinned, plain = script.probes
    assert pinned.attach.pin == "/sys/fs/bpf/t" and not plain.attach.pin

    def calls(probe: object) -> list[int]:
        insns = probe.program.insns  # type: ignore[attr-defined]
        return [i.imm for i in insns if isinstance(i, Instruction) and i.opcode == 0x85]

    assert calls(pinned).count(Helper.SEQ_PRINTF) == 2 and Helper.RINGBUF_OUTPUT not in calls(pinned)
    assert Helper.SEQ_PRINTF not in calls(plain) and Helper.RINGBUF_OUTPUT in calls(plain)
    assert len(script.events) == 1  # only the unpinned probe's printf is a ring buffer event


@pytest.mark.parametrize(("script", "message"), [
    ('iter:task:p { print(1); }', "stdin:1:15-23: ERROR: print() cannot be used in a pinned iter probe: it "
                                  "needs bpfkit running, and only printf() writes to the pin's readers"),
    ('iter:task:p { time(); }', "stdin:1:15-21: ERROR: time() cannot be used in a pinned iter probe"),
    ('iter:task:p { exit(); }', "stdin:1:15-21: ERROR: exit() cannot be used in a pinned iter probe"),
    ('iter:task:p { errorf("x"); }', "stdin:1:15-26: ERROR: errorf() cannot be used in a pinned iter probe"),
    ('iter:task:p { printf("%hd\\n", 1); }', "stdin:1:22-29: ERROR: printf in a pinned iter probe: '%hd': "
                                              "the kernel's bpf_seq_printf has no h/hh length modifier"),
    ('iter:task:p { printf("%d\\n", comm); }', "stdin:1:30-34: ERROR: printf in a pinned iter probe: %d "
                                                "cannot print a 'string[64]'"),
    ('iter:task:p { printf("%s\\n", ksym(1)); }', "stdin:1:30-37: ERROR: printf in a pinned iter probe: %s "
                                                   "cannot print a 'ksym'"),
    ('iter:task:p { printf("' + "%d" * 13 + '", ' + ", ".join("1" * 13) + '); }',
     "stdin:1:15-90: ERROR: printf in a pinned iter probe takes at most 12 arguments"),
    ('iter:task:a.b { }', "stdin:1:1-14: ERROR: iter pin path 'a.b': a bpf file system name cannot contain"),
])
def test_pinned_iter_probes_refuse_what_needs_bpfkit_running(script: str, message: str) -> None:
    with pytest.raises(CompileError) as e:
        _compile(script)
    assert str(e.value).splitlines()[0].startswith(message), str(e.value)


def test_printf_in_a_for_loop_of_a_pinned_iter_probe_is_refused() -> None:
    with pytest.raises(CompileError) as e:
        _compile('iter:task:p { @m[1] = 1; for ($kv : @m) { printf("%d\\n", 1); } }')
    assert str(e.value).splitlines()[0] == ("stdin:1:50-56: ERROR: printf in a pinned iter probe cannot be "
                                            "used in a for loop over a map: the loop body runs without the "
                                            "iterator's context")


def test_each_printf_passes_its_format_offset_and_length_to_bpf_seq_printf() -> None:
    """Run the pinned probe in bpfkit's VM with a recording bpf_seq_printf: each call gets the address of
    its own format in the format map (at the offset `formats_blob` lays it at), its length with the NUL,
    and its arguments as u64s."""
    from bpfkit.lang.resources import CompiledScript

    script = _compile('iter:task:/sys/fs/bpf/t { printf("first line\\n"); printf("%d-%d\\n", 7, 8); '
                      'printf("third %s|%u\\n", "abc", 9); }')
    assert isinstance(script, CompiledScript)
    formats = [b"first line\n", b"%d-%d\n", b"third %s|%u\n"]
    blob = formats_blob(formats)
    starts = [blob.index(f + b"\0") for f in formats]
    assert starts == [0, 16, 24]  # 12 bytes with the NUL, padded to 16; 7 to 8
    calls: list[tuple[int, bytes, int, bytes, bool]] = []
    with Vm() as vm:
        meta = vm.mem.map(bytearray(struct.pack("<Q", 0x5E9)), RegionKind.MEMORY)  # meta->seq
        task = vm.mem.map(bytearray(64), RegionKind.MEMORY)

        def seq_printf(rt: object, seq: int, fmt: int, fmt_size: int, data: int, data_len: int) -> int:
            mem = vm.mem
            value = mem.read_bytes(fmt - starts[len(calls)], len(blob))  # the map value it points into
            args = mem.read_bytes(data, data_len) if data_len else b""
            if len(calls) == 2:  # a string argument is passed by the address of its copy
                args = mem.read_cstr(struct.unpack_from("<Q", args)[0], 64) + args[8:]
            calls.append((seq, mem.read_bytes(fmt, fmt_size), fmt_size, args, value == blob))
            return 0

        vm.register_helper(Helper.SEQ_PRINTF, seq_printf, "seq_printf")
        maps = {name: vm.create_map(spec) for name, spec in script.aux_maps}
        probe = script.probes[0]
        prog = vm.load(probe.program, maps=maps, verify=False,
                       relocations=[Relocation(slot, name) for slot, name in probe.map_refs])
        prog.test_run(ctx=struct.pack("<QQ", meta.base, task.base))
    assert [c[0] for c in calls] == [0x5E9] * 3  # ctx->meta->seq
    assert [c[1] for c in calls] == [f + b"\0" for f in formats]  # each format at its offset...
    assert [c[2] for c in calls] == [len(f) + 1 for f in formats]  # ...with its length, NUL included
    assert all(c[4] for c in calls)  # ...which is the format map's own value at the offset laid out
    assert calls[1][3] == struct.pack("<QQ", 7, 8)
    assert calls[2][3] == b"abc" + struct.pack("<Q", 9)


def test_a_pin_name_with_a_dot_and_a_missing_iterator_are_both_reported() -> None:
    with pytest.raises(CompileError) as e:
        _compile("iter:nope:/sys/fs/bpf/x.y { }")
    errors = [ln for ln in str(e.value).splitlines() if ": ERROR: " in ln]
    assert errors == [
        "stdin:1:1-26: ERROR: iter pin path '/sys/fs/bpf/x.y': a bpf file system name cannot contain '.'",
        "stdin:1:1-26: ERROR: iter nope not available for your kernel version (no struct bpf_iter__nope in "
        "its BTF)"]
