"""`bpfkit feature probe`: bpftool's sections and JSON keys over the probe answers (probes faked)."""

from __future__ import annotations

import json

import pytest

from bpfkit.cli.main import main
from bpfkit.kernel import features
from bpfkit.uapi.enums import Helper, MapType, ProgType


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "probe_prog_type", lambda t: t in (ProgType.XDP, ProgType.KPROBE))
    monkeypatch.setattr(features, "probe_map_type", lambda t: t != MapType.ARENA)
    monkeypatch.setattr(features, "supported_helpers", lambda t: [Helper.MAP_LOOKUP_ELEM] + (
        [Helper.XDP_ADJUST_HEAD] if t == ProgType.XDP else []))


def test_feature_probe_json(probes: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feature", "probe", "kernel", "-j"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["syscall_config"] == {"have_bpf_syscall": True}
    assert got["program_types"]["have_xdp_prog_type"] is True
    assert got["program_types"]["have_lsm_prog_type"] is False
    assert len(got["program_types"]) == len(ProgType) - 1
    assert got["map_types"]["have_hash_map_type"] is True and got["map_types"]["have_arena_map_type"] is False
    assert got["helpers"] == {"kprobe_available_helpers": ["bpf_map_lookup_elem"],
                              "xdp_available_helpers": ["bpf_map_lookup_elem", "bpf_xdp_adjust_head"]}


def test_feature_probe_text(probes: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feature", "probe"]) == 0
    out = capsys.readouterr().out
    assert "eBPF program_type xdp is available\n" in out
    assert "eBPF program_type lsm is NOT available\n" in out
    assert "eBPF map_type arena is NOT available\n" in out
    assert ("eBPF helpers supported for program type xdp:\n"
            "\t- bpf_map_lookup_elem\n\t- bpf_xdp_adjust_head\n") in out
    assert main(["feature", "probe", "--no-helpers"]) == 0
    assert "helpers" not in capsys.readouterr().out
    assert main(["feature", "probe", "dev", "eth0"]) == 1
