"""`bpfkit vm run` and `bpfkit vm conformance-plugin`: in-process through the real entry point, and the
plugin as a subprocess speaking the bpf_conformance runner's protocol."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.cli.main import main
from bpfkit.cli.vm_cmds import parse_hex, plugin_main
from bpfkit.errors import AsmError
from bpfkit.isa import assemble, encode
from bpfkit.isa.conformance import Vector, load_vectors
from bpfkit.vm import ENGINES

ROOT = Path(__file__).resolve().parents[3]
OBJ = ROOT / "tests" / "data" / "obj"
CORPUS = ROOT.parent / "shared" / "corpora" / "bpf-conformance" / "tests"
VECTORS: list[Vector] = load_vectors(CORPUS) if CORPUS.is_dir() else []
UDP4 = bytes.fromhex(json.loads((OBJ / "MANIFEST.json").read_text())["packets"]["udp4"])
KERNEL_REJECTED = frozenset(
    name for name, v in json.loads((ROOT / "tests" / "data" / "conformance_kernel_verdicts.json")
                                   .read_text())["vectors"].items() if v["verdict"] == "rejected")
"""Vectors the kernel's verifier refuses (shifts wider than the operand, callx): ISA tests of the VM,
run with the explicit opt-out `--no-verify`; every other vector runs verified."""


def runner_hex(data: bytes) -> str:
    """Hex as the bpf_conformance runner writes it: two digits and two spaces per byte."""
    return "".join(f"{b:02x}  " for b in data)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- vm run --------------------------------------------------------------------------------------

def test_run_llvm_assembly_with_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = *(u16 *)(r1 + 1)\nr0 += r2\nexit\n")
    status, out, _ = run_cli(capsys, "vm", "run", str(src), "--mem", "01 02 03 04")
    assert status == 0
    assert out == f"r0 = {0x0302 + 4:#x} ({0x0302 + 4})\n"


def test_run_ubpf_assembly_is_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("mov %r0, -1\nexit\n")
    status, out, _ = run_cli(capsys, "vm", "run", str(src))
    assert (status, out) == (0, "r0 = 0xffffffffffffffff (-1)\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_run_hex_and_raw_bytecode(tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str) -> None:
    code = encode(assemble("r0 = 6\nr0 *= 7\nexit"))
    (tmp_path / "p.hex").write_text(code.hex(" ", 8))
    (tmp_path / "p.bin").write_bytes(code)
    for name in ("p.hex", "p.bin"):
        status, out, _ = run_cli(capsys, "vm", "run", str(tmp_path / name), "--engine", engine, "-j")
        assert status == 0
        assert json.loads(out) == {"r0": 42, "data_out": "", "instructions": 3}


def test_run_data_file_and_data_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("*(u8 *)(r1 + 0) = 0xaa\nr0 = r2\nexit\n")
    (tmp_path / "mem").write_bytes(b"\x01\x02\x03")
    status, out, _ = run_cli(capsys, "vm", "run", str(src), "--data", str(tmp_path / "mem"), "--json")
    assert status == 0
    assert json.loads(out) == {"r0": 3, "data_out": "aa0203", "instructions": 3}


def test_trace_prints_every_instruction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = 1\nr1 = 2\nif r1 > 1 goto +1\nr0 = 9\nr0 += r1\nexit\n")
    status, out, _ = run_cli(capsys, "vm", "run", str(src), "--trace")
    lines = out.splitlines()
    assert status == 0
    assert len(lines) == 6 and lines[-1] == "r0 = 0x3 (3)"
    assert "r0 += r1" in lines[3] and "r0=0x3" in lines[3] and "r1=0x2" in lines[3]
    assert "r0 = 9" not in out  # the skipped instruction never ran


def test_run_elf_object_with_its_program_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "pkt").write_bytes(UDP4)
    # The fixture returns 0 when all of its checks pass (tests/data/obj/MANIFEST.json).
    status, out, _ = run_cli(capsys, "vm", "run", str(OBJ / "alu64.v3.o"), "--data", str(tmp_path / "pkt"))
    assert (status, out) == (0, "r0 = 0x0 (0)\n")


def test_run_elf_section_choice(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--mem", UDP4.hex())
    assert status == 1 and "several programs" in err and "cgroup_skb/egress" in err
    status, _, err = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section", "nope")
    assert status == 1 and "no program in section 'nope'" in err
    status, out, _ = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section",
                             "cgroup_skb/egress", "--mem", UDP4[14:].hex())
    assert status == 0 and out.startswith("r0 = ")


def test_run_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = 1\nexit\n")
    status, _, err = run_cli(capsys, "vm", "run", str(src), "--mem", "0g")
    assert status == 1 and "--mem: '0g' is not a hex byte" in err
    src.write_text("r0 = *(u64 *)(r1 + 0)\nexit\n")
    status, _, err = run_cli(capsys, "vm", "run", str(src))  # verified for 0 bytes: refused at insn 0
    assert status == 1 and "insn 0 (r0 = *(u64 *)(r1 + 0)): R1 invalid mem access 'scalar'" in err
    status, _, err = run_cli(capsys, "vm", "run", str(src), "--no-verify")  # the run-time check
    assert status == 1 and "pc 0" in err
    src.write_text("r0 = = 1\nexit\n")
    status, _, err = run_cli(capsys, "vm", "run", str(src), "--dialect", "llvm")
    assert status == 1 and "line 1" in err
    src.write_text("l: r0 = 1\ngoto l\n")
    status, _, err = run_cli(capsys, "vm", "run", str(src))
    assert status == 1 and "infinite loop detected at insn 0" in err
    status, _, err = run_cli(capsys, "vm", "run", str(src), "--engine", "interp", "--budget", "1000",
                             "--no-verify")
    assert status == 1 and "budget of 1000" in err
    status, _, err = run_cli(capsys, "vm", "run", str(tmp_path / "missing.s"))
    assert status == 1 and "missing.s" in err


def test_parse_hex_forms() -> None:
    assert parse_hex("01  02  ff  ", "m") == b"\x01\x02\xff"
    assert parse_hex("0x01 b700 0xFF", "m") == b"\x01\xb7\x00\xff"
    with pytest.raises(AsmError, match="m: 'abc' is not a hex byte"):
        parse_hex("abc", "m")


# -- vm conformance-plugin ----------------------------------------------------------------------

def plugin(program: bytes | str, memory: bytes = b"", *options: str) -> tuple[int, str, str]:
    stdin = io.StringIO((runner_hex(program) if isinstance(program, bytes) else program) + "\n")
    out, err = io.StringIO(), io.StringIO()
    status = plugin_main([runner_hex(memory), *options], stdin, out, err)
    return status, out.getvalue(), err.getvalue()


def vector_code(v: Vector) -> bytes:
    return v.raw_bytes if v.asm is None and v.raw_bytes is not None else encode(v.instructions())


def test_corpus_is_there() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    assert len(VECTORS) == 313


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_plugin_in_process_on_every_vector(vector: Vector) -> None:
    status, out, err = plugin(vector_code(vector), vector.mem, "--no-verify" if vector.name in KERNEL_REJECTED
                              else "")
    if vector.error is not None:
        assert status == 1 and out.strip() and err.startswith("bpfkit: error: ")
    else:
        assert (status, out, err) == (0, f"{vector.result:x}\n", "")


SAMPLE = VECTORS[::11]  # ~29 vectors across the corpus, alphabetically spread


@pytest.mark.parametrize("vector", SAMPLE, ids=[v.name for v in SAMPLE])
def test_plugin_subprocess_protocol(vector: Vector) -> None:
    """What the runner does: memory in argv[1], options in argv[2], program hex on stdin; r0 in hex."""
    engine = "--engine interp" if vector.name < "l" else ""
    if vector.name in KERNEL_REJECTED:
        engine += " --no-verify"
    proc = subprocess.run([sys.executable, "-m", "bpfkit", "vm", "conformance-plugin",
                           runner_hex(vector.mem), engine],
                          input=runner_hex(vector_code(vector)) + "\n", capture_output=True, text=True,
                          timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, f"{vector.result:x}\n"), proc.stderr
    assert int(proc.stdout, 16) == vector.result


def test_plugin_options_and_program_argument() -> None:
    code = encode(assemble("r0 = r2\nr0 <<= 32\nexit"))
    engines = [["--engine", e] for e in ENGINES]
    for options in ([], ["--interpret"], ["--jit"], ["--engine interp"], *engines):
        assert plugin(code, b"\0" * 3, *options)[:2] == (0, "300000000\n")
    stdin, out, err = io.StringIO(""), io.StringIO(), io.StringIO()
    assert plugin_main(["", "--program", code.hex(" ")], stdin, out, err) == 0
    assert out.getvalue() == "0\n"


def test_plugin_errors_go_to_stdout_with_status_1() -> None:
    status, out, err = plugin(encode(assemble("r0 = *(u64 *)(r1 + 8)\nexit")), b"\0" * 8)
    assert status == 1 and "insn 0" in out and "mem_size=8 off=8 size=8" in out
    assert err.startswith("bpfkit: error:") and "\n" not in out.rstrip("\n")
    status, out, err = plugin(encode(assemble("r0 = *(u64 *)(r1 + 8)\nexit")), b"\0" * 8, "--no-verify")
    assert status == 1 and "pc 0" in out and err.startswith("bpfkit: error:")
    status, out, _ = plugin("8d 00 00 00 00 00 00 00", b"", "--no-verify")  # callx r0 = 0, no exit
    assert status == 1 and out.strip()
    status, out, _ = plugin("8d 00 00 00 00 00 00 00")  # verified: refused before it runs
    assert status == 1 and "insn 0" in out
    status, out, _ = plugin("", b"")
    assert (status, out) == (1, "no program on stdin\n")
    status, out, _ = plugin("95 00", b"", "--engine", "turbo")
    assert status == 1 and "unknown engine 'turbo'" in out
    status, out, _ = plugin("95 00 00 00 00 00 00 00", b"", "--frobnicate")
    assert status == 1 and "invalid argument '--frobnicate'" in out


def _manifest_runs() -> list[tuple[str, str, str, str, int]]:
    """(object, section, option, hex, retval) for every test run the fixture manifest records (checked
    against the kernel by tools/build_fixtures.py --verify)."""
    manifest = json.loads((OBJ / "MANIFEST.json").read_text())
    runs = []
    for obj in manifest["objects"]:
        for prog in obj["programs"]:
            for run in prog.get("test_run") or []:
                if "data_in" in run:
                    option, value = "--mem", manifest["packets"][run["data_in"]]
                else:
                    option, value = "--ctx", run["ctx_in_hex"]
                runs.append((obj["object"], prog["section"], option, value, run["retval"]))
    return runs


MANIFEST_RUNS = _manifest_runs()


@pytest.mark.parametrize(("obj", "section", "option", "value", "retval"), MANIFEST_RUNS,
                         ids=[f"{o}-{s}-{i}" for i, (o, s, *_rest) in enumerate(MANIFEST_RUNS)])
def test_run_fixture_objects_like_the_kernel(capsys: pytest.CaptureFixture[str], obj: str, section: str,
                                             option: str, value: str, retval: int) -> None:
    """The kernel-verified fixture results, through `vm run` (which loads the whole object: CO-RE
    against the live vmlinux BTF, `.kconfig` from the live config): the same r0, or (for what only a
    kernel has: kfuncs, kernel variables, a task_struct pointer) a clear error naming it."""
    from bpfkit.obj import ExternKind, load_object
    from bpfkit.obj.kconfig import read_kconfig
    from bpfkit.vm.objects import default_target_btf

    spec = load_object(OBJ / obj)
    kinds = {e.kind for e in spec.externs.values()}
    if ExternKind.KCONFIG in kinds and not read_kconfig():
        pytest.skip("no kernel config to fill .kconfig from (/proc/config.gz, /boot/config-*)")
    if any(p.core_relos for p in spec.programs.values()) and default_target_btf() is None:
        pytest.skip("no /sys/kernel/btf/vmlinux to apply CO-RE relocations against")
    status, out, err = run_cli(capsys, "vm", "run", str(OBJ / obj), "--section", section, option, value, "-j")
    kernel_only = sorted(e.name for e in spec.externs.values() if e.kind is not ExternKind.KCONFIG)
    if kernel_only:
        assert status == 1 and "kernel-only, not supported by the VM" in err, err
        assert any(repr(name) in err for name in kernel_only), err
    elif obj in KERNEL_ONLY_HELPERS:
        assert status == 1 and err.startswith("bpfkit: error: ") and "Traceback" not in err
        assert KERNEL_ONLY_HELPERS[obj] in err, err
    else:
        assert (status, err) == (0, "")
        assert json.loads(out)["r0"] == retval


KERNEL_ONLY_HELPERS = {"core_task.o": "bpf_get_current_task"}
"""Fixtures calling a helper that only means something in a kernel (a task_struct pointer)."""


def test_run_elf_btf_and_kconfig_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--kconfig values reach the program (CONFIG_HZ outside {100, 250, 300, 1000} fails the fixture's
    check at its source line); --btf names the CO-RE target; both are for ELF objects only."""
    full = ["CONFIG_HZ=250", "CONFIG_BPF_SYSCALL=y", "LINUX_KERNEL_VERSION=393216"]
    status, out, err = run_cli(capsys, "vm", "run", str(OBJ / "kconfig.o"), "--mem", UDP4.hex(), "-j",
                               *(f"--kconfig={kv}" for kv in full))
    assert (status, json.loads(out)["r0"] if status == 0 else err) == (0, 0)
    status, out, _ = run_cli(capsys, "vm", "run", str(OBJ / "kconfig.o"), "--mem", UDP4.hex(), "-j",
                             *(f"--kconfig={kv}" for kv in full), "--kconfig", "CONFIG_HZ=123")
    assert status == 0 and json.loads(out)["r0"] == 29  # kconfig.c line 29: the CONFIG_HZ check
    status, out, _ = run_cli(capsys, "vm", "run", str(OBJ / "kconfig.o"), "--mem", UDP4.hex(), "-j",
                             *(f"--kconfig={kv}" for kv in full), "--kconfig",
                             "LINUX_KERNEL_VERSION=0x040000")
    assert status == 0 and json.loads(out)["r0"] == 27  # line 27: LINUX_KERNEL_VERSION >= 5.0.0
    status, _, err = run_cli(capsys, "vm", "run", str(OBJ / "kconfig.o"), "--kconfig", "CONFIG_HZ")
    assert status == 1 and "--kconfig: 'CONFIG_HZ' is not NAME=VALUE" in err
    status, _, err = run_cli(capsys, "vm", "run", str(OBJ / "core_field_info.o"), "--btf",
                             str(tmp_path / "missing.btf"))
    assert status == 1 and "missing.btf" in err
    src = tmp_path / "p.s"
    src.write_text("r0 = 0\nexit\n")
    status, _, err = run_cli(capsys, "vm", "run", str(src), "--btf", "x")
    assert status == 1 and "--btf applies to ELF objects only" in err


def test_run_elf_section_loads_only_that_program(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The object's other program reads an uninitialised register (the verifier refuses it): running
    the chosen one neither verifies nor names it; choosing the refused one names it."""
    import bpfkit.obj
    from bpfkit._records import replace

    real = bpfkit.obj.load_object

    def with_refused_egress(data: bytes, name: str) -> bpfkit.obj.ObjectSpec:
        spec = real(data, name)
        spec.programs["drop_egress"] = replace(spec.programs["drop_egress"], insns=tuple(
            assemble("r0 = r2\nexit", "llvm")), references=(), line_info=b"", func_info=b"")
        return spec

    monkeypatch.setattr(bpfkit.obj, "load_object", with_refused_egress)
    status, out, err = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section",
                               "cgroup_skb/ingress", "--mem", UDP4[14:].hex())
    assert (status, out, err) == (0, "r0 = 0x1 (1)\n", "")
    status, _, err = run_cli(capsys, "vm", "run", str(OBJ / "cgroup_skb.o"), "--section",
                             "cgroup_skb/egress", "--mem", UDP4[14:].hex())
    assert status == 1 and "drop_egress" in err and "count_ingress" not in err
