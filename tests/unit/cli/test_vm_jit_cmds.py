"""The JIT through the CLI: `vm run --engine jit`, `vm conformance-plugin --jit` and `vm jit-dump`.

A spy on `bpfkit.vm.jit.run_native` proves the native code ran (the fast engine gives the same r0).
jit-dump is checked against the compiler itself: its pieces, put back together, are the code the JIT
made, each under the instruction it came from, and capstone's instructions cover each piece exactly.
"""

from __future__ import annotations

import builtins
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bpfkit.vm.jit as jit
from bpfkit.cli.main import main
from bpfkit.isa import assemble, encode
from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.isa.disasm import format_insn
from bpfkit.vm import Vm
from bpfkit.vm.jit import jit_supported

pytestmark = pytest.mark.skipif(jit_supported() is not None,
                                reason=f"the JIT needs x86-64 Linux: {jit_supported()}")

ROOT = Path(__file__).resolve().parents[3]
OBJ = ROOT / "tests" / "data" / "obj"
CORPUS = ROOT.parent / "shared" / "corpora" / "bpf-conformance" / "tests"
VECTORS: list[Vector] = load_vectors(CORPUS) if CORPUS.is_dir() else []
KERNEL_REJECTED = frozenset(
    name for name, v in json.loads((ROOT / "tests" / "data" / "conformance_kernel_verdicts.json")
                                   .read_text())["vectors"].items() if v["verdict"] == "rejected")
"""Vectors the kernel's verifier refuses (wide shifts, callx): run with the opt-out `--no-verify`."""
UDP4 = bytes.fromhex(json.loads((OBJ / "MANIFEST.json").read_text())["packets"]["udp4"])

PROGRAM = """r0 = 1
r1 = *(u8 *)(r1 + 0)
if r1 > 2 goto +1
r0 += r1
exit
"""
LINE = re.compile(r"^ *([0-9a-f]+):\t((?:[0-9a-f]{2} ?)+?) *\t(\S+)(?: (.*))?$")
RAW_LINE = re.compile(r"^ *([0-9a-f]+):\t((?:[0-9a-f]{2} ?)+)$")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def runner_hex(data: bytes) -> str:
    return "".join(f"{b:02x}  " for b in data)


@pytest.fixture
def native_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts runs of native code (the VM imports `run_native` from `bpfkit.vm.jit` at each run)."""
    calls: list[int] = []
    real = jit.run_native

    def spy(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(jit, "run_native", spy)
    yield calls


@pytest.fixture
def program_file(tmp_path: Path) -> Path:
    path = tmp_path / "p.s"
    path.write_text(PROGRAM)
    return path


def compiled_code(text: str) -> bytes:
    """The JIT's code for the listing, straight from the compiler (no CLI)."""
    vm = Vm()
    with vm.load(assemble(text)) as prog:
        return jit.Compiler(prog.loaded).compile().code


def no_capstone(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import: Callable[..., Any] = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "capstone" or name.startswith("capstone."):
            raise ImportError("No module named 'capstone'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# -- vm run --engine jit -------------------------------------------------------------------------

def test_run_listing_with_the_jit(program_file: Path, capsys: pytest.CaptureFixture[str],
                                  native_runs: list[int]) -> None:
    for mem, expected in (("01", 2), ("07", 1)):
        status, out, err = run_cli(capsys, "vm", "run", str(program_file), "--mem", mem, "--engine", "jit",
                                   "-j")
        assert (status, err) == (0, "")
        assert json.loads(out)["r0"] == expected
    assert len(native_runs) == 2
    status, out, _ = run_cli(capsys, "vm", "run", str(program_file), "--mem", "01", "-j")
    assert status == 0 and json.loads(out)["r0"] == 2
    assert len(native_runs) == 2  # the default (fast) engine never enters native code


def test_run_bytecode_with_the_jit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   native_runs: list[int]) -> None:
    code = encode(assemble(PROGRAM))
    (tmp_path / "p.bin").write_bytes(code)
    (tmp_path / "p.hex").write_text(runner_hex(code))
    for name in ("p.bin", "p.hex"):
        status, out, err = run_cli(capsys, "vm", "run", str(tmp_path / name), "--mem", "02",
                                   "--engine", "jit", "-j")
        assert (status, err) == (0, "")
        assert json.loads(out) == {"r0": 3, "data_out": "02", "instructions": 5}
    assert len(native_runs) == 2


def test_run_elf_object_with_the_jit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     native_runs: list[int]) -> None:
    """The fixture returns 0 when all of its checks pass (tests/data/obj/MANIFEST.json, kernel-checked)."""
    (tmp_path / "pkt").write_bytes(UDP4)
    status, out, err = run_cli(capsys, "vm", "run", str(OBJ / "alu64.v3.o"), "--data", str(tmp_path / "pkt"),
                               "--engine", "jit")
    assert (status, out, err) == (0, "r0 = 0x0 (0)\n", "")
    status, out, err = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section",
                               "cgroup_skb/egress", "--mem", UDP4[14:].hex(), "--engine", "jit", "-j")
    jit_r0 = json.loads(out)["r0"]
    assert (status, err) == (0, "")
    status, out, _ = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section",
                             "cgroup_skb/egress", "--mem", UDP4[14:].hex(), "--engine", "interp", "-j")
    assert status == 0 and json.loads(out)["r0"] == jit_r0
    assert len(native_runs) == 2


def _manifest_runs() -> list[tuple[str, str, str, str]]:
    """(object, section, option, hex) of every test run in the fixture manifest (its kernel results are
    compared with the default engine in test_vm_cmds.py)."""
    manifest = json.loads((OBJ / "MANIFEST.json").read_text())
    runs = []
    for obj in manifest["objects"]:
        for prog in obj["programs"]:
            for run in prog.get("test_run") or []:
                if "data_in" in run:
                    option, value = "--mem", manifest["packets"][run["data_in"]]
                else:
                    option, value = "--ctx", run["ctx_in_hex"]
                runs.append((obj["object"], prog["section"], option, value))
    return runs


MANIFEST_RUNS = _manifest_runs()


@pytest.mark.parametrize(("obj", "section", "option", "value"), MANIFEST_RUNS,
                         ids=[f"{o}-{s}-{i}" for i, (o, s, *_rest) in enumerate(MANIFEST_RUNS)])
def test_run_fixture_objects_jit_like_fast(capsys: pytest.CaptureFixture[str], native_runs: list[int],
                                           obj: str, section: str, option: str, value: str) -> None:
    """Every kernel-checked fixture run through `vm run --engine jit`: the same output as the fast
    engine (r0, data out, instruction count; or the same clear error)."""
    argv = ["vm", "run", str(OBJ / obj), "--section", section, option, value, "-j"]
    fast = run_cli(capsys, *argv)
    assert native_runs == []
    assert run_cli(capsys, *argv, "--engine", "jit") == fast
    if fast[0] == 0:
        assert native_runs == [1]


def test_run_jit_faults_name_the_instruction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = 0\nr0 = *(u64 *)(r1 + 8)\nexit\n")
    status, out, err = run_cli(capsys, "vm", "run", str(src), "--mem", "00", "--engine", "jit")
    assert status == 1 and out == "" and "insn 1" in err and "mem_size=1 off=8" in err  # verified
    status, out, err = run_cli(capsys, "vm", "run", str(src), "--mem", "00", "--engine", "jit", "--no-verify")
    assert status == 1 and out == "" and "pc 1" in err and "Traceback" not in err


# -- vm conformance-plugin --jit -----------------------------------------------------------------

def test_plugin_jit_flag_runs_native_code(native_runs: list[int]) -> None:
    import io

    from bpfkit.cli.vm_cmds import plugin_main

    code = encode(assemble("r0 = r2\nr0 <<= 32\nexit"))
    for options in (["--jit"], ["--engine", "jit"], ["--interpret --jit"]):
        out = io.StringIO()
        status = plugin_main([runner_hex(b"\0" * 3), *options], io.StringIO(runner_hex(code) + "\n"), out,
                             io.StringIO())
        assert (status, out.getvalue()) == (0, "300000000\n")
    assert len(native_runs) == 3
    out = io.StringIO()
    assert plugin_main(["", "--interpret"], io.StringIO(runner_hex(code) + "\n"), out, io.StringIO()) == 0
    assert len(native_runs) == 3


def vector_code(vector: Vector) -> bytes:
    if vector.asm is None and vector.raw_bytes is not None:
        return vector.raw_bytes
    return encode(vector.instructions())


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_plugin_jit_in_process_on_every_vector(vector: Vector) -> None:
    import io

    from bpfkit.cli.vm_cmds import plugin_main

    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(runner_hex(vector_code(vector)) + "\n")
    options = ["--jit", "--no-verify"] if vector.name in KERNEL_REJECTED else ["--jit"]
    status = plugin_main([runner_hex(vector.mem), *options], stdin, out, err)
    if vector.error is not None:
        assert status == 1 and out.getvalue().strip() and err.getvalue().startswith("bpfkit: error: ")
    else:
        assert (status, out.getvalue(), err.getvalue()) == (0, f"{vector.result:x}\n", "")


SAMPLE = VECTORS[3::17]  # ~18 vectors spread over the corpus


@pytest.mark.parametrize("vector", SAMPLE, ids=[v.name for v in SAMPLE])
def test_plugin_subprocess_with_the_jit(vector: Vector) -> None:
    """The runner's protocol with ubpf's `--jit` plugin flag: memory in argv[1], options in argv[2],
    program hex on stdin; r0 in hex, or the error on stdout with status 1."""
    code = vector_code(vector)
    argv = [sys.executable, "-m", "bpfkit", "vm", "conformance-plugin", runner_hex(vector.mem), "--jit"]
    proc = subprocess.run(argv, input=runner_hex(code) + "\n", capture_output=True, text=True, timeout=60,
                          check=False)
    if vector.error is not None:
        assert proc.returncode == 1 and proc.stdout.strip() and "Traceback" not in proc.stderr
    else:
        assert (proc.returncode, proc.stdout) == (0, f"{vector.result:x}\n"), proc.stderr


def test_corpus_sample_is_there() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    assert len(SAMPLE) >= 15


# -- vm jit-dump ---------------------------------------------------------------------------------

def comment_blocks(out: str) -> list[tuple[str, list[str]]]:
    """(comment, code lines under it) for every `; ...` comment line after the header."""
    blocks: list[tuple[str, list[str]]] = []
    for line in out.splitlines()[1:]:
        if line.startswith("; "):
            blocks.append((line[2:], []))
        else:
            assert blocks, line
            blocks[-1][1].append(line)
    return blocks


def test_jit_dump_disassembles_under_each_instruction(program_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("capstone", reason="capstone disassembles the listing (pip install capstone)")
    status, out, err = run_cli(capsys, "vm", "jit-dump", str(program_file))
    assert (status, err) == (0, "")
    assert "install capstone" not in out
    blocks = comment_blocks(out)
    insns = [c for c, _ in blocks if not c.startswith("<")]
    assert insns == [format_insn(i) for i in assemble(PROGRAM)]
    code = bytearray()
    mnemonics: list[str] = []
    for _, lines in blocks:
        for line in lines:
            m = LINE.match(line)
            assert m, line
            assert int(m.group(1), 16) == len(code)  # addresses follow each other, from 0
            code += bytes.fromhex(m.group(2))
            mnemonics.append(m.group(3))
    assert bytes(code) == compiled_code(PROGRAM)
    assert "ret" in mnemonics and ".byte" not in mnemonics
    assert all(re.fullmatch(r"[a-z][a-z0-9]*", m) for m in mnemonics), set(mnemonics)
    native = {c: [LINE.match(line).group(3, 4) for line in lines] for c, lines in blocks}  # type: ignore[union-attr]
    assert ("mov", "eax, 1") in native["r0 = 1"]  # r0 is rax
    assert ("add", "rax, rdi") in native["r0 += r1"]  # r1 is rdi
    assert any(m == "jmp" for m, _ in native["exit"])  # to the function's epilogue
    assert any(m.startswith("movzx") for m, _ in native["r1 = *(u8 *)(r1 + 0)"])


def test_jit_dump_without_capstone_prints_bytes(program_file: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    no_capstone(monkeypatch)
    status, out, err = run_cli(capsys, "vm", "jit-dump", str(program_file))
    assert (status, err) == (0, "")
    assert out.splitlines()[1] == "; (install capstone for disassembly)"
    blocks = comment_blocks(out)[1:]
    assert [c for c, _ in blocks if not c.startswith("<")] == [format_insn(i) for i in assemble(PROGRAM)]
    code = bytearray()
    for _, lines in blocks:
        for line in lines:
            m = RAW_LINE.match(line)
            assert m, line
            assert int(m.group(1), 16) == len(code)
            code += bytes.fromhex(m.group(2))
    assert bytes(code) == compiled_code(PROGRAM)


def test_jit_dump_raw_option(program_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(program_file), "--raw")
    assert status == 0 and "install capstone" not in out
    lines = [line for line in out.splitlines()[1:] if not line.startswith("; ")]
    assert lines and all(RAW_LINE.match(line) for line in lines)


def check_json_listing(doc: dict[str, Any], code: bytes | None = None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = doc["blocks"]
    offsets = [b["offset"] for b in blocks]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    for block, nxt in itertools.pairwise(blocks):
        assert block["offset"] + block["size"] == nxt["offset"]
    assert sum(b["size"] for b in blocks) == doc["size"]
    joined = b"".join(bytes.fromhex(b["bytes"]) for b in blocks)
    assert len(joined) == doc["size"]
    if code is not None:
        assert joined == code
    for block in blocks:
        assert (block["pc"] is None) == (block["insn"] is None) != (block["routine"] is None)
        if block["native"] is not None:
            assert "".join(n["bytes"] for n in block["native"]) == block["bytes"]
            assert all(n["mnemonic"] != ".byte" for n in block["native"])
    return blocks


def test_jit_dump_json(program_file: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(program_file), "-j")
    assert status == 0
    doc = json.loads(out)
    blocks = check_json_listing(doc, compiled_code(PROGRAM))
    assert [(b["pc"], b["insn"]) for b in blocks if b["pc"] is not None] == [
        (pc, format_insn(i)) for pc, i in enumerate(assemble(PROGRAM))]
    assert doc["entry"] == 0 and doc["functions"] == {"0": blocks[[b["routine"] for b in blocks].index(
        "function 0: prologue")]["offset"]}
    assert doc["checked"] == 1  # the load through r1; nothing else touches memory
    no_capstone(monkeypatch)
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(program_file), "-j")
    doc = json.loads(out)
    assert doc["disassembler"] is None and all(b["native"] is None for b in doc["blocks"])
    check_json_listing(doc, compiled_code(PROGRAM))


def test_jit_dump_elf_object_and_dialects(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run_cli(capsys, "vm", "jit-dump", str(OBJ / "cgroup_skb.o"), "--section",
                               "cgroup_skb/egress", "-j")
    assert (status, err) == (0, "")
    doc = json.loads(out)
    blocks = check_json_listing(doc)
    pcs = [b["pc"] for b in blocks if b["pc"] is not None]
    assert pcs and pcs == sorted(pcs) and len(set(pcs)) == len(pcs)
    src = tmp_path / "u.s"
    src.write_text("mov %r0, 1\nadd %r0, 2\nexit\n")
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(src), "--dialect", "ubpf", "--raw")
    assert status == 0
    assert [c for c, _ in comment_blocks(out) if not c.startswith("<")] == ["mov %r0, 1", "add %r0, 2",
                                                                            "exit"]


def test_jit_dump_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "vm", "jit-dump", str(OBJ / "cgroup_skb.o"))
    assert status == 1 and "several programs" in err
    status, _, err = run_cli(capsys, "vm", "jit-dump", str(tmp_path / "missing.s"))
    assert status == 1 and "missing.s" in err and "Traceback" not in err
    src = tmp_path / "bad.s"
    src.write_text("r0 = = 1\nexit\n")
    status, _, err = run_cli(capsys, "vm", "jit-dump", str(src), "--dialect", "llvm")
    assert status == 1 and "line 1" in err


def test_jit_dump_where_native_code_cannot_run(program_file: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Off x86-64 the dump is the compiler's output without a VM's memory: for a program without map
    values, the very same bytes."""
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(program_file), "-j")
    native = json.loads(out)
    monkeypatch.setattr(jit, "jit_supported", lambda: "the JIT emits x86-64 code and this machine is riscv64")
    status, out, _ = run_cli(capsys, "vm", "jit-dump", str(program_file), "-j")
    assert status == 0 and json.loads(out) == native
