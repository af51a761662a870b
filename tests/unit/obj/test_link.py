"""Linking: callbacks, shared and recursive subprograms, program discovery, externs, and the errors
for relocations that cannot be applied (each naming file, section, instruction and symbol)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bpfkit.errors import ElfError, RelocationError
from bpfkit.obj import ExternKind, KconfigType, ProgramSpec, RefKind, load_object
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import PseudoCall, PseudoSrc

from .oracle import OBJ_DIR, compile_c

LDDW = 0x18
CALL = 0x85


def _code(p: ProgramSpec) -> bytes:
    assert isinstance(p.insns, bytes)
    return p.insns


def _src(code: bytes, slot: int) -> int:
    return code[slot * 8 + 1] >> 4


def _imm(code: bytes, slot: int) -> int:
    return int(struct.unpack_from("<i", code, slot * 8 + 4)[0])


def _calls(p: ProgramSpec) -> dict[int, str]:
    """bpf-to-bpf calls (and function addresses) by slot -> name of the subprogram they reach."""
    code = _code(p)
    starts = {s.index: s.name for s in p.subprograms}
    out = {}
    slot = 0
    while slot < len(code) // 8:
        op = code[slot * 8]
        src = _src(code, slot)
        if (op == CALL and src == PseudoCall.CALL) or (op == LDDW and src == PseudoSrc.FUNC):
            target = slot + 1 + _imm(code, slot)
            assert target in starts, f"slot {slot} reaches {target}, not a subprogram start"
            out[slot] = starts[target]
        slot += 2 if op == LDDW else 1
    return out


LINKING = r"""
#include "bpfkit_helpers.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, long); }
    counts SEC(".maps");

static __noinline int bump(int k)
{
	long *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		*v += 1;
	return k;
}

static __noinline int odd(int n);
static __noinline int even(int n) { return n == 0 ? 1 : odd(n - 1); }
static __noinline int odd(int n) { return n == 0 ? 0 : even(n - 1); }

static int step(__u32 i, void *ctx) { bump(0); return 0; }

SEC("xdp") int first(void *ctx) { return bump(1) + even(4); }
SEC("xdp") int second(void *ctx) { bpf_loop(4, step, 0, 0); return odd(3) + bump(2); }
SEC("fentry.s/do_nothing") int sleepy(void *ctx) { return 0; }
SEC("xdp.frags") int frags(void *ctx) { return 2; }
SEC("no_such_kind/x") int mystery(void *ctx) { return 0; }
char _license[] SEC("license") = "Dual MIT/GPL";
"""


@pytest.fixture(scope="module")
def linking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(LINKING, tmp_path_factory.mktemp("link"), "linking")


def test_shared_and_recursive_subprograms_are_copied_per_program(linking: Path) -> None:
    obj = load_object(linking)
    first, second = obj.programs["first"], obj.programs["second"]
    assert [s.name for s in first.subprograms] == ["first", "bump", "even", "odd"]
    assert set(_calls(first).values()) == {"bump", "even", "odd"}
    # each copy of bump carries its own map reference
    assert [r.target for r in first.references] == ["counts"]
    bump_at = next(s.index for s in first.subprograms if s.name == "bump")
    assert first.references[0].index > bump_at
    assert {s.name for s in second.subprograms} == {"second", "step", "bump", "odd", "even"}
    assert len(second.references) == 1 and _code(second)[second.references[0].index * 8] == LDDW
    assert obj.license == "Dual MIT/GPL"


def test_callback_address_becomes_pseudo_func(linking: Path) -> None:
    p = load_object(linking).programs["second"]
    code = _code(p)
    funcs = {slot: name for slot, name in _calls(p).items() if code[slot * 8] == LDDW}
    assert list(funcs.values()) == ["step"]
    slot = next(iter(funcs))
    assert struct.unpack_from("<I", code, slot * 8 + 12)[0] == 0  # high half of the immediate


def test_section_conventions_on_compiled_programs(linking: Path) -> None:
    obj = load_object(linking)
    sleepy, frags, mystery = obj.programs["sleepy"], obj.programs["frags"], obj.programs["mystery"]
    assert (sleepy.type, sleepy.attach_to, sleepy.flags) == (ProgType.TRACING, "do_nothing", 1 << 4)
    assert frags.type is ProgType.XDP and frags.flags == 1 << 5
    assert mystery.type is ProgType.UNSPEC and mystery.section == "no_such_kind/x"


def test_lone_text_function_is_a_program(tmp_path: Path) -> None:
    obj = load_object(compile_c("int only(void *ctx) { return 1; }\n", tmp_path, "lone"))
    assert list(obj.programs) == ["only"]
    p = obj.programs["only"]
    assert (p.section, p.type, p.license) == (".text", ProgType.UNSPEC, "")


def test_static_function_in_program_section_is_refused(tmp_path: Path) -> None:
    src = '#include "bpfkit_helpers.h"\nSEC("xdp") static int hidden(void *ctx) { return 2; }\n' \
          'SEC("xdp") int shown(void *ctx) { return 2; }\n'
    path = compile_c(src, tmp_path, "static_prog")
    with pytest.raises(ElfError, match=r"section 'xdp'.*function 'hidden' is static"):
        load_object(path)


def test_externs_kinds_and_kconfig_layout() -> None:
    obj = load_object(OBJ_DIR / "kconfig.o")
    ext = obj.externs
    assert {e.kind for e in ext.values()} == {ExternKind.KCONFIG}
    # libbpf's layout: by alignment (largest first), then size, then name
    assert {n: (e.offset, e.size) for n, e in ext.items()} == {
        "CONFIG_BPFKIT_NO_SUCH_OPTION": (0, 4), "CONFIG_HZ": (4, 4), "LINUX_KERNEL_VERSION": (8, 4),
        "CONFIG_BPF_SYSCALL": (12, 1), "CONFIG_DEFAULT_HOSTNAME": (13, 16)}
    assert ext["CONFIG_BPF_SYSCALL"].kconfig_type is KconfigType.BOOL
    assert ext["CONFIG_DEFAULT_HOSTNAME"].kconfig_type is KconfigType.CHAR_ARRAY
    assert ext["CONFIG_HZ"].kconfig_type is KconfigType.INT and ext["CONFIG_HZ"].signed
    assert not ext["LINUX_KERNEL_VERSION"].signed
    assert ext["CONFIG_DEFAULT_HOSTNAME"].weak and not ext["CONFIG_HZ"].weak
    kmap = obj.maps[".kconfig"]
    assert (kmap.value_size, kmap.max_entries, kmap.freeze) == (29, 1, True)
    p = obj.programs["kconfig"]
    for r in p.references:
        assert (r.kind, r.target, r.offset) == (RefKind.MAP_VALUE, ".kconfig", ext[r.symbol].offset)
        assert struct.unpack_from("<I", _code(p), r.index * 8 + 12)[0] == r.offset


def test_ksym_externs() -> None:
    typeless = load_object(OBJ_DIR / "ksym_typeless.o")
    assert {n: (e.kind, e.typeless) for n, e in typeless.externs.items()} == {
        "_stext": (ExternKind.KSYM, True), "bpf_fentry_test1": (ExternKind.KSYM, True)}
    p = typeless.programs["ksym_typeless"]
    assert [(r.kind, r.target) for r in p.references] == [(RefKind.KSYM, "_stext"),
                                                           (RefKind.KSYM, "bpf_fentry_test1")]
    assert all(_src(_code(p), r.index) == PseudoSrc.NONE for r in p.references)
    percpu = load_object(OBJ_DIR / "ksym_percpu.o")
    assert not percpu.externs["bpf_prog_active"].typeless
    q = percpu.programs["ksym_percpu"]
    assert all(_src(_code(q), r.index) == PseudoSrc.BTF_ID for r in q.references)
    kfunc = load_object(OBJ_DIR / "ksym_kfunc.o")
    assert {e.kind for e in kfunc.externs.values()} == {ExternKind.KFUNC}
    k = kfunc.programs["ksym_kfunc"]
    assert [r.target for r in k.references] == ["bpf_rcu_read_lock", "bpf_rcu_read_unlock",
                                                 "bpf_cast_to_kern_ctx"]
    for r in k.references:
        assert r.kind is RefKind.KFUNC and _code(k)[r.index * 8] == CALL
        assert _src(_code(k), r.index) == PseudoCall.KFUNC and _imm(_code(k), r.index) == 0
    # The fixed BTF turns .ksyms into 4-byte allocated variables the kernel accepts.
    assert kfunc.btf is not None
    from bpfkit.btf import Datasec, Var

    ds = kfunc.btf.find(".ksyms", Datasec)
    assert [(v.offset, v.size) for v in ds.vars] == [(0, 4), (4, 8 - 4), (8, 4)]
    assert all(isinstance(kfunc.btf.type_by_id(v.type_id), Var) for v in ds.vars)


def test_extern_outside_kconfig_and_ksyms_is_refused(tmp_path: Path) -> None:
    src = '#include "bpfkit_helpers.h"\nextern int plain_extern;\n' \
          'SEC("socket") int p(void *ctx) { return plain_extern; }\n'
    path = compile_c(src, tmp_path, "plain_extern")
    with pytest.raises(ElfError, match=r"extern 'plain_extern' is not in the \.kconfig or \.ksyms DATASEC"):
        load_object(path)


# ------------------------------------------------------------------- relocation errors, by patching


def _elf(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def _rel_entry(data: bytes, section: str, n: int) -> int:
    """File offset of relocation entry `n` of `section`."""
    rel = _elf(data).get_section_by_name(section)
    return int(rel["sh_offset"]) + 16 * n


def _symbol_index(data: bytes, name: str) -> int:
    symtab = _elf(data).get_section_by_name(".symtab")
    assert isinstance(symtab, SymbolTableSection)
    return next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == name)


def _section_offset(data: bytes, name: str) -> int:
    return int(_elf(data).get_section_by_name(name)["sh_offset"])


def test_relocation_on_a_non_lddw_instruction() -> None:
    data = bytearray((OBJ_DIR / "maps_btf.o").read_bytes())
    data[_section_offset(data, "socket") + 11 * 8] = 0xB7  # the first `r1 = hash_map ll` becomes a mov
    with pytest.raises(RelocationError) as info:
        load_object(bytes(data), name="patched.o")
    assert info.value.symbol == "hash_map"
    assert str(info.value) == ("hash_map: patched.o: section 'socket', instruction 11 (in maps_btf): "
                               "relocation on opcode 0xb7, which is neither a call nor an lddw")


def test_relocation_against_a_section_without_maps_or_data() -> None:
    data = bytearray((OBJ_DIR / "maps_btf.o").read_bytes())
    at = _rel_entry(data, ".relsocket", 0)
    struct.pack_into("<Q", data, at + 8, _symbol_index(data, "_license") << 32 | 1)
    with pytest.raises(RelocationError, match=r"section 'socket', instruction 11 .*against section "
                                              r"'license', "
                                              r"which holds no maps"):
        load_object(bytes(data), name="patched.o")


def test_relocation_inside_an_instruction() -> None:
    data = bytearray((OBJ_DIR / "maps_btf.o").read_bytes())
    at = _rel_entry(data, ".relsocket", 0)
    struct.pack_into("<Q", data, at, 11 * 8 + 8)  # the second half of the lddw
    with pytest.raises(RelocationError, match="relocation at offset 96 is not at the start of an "
                                              "instruction"):
        load_object(bytes(data), name="patched.o")


def test_call_into_a_program_section_is_refused() -> None:
    data = bytearray((OBJ_DIR / "subprogs.v3.o").read_bytes())
    at = _rel_entry(data, ".relsocket", 3)  # call global_mix
    struct.pack_into("<Q", data, at + 8, _symbol_index(data, "subprogs") << 32 | 10)
    with pytest.raises(RelocationError, match=r"instruction 34 \(in subprogs\): calls and function addresses "
                                              r"must refer to .text"):
        load_object(bytes(data), name="patched.o")


def test_lddw_cut_in_half_at_section_end() -> None:
    data = bytearray((OBJ_DIR / "maps_btf.o").read_bytes())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    index = next(i for i, s in enumerate(_elf(bytes(data)).iter_sections()) if s.name == "socket")
    struct.pack_into("<Q", data, shoff + index * 64 + 0x20, 12 * 8)  # socket ends inside an lddw
    with pytest.raises(ElfError, match=r"section 'socket'.*instruction 11: lddw is missing its second slot"):
        load_object(bytes(data), name="patched.o")


@pytest.mark.parametrize(("source", "fixture"), [
    ("subprogs.c", "subprogs.v3.o"), ("maps_btf.c", "maps_btf.o"), ("kconfig.c", "kconfig.o")])
def test_big_endian_objects_link_to_the_same_program(tmp_path: Path, source: str, fixture: str) -> None:
    """clang -target bpfeb: the same source links to the same instructions, byte order aside."""
    from bpfkit.isa import decode

    from .oracle import C_DIR

    big = load_object(compile_c((C_DIR / source).read_text(), tmp_path, "eb", target="bpfeb"))
    little = load_object(OBJ_DIR / fixture)
    assert big.byteorder == "big"
    assert list(big.programs) == list(little.programs)
    for name, p in little.programs.items():
        q = big.programs[name]
        assert decode(_code(q), byteorder="big", check=False) == decode(_code(p), check=False)
        assert (q.references, q.subprograms) == (p.references, p.subprograms)
        assert [(ln.index, ln.line, ln.column, ln.text) for ln in q.lines] == [
            (ln.index, ln.line, ln.column, ln.text) for ln in p.lines]
    assert big.maps.keys() == little.maps.keys()
    for name, m in little.maps.items():
        assert big.maps[name] == m
