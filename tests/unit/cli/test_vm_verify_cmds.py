"""`bpfkit vm verify`: bpfkit's verifier from the command line, in-process through the real entry point,
on assembly listings, bytecode and the committed ELF fixtures (whose kernel verdicts are in
tests/data/obj/MANIFEST.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bpfkit.cli.main import main
from bpfkit.cli.vm_verify_cmds import annotate_log
from bpfkit.isa import assemble, encode

ROOT = Path(__file__).resolve().parents[3]
OBJ = ROOT / "tests" / "data" / "obj"
SUMMARY = re.compile(r"^(\w+): accepted \((\d+) insns processed, (\d+) states, stack (\d+) bytes\)$")

ACCEPTED = "r3 = *(u8 *)(r1 + 0)\nr0 = 0\nif r3 > 4 goto +1\nr0 = 1\nexit\n"
"""Branches on a byte of the memory: the verifier walks both arms."""
REFUSED = "r0 = *(u64 *)(r1 + 8)\nexit\n"
"""Reads past the end of 8 bytes of memory."""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["vm", "verify", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def listing(tmp_path: Path) -> Path:
    path = tmp_path / "ok.s"
    path.write_text(ACCEPTED)
    return path


@pytest.fixture
def bad_listing(tmp_path: Path) -> Path:
    path = tmp_path / "oob.s"
    path.write_text(REFUSED)
    return path


# -- listings and bytecode -----------------------------------------------------------------------

def test_accepted_listing(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, str(listing), "--mem-size", "8")
    assert (status, err) == (0, "")
    m = SUMMARY.match(out.strip())
    assert m is not None, out
    assert m.group(1) == "ok"
    # both arms of the branch are walked: 5 insns on the fall-through path, then exit from the jump
    assert int(m.group(2)) == 6
    assert int(m.group(4)) == 0


def test_refused_listing_names_the_instruction_and_hint(bad_listing: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, str(bad_listing), "--mem-size", "8")
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "oob: refused"
    assert lines[1].startswith("insn 0 (r0 = *(u64 *)(r1 + 8)): invalid access to memory")
    assert "mem_size=8 off=8 size=8" in lines[1]
    assert any(line.startswith("  hint: ") and "8 bytes" in line for line in lines)


def test_mem_size_changes_the_verdict(bad_listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, str(bad_listing), "--mem-size", "16")
    assert status == 0
    assert SUMMARY.match(out.strip())


def test_ubpf_listing_and_bytecode_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = encode(assemble(ACCEPTED))
    (tmp_path / "p.bin").write_bytes(code)
    (tmp_path / "p.hex").write_text(code.hex(" ", 8))
    (tmp_path / "p.s").write_text("ldxb %r3, [%r1]\nmov %r0, 0\njgt %r3, 4, +1\nmov %r0, 1\nexit\n")
    outs = []
    for name in ("p.bin", "p.hex", "p.s"):
        status, out, err = run_cli(capsys, str(tmp_path / name), "--mem-size", "8")
        assert (status, err) == (0, ""), name
        outs.append(out)
    assert outs[0] == outs[1] == outs[2]


def test_verbose_prints_the_kernel_style_log(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, str(listing), "--mem-size", "8", "-v")
    lines = out.splitlines()
    assert lines[:3] == ["0: (71) r3 = *(u8 *)(r1 + 0)", "1: (b7) r0 = 0", "2: (25) if r3 > 4 goto +1"]
    assert lines[5:7] == ["from 2 to 4:", "4: (95) exit"]
    assert lines[-2].startswith("processed 6 insns")
    assert SUMMARY.match(lines[-1])
    _, out2, _ = run_cli(capsys, str(listing), "--mem-size", "8", "-vv")
    assert out2.splitlines()[1].endswith("; R0_w=0")


def test_type_gives_the_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "xdp.s"
    src.write_text("r0 = *(u32 *)(r1 + 0)\nr0 = 2\nexit\n")
    status, out, _ = run_cli(capsys, str(src), "--type", "xdp")
    assert status == 0, out
    status, out, _ = run_cli(capsys, str(src))  # raw memory of 0 bytes: r1 is not a pointer
    assert status == 1
    assert out.startswith("xdp: refused\ninsn 0 ")


# -- ELF objects ---------------------------------------------------------------------------------

def manifest_programs() -> list[tuple[str, str, bool]]:
    m = json.loads((OBJ / "MANIFEST.json").read_text())
    return [(o["object"], p["name"], p["expect_load"]) for o in m["objects"] for p in o["programs"]]


@pytest.mark.parametrize("obj", ["xdp.o", "subprogs.v3.o", "tc.o", "loops.v3.o"])
def test_elf_fixture_accepted(obj: str, capsys: pytest.CaptureFixture[str]) -> None:
    names = [n for o, n, ok in manifest_programs() if o == obj and ok]
    status, out, err = run_cli(capsys, str(OBJ / obj))
    assert (status, err) == (0, "")
    got = [SUMMARY.match(line) for line in out.splitlines()]
    assert all(got), out
    assert [m.group(1) for m in got if m] == names


def test_elf_verbose_log_shows_source_lines(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, str(OBJ / "xdp.o"), "-v")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "; int xdp_filter(struct xdp_md *ctx) @ xdp.c:43"
    assert lines[1].startswith("0: (")
    c_source = (ROOT / "tests" / "data" / "c" / "xdp.c").read_text().splitlines()
    shown = [re.match(r"^; (.+) @ xdp\.c:(\d+)$", line) for line in lines if line.startswith(";")]
    assert len(shown) > 10
    for m in shown:
        assert m is not None
        assert c_source[int(m.group(2)) - 1].strip() == m.group(1)


def test_elf_section_picks_one_program(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, str(OBJ / "cgroup_skb.o"))
    assert status == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["count_ingress", "drop_egress"]
    status, out, _ = run_cli(capsys, str(OBJ / "cgroup_skb.o"), "--section", "cgroup_skb/egress")
    assert status == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["drop_egress"]


def test_refused_fixture_shows_the_c_line(capsys: pytest.CaptureFixture[str]) -> None:
    # the kernel refuses it too (MANIFEST: GPL-only helper from a non-GPL program)
    assert ("license_proprietary.o", "license_proprietary", False) in manifest_programs()
    status, out, _ = run_cli(capsys, str(OBJ / "license_proprietary.o"))
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "license_proprietary: refused"
    assert lines[1] == ("insn 6 (call bpf_probe_read_kernel#113): cannot call GPL-restricted function "
                        "from non-GPL compatible program")
    assert lines[2] == ("  source: ./license_proprietary.c:14: "
                        "bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx->args[0]);")
    assert lines[-1] == "  hint: bpf_probe_read_kernel needs a GPL-compatible license"


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, str(OBJ / "cgroup_skb.o"), "-j")
    assert status == 0
    doc = json.loads(out)
    assert [p["name"] for p in doc["programs"]] == ["count_ingress", "drop_egress"]
    first = doc["programs"][0]
    assert first["accepted"] is True
    assert first["type"] == "cgroup_skb"
    assert first["section"] == "cgroup_skb/ingress"
    assert {"processed_insns", "states", "peak_states", "pruned", "stack_depth", "subprograms"} <= set(first)
    assert "log" not in first

    status, out, _ = run_cli(capsys, str(OBJ / "license_proprietary.o"), "-j", "-v")
    assert status == 1
    prog = json.loads(out)["programs"][0]
    assert prog["accepted"] is False
    error = prog["error"]
    assert (error["insn"], error["instruction"]) == (6, "call bpf_probe_read_kernel#113")
    assert error["source"] == {"file": "./license_proprietary.c", "line": 14,
                               "text": "bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx->args[0]);"}
    assert error["path"] == [0, 1, 2, 3, 4, 5, 6]
    assert error["registers"]["R10"] == "fp0"
    assert error["report"].startswith("insn 6 ")
    assert "6: (85) call bpf_probe_read_kernel#113" in prog["log"]


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "args", "message"), [
    (b"", (), "the file is empty"),
    (b"garbage here\n", (), "unknown instruction 'garbage'"),
    (b"b7 00 00", (), "bytecode length 3 is not a multiple of 8"),
    (b"\x7fELF" + bytes(12), (), "ELF"),
    (ACCEPTED.encode(), ("--section", "xdp"), "--section applies to ELF objects only"),
    (ACCEPTED.encode(), ("--type", "bogus"), "unknown program type 'bogus'"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                                    args: tuple[str, ...], message: str) -> None:
    path = tmp_path / "in.x"
    path.write_bytes(content)
    status, out, err = run_cli(capsys, str(path), *args)
    assert status == 1
    assert out == ""
    assert err.startswith("bpfkit: error: ")
    assert message in err
    assert "Traceback" not in err


def test_unknown_section_lists_the_programs(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, str(OBJ / "cgroup_skb.o"), "--section", "nope")
    assert status == 1
    assert "no program in section 'nope'" in err and "cgroup_skb/egress (drop_egress)" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, str(tmp_path / "absent.o"))
    assert status == 1
    assert "absent.o" in err


def test_annotate_log_without_line_info_is_unchanged() -> None:
    log = "0: (b7) r0 = 0\n1: (95) exit\n"
    assert annotate_log(log, {}) == log
    lines = {0: ("a.c", 3, "  return 0;")}
    assert annotate_log(log, lines) == "; return 0; @ a.c:3\n" + log
