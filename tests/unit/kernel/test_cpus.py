"""CPU list parsing (the format of /sys/devices/system/cpu/possible)."""

from __future__ import annotations

import os

import pytest

from bpfkit.kernel.cpus import online_cpus, parse_cpu_list, possible_cpus


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0\n", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4,6-7\n", [0, 1, 4, 6, 7]), ("", [])],
)
def test_parse_cpu_list(text: str, cpus: list[int]) -> None:
    assert parse_cpu_list(text) == cpus


def test_parse_error() -> None:
    with pytest.raises(ValueError, match="not a cpu list"):
        parse_cpu_list("a-b")


def test_possible_at_least_online() -> None:
    n = possible_cpus()
    assert n >= len(online_cpus()) >= 1
    assert n >= (os.cpu_count() or 1)
