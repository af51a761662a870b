"""Run the eBPF ISA conformance vectors in the kernel through BPF_PROG_TEST_RUN.

The vector's program becomes a bpf-to-bpf subprogram of a small XDP program (the "harness"), so the
vector keeps its own `exit`s, local calls and 512-byte stack unchanged:

    r2 = xdp_md->data; r3 = xdp_md->data_end; r6 = r2
    if r2 + 8 + len(mem) > r3: return XDP_ABORTED      # gives the verifier the packet's range
    r1 = r6 + 8 (0 without memory); r2 = len(mem); r3 = r4 = r5 = 0
    call vector                                        # the vector, appended after the harness
    *(u64 *)(r6 + 0) = r0                              # the whole 64-bit r0 (test_run's retval is 32-bit)
    return XDP_PASS

The packet is `8 bytes for r0 | mem | padding to ETH_HLEN`, so r1 points to a copy of `-- mem` and r2
holds its length, as in the suite's own runner. Vectors that call helpers or refer to maps have nothing
to call in the kernel: they are "n/a". This module is test support, shared by the kernel test, the
pure VM test (which only reads the recorded verdicts) and `tools/conformance_kernel.py`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bpfkit.errors import BpfkitError, KernelError, VerifierError
from bpfkit.isa import Builder, Instruction, encode
from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.uapi.enums import ProgType, XdpAction
from bpfkit.uapi.insn import InsnClass, JmpOp, PseudoCall, Reg

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpora" / "bpf-conformance" / "tests"
VERDICTS = ROOT / "tests" / "data" / "conformance_kernel_verdicts.json"
ETH_HLEN = 14
"""BPF_PROG_TEST_RUN refuses XDP packets shorter than an Ethernet header (net/bpf/test_run.c)."""

PASS, MISMATCH, REJECTED, NOT_APPLICABLE = "pass", "mismatch", "rejected", "n/a"


@dataclass(frozen=True, slots=True)
class KernelVerdict:
    """What the kernel made of one vector: `verdict` is pass / mismatch / rejected / n/a; `r0` the
    64-bit r0 when it ran; `reason` the verifier's reason (rejected) or why it cannot run (n/a)."""

    name: str
    verdict: str
    r0: int | None = None
    reason: str = ""
    mem_out: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict}
        if self.r0 is not None:
            out["r0"] = f"{self.r0:#x}"
        if self.reason:
            out["reason"] = self.reason
        if self.mem_out:
            out["mem_out"] = self.mem_out.hex()
        return out


def harness(mem_len: int, vector_code: bytes) -> bytes:
    """The XDP harness of the module docstring with `vector_code` appended as its subprogram."""
    b = Builder()
    b.ldx(4, Reg.R2, Reg.R1, 0).ldx(4, Reg.R3, Reg.R1, 4).mov(Reg.R6, Reg.R2)
    b.mov(Reg.R4, Reg.R2).add(Reg.R4, 8 + mem_len).jmp("jgt", Reg.R4, Reg.R3, "short")
    if mem_len:
        b.mov(Reg.R1, Reg.R6).add(Reg.R1, 8)
    else:
        b.mov(Reg.R1, 0)
    b.mov(Reg.R2, mem_len).mov(Reg.R3, 0).mov(Reg.R4, 0).mov(Reg.R5, 0)
    b.call_local("vector")
    b.stx(8, Reg.R6, 0, Reg.R0).mov(Reg.R0, int(XdpAction.PASS)).exit()
    b.label("short").mov(Reg.R0, int(XdpAction.ABORTED)).exit()
    b.label("vector")
    return encode(b.build()) + vector_code


def packet_for(mem: bytes) -> bytes:
    """The test-run packet: room for r0, then the vector's memory, padded to ETH_HLEN."""
    pkt = bytes(8) + mem
    return pkt + bytes(max(0, ETH_HLEN - len(pkt)))


def vector_code(vector: Vector) -> tuple[bytes, list[Instruction] | None]:
    """The vector's bytecode and its decoded instructions (None when bpfkit cannot decode it: the
    kernel still gets the raw bytes, to say what it thinks of them)."""
    try:
        insns = vector.instructions()
    except BpfkitError:
        raw = vector.raw_bytes
        if raw is None:
            raise
        return raw, None
    return encode(insns), insns


def not_applicable(insns: list[Instruction]) -> str | None:
    """Why the kernel cannot run these instructions as the suite means them, or None."""
    for i, insn in enumerate(insns):
        if insn.opcode == InsnClass.JMP | JmpOp.CALL and insn.src == PseudoCall.HELPER:
            return f"calls helper {insn.imm} of the suite's runner (instruction {i}); no kernel equivalent"
        if insn.opcode == InsnClass.JMP | JmpOp.CALL and insn.src == PseudoCall.KFUNC:
            return f"calls kfunc {insn.imm} (instruction {i})"
        if insn.width == 2 and insn.src:
            return f"LD_IMM64 with pseudo source {insn.src} refers to a map (instruction {i})"
    return None


def verifier_reason(err: KernelError) -> str:
    """One line: the verifier's reason (the last log line above its statistics), else the error."""
    if isinstance(err, VerifierError):
        stats = ("processed ", "verification time", "stack depth", "max_states_per_insn")
        lines = [ln.strip() for ln in err.log.splitlines() if ln.strip() and not ln.startswith(stats)]
        if lines:
            return lines[-1]
    return f"errno {err.errno}: {err}".replace("\n", " ")


def run_in_kernel(vector: Vector) -> KernelVerdict:
    """Load and run one vector in the kernel (needs root); see the module docstring."""
    from bpfkit.kernel.programs import Program

    try:
        code, insns = vector_code(vector)
    except BpfkitError as e:
        return KernelVerdict(vector.name, NOT_APPLICABLE, reason=f"bpfkit cannot read it: {e}")
    if insns is not None:
        why = not_applicable(insns)
        if why:
            return KernelVerdict(vector.name, NOT_APPLICABLE, reason=why)
    try:
        prog = Program.load(harness(len(vector.mem), code), ProgType.XDP, name="conformance")
    except KernelError as e:
        return KernelVerdict(vector.name, REJECTED, reason=verifier_reason(e))
    with prog:
        result = prog.test_run(packet_for(vector.mem))
    if result.retval != XdpAction.PASS:
        raise AssertionError(f"{vector.name}: the harness returned {result.retval}, not XDP_PASS")
    r0 = int.from_bytes(result.data_out[:8], "little")
    mem_out = result.data_out[8:8 + len(vector.mem)]
    verdict = PASS if vector.error is None and r0 == vector.result else MISMATCH
    return KernelVerdict(vector.name, verdict, r0, mem_out=mem_out)


def all_vectors() -> list[Vector]:
    return load_vectors(CORPUS) if CORPUS.is_dir() else []


def read_verdicts(path: Path = VERDICTS) -> dict[str, dict[str, Any]]:
    """The committed verdicts: vector name -> {"verdict", "r0" (hex), "reason"}."""
    data: dict[str, Any] = json.loads(path.read_text())
    vectors: dict[str, dict[str, Any]] = data["vectors"]
    return vectors


def recorded_kernel(path: Path = VERDICTS) -> str:
    """The kernel release the committed verdicts were recorded on."""
    return str(json.loads(path.read_text())["kernel"])


def write_verdicts(verdicts: list[KernelVerdict], kernel: str, path: Path = VERDICTS) -> None:
    doc = {"comment": "Kernel verdicts on the bpf-conformance vectors, written by "
                      "tools/conformance_kernel.py "
                      "--write; checked by tests/kernel/test_conformance_kernel.py",
           "kernel": kernel,
           "vectors": {v.name: v.to_json() for v in sorted(verdicts, key=lambda v: v.name)}}
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import a support module or script by file (tests run with --import-mode=importlib)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
