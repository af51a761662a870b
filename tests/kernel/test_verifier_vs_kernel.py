"""bpfkit's verifier against the kernel's: every case of tests/data/verifier/cases/ is loaded in the
running kernel (privileged, GPL unless the case says otherwise).

The one forbidden disagreement is bpfkit accepting what the kernel refuses. bpfkit refusing what the
kernel accepts must be listed, with the reason, in tests/data/verifier/disagreements.py; a listed
case the two now agree on fails too (the list must stay true).

Load-format details that are not safety checks are supplied to the kernel: programs with functions get
minimal BTF func_info (the kernel wants it for callbacks), and raw-memory cases (prog_type None) run as
a function called from an XDP harness that passes a checked packet pointer to `mem_size` bytes in r1
and the size in r2, as the ISA conformance runner does.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit.btf.marshal import marshal
from bpfkit.btf.types import Func, FuncProto, Int, Param
from bpfkit.errors import KernelError, VerificationError, VerifierError
from bpfkit.isa import Instruction, decode, encode
from bpfkit.isa.opcodes import OPCODES, Kind
from bpfkit.kernel.btf import BtfHandle
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import ProgType
from bpfkit.uapi.insn import PseudoCall, PseudoSrc

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> ModuleType:
    """Import a test-data module (a .py file, or a package directory) by path, as `name`."""
    if name not in sys.modules:
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                          submodule_search_locations=[str(path)])
        else:
            spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cases = _load("verifier_cases", ROOT / "data" / "verifier" / "cases")
disagreements = _load("verifier_disagreements", ROOT / "data" / "verifier" / "disagreements.py")
runner = _load("conformance_runner", ROOT / "kernel" / "conformance_runner.py")
objects = _load("verifier_objects", ROOT / "data" / "verifier" / "objects.py")


def _subprogs(insns: list[Instruction]) -> list[int]:
    entries = {0}
    slot = 0
    for insn in insns:
        kind = OPCODES[insn.opcode].kind
        if kind is Kind.CALL and insn.src == PseudoCall.CALL:
            entries.add(slot + 1 + insn.imm)
        elif kind is Kind.LD_IMM64 and insn.src == PseudoSrc.FUNC:
            lo = insn.imm & 0xFFFFFFFF
            entries.add(slot + 1 + (lo - (1 << 32) if lo >> 31 else lo))
        slot += insn.width
    return sorted(entries)


def _func_info(entries: list[int]) -> tuple[bytes, bytes]:
    """A BTF blob with one `int f(int, int)` per function, and the func_info records (insn, type)."""
    types = [Int("int", 4, IntEncoding.SIGNED), FuncProto(1, (Param("a", 1), Param("b", 1)))]
    types += [Func(f"f{i}", 2) for i in range(len(entries))]
    return marshal(types), b"".join(struct.pack("<II", off, 3 + i) for i, off in enumerate(entries))


NEVER_LOAD_LSM = ("LSM programs are never loaded (project rule: never load an LSM program; this kernel "
                  "refuses them with EPERM)")


def kernel_verdict(case: object) -> tuple[bool | None, str]:
    """(accepted, the kernel's reason) for one case; accepted is None when this kernel refuses the
    program type itself (EPERM although root: fentry/fexit/tp_btf here), and for LSM cases, which are
    never loaded (project rule; this kernel refuses LSM programs with EPERM too)."""
    if case.prog_type == ProgType.LSM:  # type: ignore[attr-defined]
        return None, NEVER_LOAD_LSM
    maps = [Map.create(spec) for spec in case.maps]  # type: ignore[attr-defined]
    try:
        insns = cases.with_fds(cases.program(case), [m.fileno() for m in maps])
        prog_type = case.prog_type  # type: ignore[attr-defined]
        if prog_type is None:
            insns = decode(runner.harness(case.mem_size, encode(insns)))  # type: ignore[attr-defined]
            prog_type = ProgType.XDP
        entries = _subprogs(insns)
        btf = None
        extra: dict[str, object] = {}
        if case.attach_to:  # type: ignore[attr-defined]
            target = cases.target_btf()
            assert target is not None
            extra["attach_btf_id"] = cases.attach_btf_id(case, target)
        if len(entries) > 1:
            blob, records = _func_info(entries)
            btf = BtfHandle.load(blob)
            extra.update(btf=btf, func_info_rec_size=8, func_info=records)
        try:
            prog = Program.load(insns, prog_type, license=case.license,  # type: ignore[attr-defined]
                                expected_attach_type=case.attach, log_level=1, **extra)  # type: ignore[attr-defined,arg-type]
            prog.close()
            return True, ""
        except VerifierError as err:
            lines = [ln for ln in err.log.strip().splitlines() if not ln.startswith(("processed ", "verif"))]
            return False, lines[-1] if lines else str(err)
        except KernelError as err:
            if err.errno == 1:
                return None, str(err)
            return False, str(err)
        finally:
            if btf is not None:
                btf.close()
    finally:
        for m in maps:
            m.close()


def bpfkit_verdict(case: object) -> tuple[bool, str]:
    try:
        cases.verify_case(case)
    except VerificationError as err:
        return False, err.report.message
    return True, ""


@pytest.mark.kernel
@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_case_in_kernel(case: object) -> None:
    ours, why = bpfkit_verdict(case)
    kernel, kwhy = kernel_verdict(case)
    name = case.name  # type: ignore[attr-defined]
    if kernel is None:
        pytest.skip(f"{name}: the kernel refuses this program type here: {kwhy}")
    listed = disagreements.DISAGREEMENTS.get(name)
    if ours and not kernel:
        pytest.fail(f"bpfkit accepts {name!r} but the kernel refuses it: {kwhy}")
    if not ours and kernel:
        assert listed, f"bpfkit refuses {name!r} ({why}) but the kernel accepts it: list it in " \
                       f"disagreements.py with the reason, or fix bpfkit"
    else:
        assert listed is None, f"{name!r} is listed as a disagreement but bpfkit and the kernel agree"


@pytest.mark.kernel
def test_agreement_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the agreement figures (run with -s to see them); fails on a forbidden disagreement."""
    agree = stricter = untested = 0
    for case in cases.CASES:
        ours, _ = bpfkit_verdict(case)
        kernel, kwhy = kernel_verdict(case)
        if kernel is None:
            untested += 1
            continue
        assert not (ours and not kernel), f"{case.name}: bpfkit accepts, kernel refuses: {kwhy}"
        if ours == kernel:
            agree += 1
        else:
            stricter += 1
    with capsys.disabled():
        print(f"\nverifier cases: {len(cases.CASES)}, agree with the kernel: {agree}, "
              f"bpfkit stricter (listed): {stricter}, program type refused by this kernel: {untested}")
    assert stricter == len(disagreements.DISAGREEMENTS)


OBJ = ROOT / "data" / "obj"
OBJECTS = sorted(OBJ.glob("*.o"))


def _object_verdicts(path: Path) -> tuple[dict[str, bool], str | None, str]:
    """(bpfkit's verdict per program, the program the kernel refused (None: it loaded them all),
    the kernel's error)."""
    from bpfkit.kernel.collection import Collection, ProgramLoadError
    from bpfkit.obj.load import load_object

    obj = load_object(path)
    if any(p.type == ProgType.LSM for p in obj.programs.values()):
        pytest.skip(f"{path.name}: {NEVER_LOAD_LSM}")
    ours = {}
    for name in obj.programs:
        try:
            objects.verify_object_program(path, name, objects.target_btf())
            ours[name] = True
        except VerificationError:
            ours[name] = False
    try:
        Collection.load(obj, allow_legacy_maps=True).close(unpin=True)  # maps_btf pins a map by name
    except ProgramLoadError as err:
        return ours, err.program or "", str(err)
    except KernelError as err:
        if err.errno == 1:  # EPERM: this kernel refuses the program type itself (tracing, LSM)
            pytest.skip(f"{path.name}: the kernel refuses this program type here: {err}")
        return ours, "", str(err)
    return ours, None, ""


@pytest.mark.kernel
@pytest.mark.parametrize("path", OBJECTS, ids=[p.name for p in OBJECTS])
def test_object_in_kernel(path: Path) -> None:
    """Objects compiled by clang: bpfkit refuses every program the kernel refuses, and refuses a
    program the kernel loads only where OBJECT_DISAGREEMENTS says why."""
    ours, refused, why = _object_verdicts(path)
    if refused is not None:
        assert refused in ours, f"{path.name}: the kernel refused {refused!r}: {why}"
        assert not ours[refused], f"{path.name}: bpfkit accepts {refused!r}, the kernel refuses: {why}"
        return
    for name, accepted in ours.items():
        key = f"{path.name}:{name}"
        listed = disagreements.OBJECT_DISAGREEMENTS.get(key)
        if accepted:
            assert listed is None, f"{key} is listed as a disagreement but both accept it"
        else:
            assert listed, f"bpfkit refuses {key}, which the kernel loads: fix it or list it"
