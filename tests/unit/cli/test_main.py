"""The entry point: every command word is registered by the module `COMMANDS` names, loaded on demand."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bpfkit.cli.main import COMMANDS, build_parser, main


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_the_table_names_exactly_the_registered_commands() -> None:
    assert _choices(build_parser()) == set(COMMANDS)


@pytest.mark.parametrize("word", sorted(COMMANDS))
def test_each_command_module_registers_its_word(word: str) -> None:
    assert word in _choices(build_parser(word))


def test_running_a_command_imports_only_its_module() -> None:
    code = ("import sys; from bpfkit.cli.main import main; main(['asm', '-h'])")
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: bpfkit asm" in out.stdout
    probe = ("import sys\nfrom bpfkit.cli.main import main\n"
             "try:\n    main(['asm', '-h'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('bpfkit.cli.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = "['bpfkit.cli.helpformat', 'bpfkit.cli.isa_cmds', 'bpfkit.cli.main']"
    assert out.stdout.strip().splitlines()[-1] == loaded


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
