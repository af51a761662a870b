"""The JIT drops bounds checks only where bpfkit's verifier proved them unnecessary.

A program loaded with `verify=True` and run with the JIT compiles the accesses listed in
`VerifierResult.proven_safe` without a check. Fixtures show the check count going down with results
unchanged; the soundness property runs random verifier-accepted programs (the generators of
`tests/unit/verifier/test_soundness.py`) unchecked in a child process (`python test_proven_safe.py
sound`), so a crash of native code fails the test instead of killing pytest.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError, VmError
from bpfkit.isa import assemble
from bpfkit.isa.instruction import Instruction
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType, ProgType
from bpfkit.vm import Vm
from bpfkit.vm.jit import CompiledCode, jit_supported, program_for, runtime_for
from bpfkit.vm.machine import VmProgram

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")

# STACK, PACKET and IPV4 are shared with the translated engine's tests/unit/vm/test_translate.py.
_PROGRAMS = runpy.run_path(str(Path(__file__).resolve().parents[2] / "data" / "vm_programs.py"))
STACK: str = _PROGRAMS["STACK"]
PACKET: str = _PROGRAMS["PACKET"]
IPV4: bytes = _PROGRAMS["IPV4"]
MAP_VALUE = """
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map[id:0]
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    *(u64 *)(r10 - 16) = r0
    r3 = *(u64 *)(r10 - 16)
    r1 = *(u64 *)(r3 + 0)
    r1 += 5
    *(u64 *)(r0 + 0) = r1
    *(u32 *)(r0 + 12) = 9
    r0 = *(u32 *)(r0 + 12)
    exit
out:
    r0 = 1
    exit
"""
RAW = """
    r3 = *(u64 *)(r1 + 0)
    r4 = *(u8 *)(r1 + 15)
    *(u32 *)(r1 + 8) = r4
    r0 = r3
    r0 ^= r4
    exit
"""


def _load(vm: Vm, text: str, prog_type: ProgType | None, verify: bool, **kw: Any) -> VmProgram:
    insns = assemble(text)
    if "maps" in kw:  # point map[id:0] at the VM map
        fd = kw["maps"][0].fd
        insns = [i if i.opcode != 0x18 or i.src != 1 else Instruction(i.opcode, i.dst, i.src, i.off, fd)
                 for i in insns]
        kw["maps"] = {fd: kw["maps"][0]}
    return vm.load(insns, prog_type=prog_type, verify=verify, **kw)


def _compiled(vm: Vm, prog: VmProgram) -> CompiledCode:
    return program_for(prog.loaded, runtime_for(vm.mem)).compiled


CASES = [("stack", STACK, None, b"", 0), ("map value", MAP_VALUE, ProgType.XDP, bytes(64), 0),
         ("packet", PACKET, ProgType.XDP, IPV4, 0), ("raw memory", RAW, None, bytes(range(32)), 16)]


@pytest.mark.parametrize(("name", "text", "prog_type", "data", "mem_size"), CASES, ids=[c[0] for c in CASES])
def test_verified_programs_run_with_fewer_checks_and_the_same_results(
        name: str, text: str, prog_type: ProgType | None, data: bytes, mem_size: int) -> None:
    results = []
    counts = []
    for verify, engine in ((False, "interp"), (False, "jit"), (True, "jit"), (True, "fast")):
        vm = Vm()
        kw: dict[str, Any] = {"mem_size": mem_size}
        if name == "map value":
            m = vm.create_map(MapSpec(MapType.ARRAY, 4, 16, 1, name="m"))
            m.update(bytes(4), (40).to_bytes(8, "little") + bytes(8))
            kw["maps"] = [m]
        prog = _load(vm, text, prog_type, verify, **kw)
        r = prog.test_run(data, engine=engine)  # type: ignore[arg-type]
        extra = m.lookup(bytes(4)) if name == "map value" else b""
        results.append((r.retval, r.data_out, r.instructions, extra))
        if engine == "jit":
            code = _compiled(vm, prog)
            counts.append((code.checked, code.unchecked))
            if verify:
                assert prog.verification is not None
                assert prog.verification.proven_safe
    assert results[1:] == [results[0]] * 3
    (plain_checked, plain_unchecked), (safe_checked, safe_unchecked) = counts
    assert safe_checked < plain_checked
    assert safe_checked + safe_unchecked == plain_checked + plain_unchecked


def test_context_and_unreached_accesses_stay_checked() -> None:
    vm = Vm()
    prog = _load(vm, PACKET, ProgType.XDP, True)
    assert prog.verification is not None
    # Slots 0 and 1 read the XDP context (answered by hooks in the JIT): never proven safe.
    assert {0, 1}.isdisjoint(prog.verification.proven_safe)
    assert {6, 8, 9, 10} <= prog.verification.proven_safe


def test_unverified_programs_keep_every_check() -> None:
    vm = Vm()
    prog = _load(vm, PACKET, ProgType.XDP, False)
    prog.test_run(IPV4, engine="jit")
    assert _compiled(vm, prog).unchecked == 0


def test_a_run_with_less_data_than_verified_is_refused() -> None:
    vm = Vm()
    prog = _load(vm, RAW, None, True, mem_size=16)
    for engine in ("jit", "interp"):
        with pytest.raises(VmError, match="verified for 16 bytes of data; this run passes 15"):
            prog.test_run(bytes(15), engine=engine)  # type: ignore[arg-type]
    assert prog.test_run(bytes(16), engine="jit").retval == 0


TAIL = """
    r2 = map[id:0]
    r3 = 0
    call bpf_tail_call
    r0 = 99
    exit
"""


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_a_tail_call_into_a_verified_program_from_another_context_is_refused(engine: str) -> None:
    vm = Vm()
    array = vm.create_map(MapSpec(MapType.PROG_ARRAY, 4, 4, 1, name="jmp"))
    target = _load(vm, RAW, None, True, mem_size=16)
    target.set_tail_call(array, 0)
    raw_caller = _load(vm, TAIL, None, False, maps=[array])
    xdp_caller = _load(vm, TAIL, ProgType.XDP, False, maps=[array])
    ok = raw_caller.test_run(bytes(range(16)), engine=engine)  # type: ignore[arg-type]
    assert ok.retval == target.test_run(bytes(range(16)), engine=engine).retval  # type: ignore[arg-type]
    with pytest.raises(VmError, match="verified for 16 bytes of data; this run has 8"):
        raw_caller.test_run(bytes(8), engine=engine)  # type: ignore[arg-type]
    with pytest.raises(VmError, match="verified as raw memory and cannot run on this run's XdpContext"):
        xdp_caller.test_run(bytes(64), engine=engine)  # type: ignore[arg-type]


# -- soundness: random accepted programs, unchecked, in a child process -----------------------------
def _soundness() -> ModuleType:
    path = Path(__file__).parents[1] / "verifier" / "test_soundness.py"
    spec = importlib.util.spec_from_file_location("_bpfkit_verifier_soundness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outcome(prog: VmProgram, data: bytes, engine: str, m: Any) -> tuple[object, ...]:
    if m is not None:
        m.update(bytes(8), bytes(range(24)))
    try:
        r = prog.test_run(data, engine=engine)  # type: ignore[arg-type]
    except BpfkitError as err:
        return ("error", type(err).__name__, getattr(err, "pc", None))
    return ("ok", r.retval, r.data_out, r.instructions, m.lookup(bytes(8)) if m is not None else None)


def _compare(lines: list[str], kind: str, check: int) -> None:
    sound = _soundness_module
    mem = sound.MEM
    init = ["r0 = 0", "r3 = 0", "r4 = 1", "r5 = 2", "r6 = 3", "r7 = 4"]
    spec = MapSpec(MapType.HASH, 8, mem, 4, name="m")
    if kind == "raw":
        text, prog_type, kw, data = "\n".join([*init, *lines, "exit"]), None, {"mem_size": mem}, \
            bytes(range(mem))
    elif kind == "packet":
        text = "\n".join(["r2 = *(u32 *)(r1 + 0)", "r3 = *(u32 *)(r1 + 4)", "r9 = r2", f"r9 += {check}",
                          "r0 = 2", "if r9 > r3 goto out", *init[1:], *lines, "out:", "r0 = 2", "exit"])
        prog_type, kw, data = ProgType.XDP, {}, bytes(range(14 + check % 40))
    else:
        text = "\n".join(["r1 = 0", "*(u64 *)(r10 - 8) = r1", "r2 = r10", "r2 += -8", "r1 = map[id:0]",
                          "call bpf_map_lookup_elem", "r2 = r0", "if r2 == 0 goto out", *init, *lines,
                          "out:", "r0 = 0", "exit"])
        prog_type, kw, data = ProgType.XDP, {"maps": {0: spec}}, bytes(64)
    if sound._accepted(text, prog_type=prog_type, **kw) is None:
        return
    variants = [data, bytes(len(data)), bytes([0xFF]) * len(data), bytes(range(len(data)))[::-1]]
    outcomes = []
    for verify, engine in ((False, "interp"), (True, "jit")):
        vm = Vm(seed=3, clock=lambda: 1, budget=10_000)
        m = None
        load: dict[str, Any] = dict(kw)
        if kind == "map":
            m = vm.create_map(spec)
            load["maps"] = [m]
        prog = _load(vm, text, prog_type, verify, **load)
        outcomes.append([_outcome(prog, v, engine, m) for v in variants])
    assert outcomes[0] == outcomes[1], f"interp {outcomes[0]}\njit    {outcomes[1]}\n{text}"


EXAMPLES = int(os.environ.get("BPFKIT_JIT_EXAMPLES", "300"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.sampled_from(["raw", "packet", "map"]), st.integers(0, 40))
def _sound(data: st.DataObject, kind: str, check: int) -> None:
    base = "r1" if kind == "raw" else "r2"
    _compare(data.draw(_soundness_module.body(base)), kind, check)


def test_accepted_programs_run_unchecked_like_the_interpreter_in_a_subprocess() -> None:
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, str(Path(__file__)), "sound"], capture_output=True, text=True,
                          env=env, timeout=900, check=False)
    assert proc.returncode == 0, (f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                  f"\n--- stderr\n{proc.stderr[-8000:]}")
    assert "sound: ok" in proc.stdout


_soundness_module = _soundness()

if __name__ == "__main__" and sys.argv[1:] == ["sound"]:
    _sound()
    print("sound: ok")
