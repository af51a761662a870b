"""Every case of tests/data/verifier/cases/ gets its verdict from bpfkit's verifier, refusals with
the expected reason and a report that points at an instruction and says what to change."""

from __future__ import annotations

from typing import Any

import pytest

from bpfkit.errors import BpfkitError, VerificationError

from .conftest import load_data

cases = load_data("cases")
disagreements = load_data("disagreements")


@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_case(case: Any) -> None:
    if cases.needs_btf(case) and cases.target_btf() is None:
        pytest.skip(f"{cases.VMLINUX} is not readable: the case needs the kernel's BTF")
    if case.accept:
        result = cases.verify_case(case)
        assert result.processed_insns >= 1
        return
    with pytest.raises(VerificationError) as info:
        cases.verify_case(case)
    report = info.value.report
    assert case.error in report.message, f"{case.name}: {report.message!r}"
    assert report.hint, f"{case.name}: the report says nothing about what to change"
    assert isinstance(info.value, BpfkitError)
    text = str(info.value)
    assert report.message in text and "hint:" in text


def test_case_names_are_unique_and_reasoned() -> None:
    names = [c.name for c in cases.CASES]
    assert len(names) == len(set(names))
    assert all(c.reason for c in cases.CASES)
    assert sum(c.accept for c in cases.CASES) >= 40 and sum(not c.accept for c in cases.CASES) >= 60


def test_disagreements_name_refused_cases() -> None:
    by_name = {c.name: c for c in cases.CASES}
    for name, why in disagreements.DISAGREEMENTS.items():
        assert name in by_name, f"{name} is not a case"
        assert not by_name[name].accept, f"{name}: only cases bpfkit refuses can be disagreements"
        assert len(why) > 20
