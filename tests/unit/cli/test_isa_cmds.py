"""`bpfkit asm` / `bpfkit disasm` through the real entry point (in-process and as a console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfkit.cli.main import main
from bpfkit.isa import assemble, decode, encode

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"


def test_asm_writes_raw_bytes_and_disasm_reads_them_back(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("r0 = 42\nif r1 > 5 goto out\nr0 = 0x123456789 ll\nout:\nexit\n")
    out = tmp_path / "p.bin"
    assert main(["asm", str(src), "-o", str(out)]) == 0
    assert out.read_bytes() == encode(assemble(src.read_text()))
    assert main(["disasm", str(out)]) == 0
    listing = capsys.readouterr().out
    assert encode(assemble(listing)) == out.read_bytes()


def test_asm_without_output_prints_hex_that_disasm_accepts(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text("mov32 %r0, 7\nexit\n")
    assert main(["asm", "--dialect", "ubpf", str(src)]) == 0
    hex_text = capsys.readouterr().out
    assert hex_text == "b4 00 00 00 07 00 00 00\n95 00 00 00 00 00 00 00\n"
    hex_file = tmp_path / "p.hex"
    hex_file.write_text(hex_text)
    assert main(["disasm", "--dialect", "ubpf", str(hex_file)]) == 0
    assert capsys.readouterr().out == "mov32 %r0, 7\nexit\n"
    assert main(["disasm", "-j", str(hex_file)]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["text"] for i in items] == ["w0 = 7", "exit"]
    assert items[0]["opcode"] == 0xB4 and items[0]["imm"] == 7


def test_disasm_of_an_elf_object_prints_each_code_section(capsys: pytest.CaptureFixture[str]) -> None:
    obj = OBJ / "xdp.o"
    assert main(["disasm", str(obj)]) == 0
    out = capsys.readouterr().out
    assert "; section xdp" in out
    section = out.split("; section xdp\n", 1)[1].split("; section", 1)[0]
    from bpfkit.elf import code_sections

    code = next(s.data for s in code_sections(obj.read_bytes()) if s.name == "xdp")
    assert encode(assemble(section)) == encode(decode(code))


def test_errors_are_one_line_with_the_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.s"
    src.write_text("r0 = 1\nr11 = 2\n")
    assert main(["asm", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bpfkit: error: line 2") and "r11" in err
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes.fromhex("b700000000000000ff00000000000000"))
    assert main(["disasm", str(bad)]) == 1
    assert "instruction 1" in capsys.readouterr().err
    assert main(["disasm", str(tmp_path / "missing")]) == 1
    assert "No such file" in capsys.readouterr().err


def test_console_script_round_trip_through_pipes() -> None:
    exe = shutil.which("bpfkit")
    cmd = [exe] if exe else [sys.executable, "-m", "bpfkit"]
    asm = subprocess.run([*cmd, "asm", "-"], input=b"r0 = 42\nexit\n", capture_output=True, check=True)
    dis = subprocess.run([*cmd, "disasm", "-"], input=asm.stdout, capture_output=True, check=True)
    assert dis.stdout.decode().split() == ["r0", "=", "42", "exit"]
