"""The target kernel BTF the VM gives its verifier (`bpfkit.vm.machine.TargetBtf`): programs whose
verification needs it (fentry/fexit contexts: tests/data/obj/fentry.o) load verified and run with the
caller's BTF (hand-built here, so these run on every machine) or the running kernel's; without any, the
verifier's refusal names what is missing and how to give it; and the kernel's BTF is read only for
programs that need it.

The oracle for fentry.o's results is the kernel's BPF_PROG_TEST_RUN of it, as fentry.c records it
(this machine's kernel refuses tracing programs): the test run calls bpf_fentry_test1(1), which
returns 2, after which entry_arg == 1 and exit_ret == 2; the context is the arguments as u64, then
(fexit) the return value, which the programs read as `int`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bpfkit.btf import Func, FuncLinkage, FuncProto, Int, IntEncoding, Param, Spec, load_btf, marshal
from bpfkit.errors import BtfError, VerificationError
from bpfkit.isa import Instruction, assemble, encode
from bpfkit.isa.builder import Relocation
from bpfkit.obj import ObjectSpec, load_object
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import PseudoCall, PseudoSrc
from bpfkit.vm import Vm, VmProgram
from bpfkit.vm import objects as vm_objects
from bpfkit.vm.machine import TargetBtf, needs_target_btf
from bpfkit.vm.objects import VmCollection
from bpfkit.vm.verifier import Report

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
ENGINES = ("fast", "interp")
NEEDS_BTF = r"a TRACING program's context needs the kernel's BTF"


def fentry_target(func: str = "bpf_fentry_test1") -> Spec:
    """A target BTF with just `int func(int a)`: what fentry.o's attach target needs."""
    types = (Int("int", 4, IntEncoding.SIGNED), FuncProto(1, (Param("a", 1),)),
             Func(func, 2, FuncLinkage.GLOBAL))
    return load_btf(marshal(types))  # type: ignore[arg-type]


def _args(*values: int) -> bytes:
    return b"".join((v & (1 << 64) - 1).to_bytes(8, "little") for v in values)


def _bss(coll: VmCollection) -> tuple[int, int]:
    """(entry_arg, exit_ret) from fentry.o's .bss."""
    value = bytes(coll.maps[".bss"].lookup(bytes(4)))
    return int.from_bytes(value[:8], "little"), int.from_bytes(value[8:16], "little")


def _load_alone(spec: ObjectSpec, name: str, **options: Any) -> VmProgram:
    """`Vm.load` of one program of `spec` with its maps (made from their specs) by relocation."""
    vm = Vm()
    pspec = spec.programs[name]
    maps = {r.target: vm.create_map(spec.maps[r.target]) for r in pspec.references}
    relocations = [Relocation(r.index, r.target) for r in pspec.references]
    return vm.load(pspec, maps=maps, relocations=relocations, **options)


def _check_fentry_runs(coll: VmCollection, engine: str) -> None:
    entry, exit_ = coll.programs["on_entry"], coll.programs["on_exit"]
    for prog in (entry, exit_):
        assert prog.verified and prog.verification is not None
        assert prog.verification.processed_insns > 0
    assert entry.test_run(ctx=_args(1), engine=engine).retval == 0  # type: ignore[arg-type]
    assert exit_.test_run(ctx=_args(1, 2), engine=engine).retval == 0  # type: ignore[arg-type]
    assert _bss(coll) == (1, 2)
    exit_.test_run(ctx=_args(1, 0xFFFFFFFF), engine=engine)  # type: ignore[arg-type]
    assert _bss(coll) == (1, (1 << 64) - 1)  # (int)ctx[1]: -1, sign-extended into the u64


@pytest.mark.parametrize("engine", ENGINES)
def test_fentry_verified_against_a_given_btf(engine: str) -> None:
    coll = Vm(engine=engine).load_object(load_object(OBJ / "fentry.o"),  # type: ignore[arg-type]
                                         target_btf=fentry_target())
    _check_fentry_runs(coll, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_fentry_verified_against_the_running_kernels_btf(engine: str) -> None:
    if not os.access(vm_objects.VMLINUX_BTF, os.R_OK):
        pytest.skip(f"no {vm_objects.VMLINUX_BTF}")
    coll = Vm(engine=engine).load_object(load_object(OBJ / "fentry.o"))  # type: ignore[arg-type]
    _check_fentry_runs(coll, engine)


def test_btf_as_a_path_and_through_vm_load(tmp_path: Path) -> None:
    path = tmp_path / "target.btf"
    path.write_bytes(marshal((Int("int", 4, IntEncoding.SIGNED), FuncProto(1, (Param("a", 1),)),
                              Func("bpf_fentry_test1", 2, FuncLinkage.GLOBAL))))  # type: ignore[arg-type]
    spec = load_object(OBJ / "fentry.o")
    _check_fentry_runs(Vm().load_object(spec, target_btf=path), "fast")
    _check_fentry_runs(Vm().load_object(spec, target_btf=str(path)), "fast")
    prog = _load_alone(spec, "on_exit", btf=path)
    assert prog.verified and prog.verification is not None and prog.prog_type == ProgType.TRACING
    assert prog.test_run(ctx=_args(1, 2)).retval == 0
    with pytest.raises(BtfError, match=r"missing\.btf"):
        Vm().load_object(spec, target_btf=tmp_path / "missing.btf")


def test_no_btf_available_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BTF given and no readable vmlinux: the verifier's refusal names what is missing (the
    program's context needs the kernel's BTF), why there is none and how to give one."""
    monkeypatch.setattr(vm_objects, "VMLINUX_BTF", str(tmp_path / "no-vmlinux"))
    spec = load_object(OBJ / "fentry.o")
    with pytest.raises(VerificationError) as info:
        Vm().load_object(spec)
    text = str(info.value)
    assert "program 'on_entry' (section 'fentry/bpf_fentry_test1')" in text
    assert NEEDS_BTF in text
    assert f"the running kernel's ({tmp_path / 'no-vmlinux'}) is not readable" in text
    assert "target_btf= to Vm.load_object" in text and "--btf PATH" in text
    assert Vm().load_object(spec, target_btf=fentry_target()).programs  # a given one still works


def test_explicitly_no_btf_is_a_clear_refusal() -> None:
    """`False` says "no target BTF" whatever the machine has: refused, naming that choice."""
    spec = load_object(OBJ / "fentry.o")
    for load in (lambda: Vm().load_object(spec, target_btf=False),
                 lambda: _load_alone(spec, "on_entry", btf=False)):
        with pytest.raises(VerificationError, match=NEEDS_BTF) as info:
            load()
        assert "no target BTF was given (btf=False)" in str(info.value)
        assert "btf= to Vm.load" in str(info.value)


def test_attach_target_missing_from_the_given_btf() -> None:
    with pytest.raises(VerificationError, match=r"program 'on_entry'.*attach target 'bpf_fentry_test1' "
                       r"is not a function in the kernel's BTF"):
        Vm().load_object(load_object(OBJ / "fentry.o"), target_btf=fentry_target("other_function"))


def test_unverified_opt_out_needs_no_btf() -> None:
    coll = Vm().load_object(load_object(OBJ / "fentry.o"), target_btf=False, verify=False)
    assert not coll.programs["on_entry"].verified
    assert coll.programs["on_entry"].test_run(ctx=_args(7)).retval == 0 and _bss(coll)[0] == 7


class _Counter:
    """Stands in for `default_target_btf` (the one reader of the kernel's BTF), counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: str | None = None) -> Spec | None:
        self.calls += 1
        return fentry_target()


def test_kernel_btf_read_only_for_programs_needing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Counter()
    monkeypatch.setattr(vm_objects, "default_target_btf", counter)
    for name in ("xdp.o", "tc.o", "global_data.o", "socket_filter.o", "tail_call.o"):
        assert Vm().load_object(load_object(OBJ / name)).programs
    vm = Vm()
    vm.load(assemble("r0 = 2\nexit"), prog_type=ProgType.XDP)
    vm.load(assemble("r0 = *(u8 *)(r1 + 0)\nexit"), mem_size=4)
    assert counter.calls == 0
    coll = Vm().load_object(load_object(OBJ / "fentry.o"))  # two programs, one target
    assert counter.calls == 1
    _check_fentry_runs(coll, "fast")


def test_needs_target_btf() -> None:
    plain = assemble("r0 = 0\nexit")
    kfunc = [Instruction(0x85, src=PseudoCall.KFUNC, imm=1234), *plain]
    typed_ksym = [Instruction(0x18, dst=1, src=PseudoSrc.BTF_ID, imm=77), *plain]
    typeless = [Instruction(0x18, dst=1, imm=77), *plain]
    assert needs_target_btf(ProgType.TRACING, plain)
    for prog_type in (None, ProgType.XDP, ProgType.KPROBE, ProgType.RAW_TRACEPOINT):
        assert not needs_target_btf(prog_type, plain)
        assert not needs_target_btf(prog_type, bytes(encode(plain)))
        assert not needs_target_btf(prog_type, typeless)
        assert not needs_target_btf(prog_type, bytes(encode(typeless)))
        for insns in (kfunc, typed_ksym):
            assert needs_target_btf(prog_type, insns)
            assert needs_target_btf(prog_type, bytes(encode(insns)))


def test_target_btf_reads_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Counter()
    monkeypatch.setattr(vm_objects, "default_target_btf", counter)
    target = TargetBtf()
    assert counter.calls == 0
    assert target.get() is target.get() and counter.calls == 1
    given = fentry_target()
    assert TargetBtf(given).get() is given and TargetBtf(False).get() is None
    assert TargetBtf.of(target) is target
    assert counter.calls == 1


def test_needs_btf_refusal_is_marked_by_the_verifier() -> None:
    """The verifier marks its refusals for want of the target BTF (`Report.needs_btf`) where it
    raises them (BTF-typed context, kfunc call), and no other refusal."""
    from bpfkit.vm.verifier import verify

    kfunc = [Instruction(0x85, src=PseudoCall.KFUNC, imm=1234), *assemble("r0 = 0\nexit")]
    for insns, prog_type in ((assemble("r0 = 0\nexit"), ProgType.TRACING), (kfunc, ProgType.XDP)):
        with pytest.raises(VerificationError, match="needs the kernel's BTF") as info:
            verify(insns, prog_type=prog_type)
        assert info.value.report.needs_btf
    for text, prog_type in (("r0 = *(u8 *)(r1 + 0)\nexit", None), ("exit", ProgType.XDP)):
        with pytest.raises(VerificationError) as info:
            verify(assemble(text), prog_type=prog_type)
        assert not info.value.report.needs_btf


def _refusing(message: str, needs_btf: bool) -> Any:
    """A verification that refuses with `message`, marked `needs_btf` or not, recording its btf."""
    from bpfkit.vm.verifier import Report

    seen: list[Spec | None] = []

    def run(btf: Spec | None) -> Any:
        seen.append(btf)
        raise VerificationError(Report(-1, message, "the verifier's hint", needs_btf=needs_btf))

    run.seen = seen  # type: ignore[attr-defined]
    return run


def test_target_verify_hints_on_the_mark_not_the_text() -> None:
    """`TargetBtf.verify` (what `Vm.load` and `bpfkit vm verify` share) adds its hint to a refusal the
    verifier marked `needs_btf`, whatever its text, and leaves every other refusal as it was."""
    plain = assemble("r0 = 0\nexit")
    target = TargetBtf(False)
    marked = _refusing("some refusal", needs_btf=True)
    with pytest.raises(VerificationError) as info:
        target.verify(ProgType.TRACING, plain, marked)
    report = info.value.report
    assert report.message == "some refusal" and report.needs_btf
    assert report.hint.startswith("no target BTF was given (btf=False): pass one")
    assert marked.seen == [None]
    unmarked = _refusing("a TRACING program's context needs the kernel's BTF", needs_btf=False)
    with pytest.raises(VerificationError) as info:
        target.verify(ProgType.TRACING, plain, unmarked)
    assert info.value.report.hint == "the verifier's hint"


def test_target_verify_gives_the_btf_only_to_programs_needing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Counter()
    monkeypatch.setattr(vm_objects, "default_target_btf", counter)
    target = TargetBtf()
    got: list[Spec | None] = []
    plain = assemble("r0 = 0\nexit")
    for prog_type in (ProgType.XDP, None):
        target.verify(prog_type, plain, got.append)  # type: ignore[arg-type, func-returns-value]
    assert got == [None, None] and counter.calls == 0
    target.verify(ProgType.TRACING, plain, got.append)  # type: ignore[arg-type, func-returns-value]
    assert got[-1] is not None and counter.calls == 1
    # A refusal with the BTF given is the verifier's own: no hint about a missing one.
    given = _refusing("marked", needs_btf=True)
    with pytest.raises(VerificationError) as info:
        TargetBtf(fentry_target()).verify(ProgType.TRACING, plain, given)
    assert info.value.report.hint == "the verifier's hint" and given.seen[0] is not None


def test_a_need_the_cheap_test_missed_gets_the_btf_on_a_second_verification() -> None:
    """`needs_target_btf` says no (an XDP program), yet the verifier refuses for want of BTF: with a BTF
    available the program is verified again with it, instead of a hint that none can be read."""
    plain = assemble("r0 = 0\nexit")
    seen: list[Spec | None] = []

    def run(btf: Spec | None) -> Any:
        seen.append(btf)
        if btf is None:
            raise VerificationError(Report(-1, "needs BTF", "the verifier's hint", needs_btf=True))
        return "verified"

    spec = fentry_target()
    assert TargetBtf(spec).verify(ProgType.XDP, plain, run) == "verified"
    assert seen == [None, spec]
