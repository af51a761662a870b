"""kallsyms parsing and address resolution on sample text (no /proc access)."""

from __future__ import annotations

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel.ksyms import MAX_OFFSET, KernelSymbol, KernelSymbols, parse_kallsyms

SAMPLE = """\
ffffffff81000000 T _stext
ffffffff81001000 t helper_fn
ffffffff81000800 T early_fn
ffffffff81002000 D some_data
ffffffff81003000 W weak_fn
ffffffffc0001000 t mod_fn\t[mymod]
garbage line
"""


def test_parse_keeps_text_symbols_sorted() -> None:
    assert parse_kallsyms(SAMPLE.splitlines()) == [
        (0xFFFFFFFF81000000, "_stext", ""), (0xFFFFFFFF81000800, "early_fn", ""),
        (0xFFFFFFFF81001000, "helper_fn", ""), (0xFFFFFFFF81003000, "weak_fn", ""),
        (0xFFFFFFFFC0001000, "mod_fn", "mymod"),
    ]
    assert len(parse_kallsyms(SAMPLE.splitlines(), None)) == 6


def test_resolve_and_address() -> None:
    k = KernelSymbols(parse_kallsyms(SAMPLE.splitlines()))
    assert not k.restricted
    assert k.resolve(0xFFFFFFFF81001010) == KernelSymbol("helper_fn", 0x10)
    assert str(k.resolve(0xFFFFFFFFC0001004)) == "mod_fn+0x4 [mymod]"
    assert str(k.resolve(0xFFFFFFFF81000800)) == "early_fn"
    assert k.resolve(0xFFFFFFFF80000000) is None
    assert k.resolve(0xFFFFFFFFC0001000 + MAX_OFFSET) is None
    assert k.address("weak_fn") == 0xFFFFFFFF81003000
    with pytest.raises(KeyError):
        k.address("nope")


def test_hidden_addresses_are_reported() -> None:
    k = KernelSymbols(parse_kallsyms(["0000000000000000 T _stext", "0000000000000000 t f"]))
    assert k.restricted
    with pytest.raises(KernelError, match="root"):
        k.resolve(0xFFFFFFFF81000000)


def test_unreadable_file() -> None:
    with pytest.raises(KernelError, match="ENOENT"):
        KernelSymbols.load("/nonexistent/kallsyms")
