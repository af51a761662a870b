"""bpf_get_prandom_u32's generator: SplitMix64, checked against the published reference outputs."""

from __future__ import annotations

from bpfkit.vm.prandom import GAMMA, Prandom, mix

# The first outputs of SplitMix64 seeded with 1234567 (the reference implementation's test values).
REFERENCE = [6457827717110365317, 3203168211198807973, 9817491932198370423]


def test_mix_matches_the_reference_sequence() -> None:
    state, out = 1234567, []
    for _ in REFERENCE:
        state = (state + GAMMA) & (2**64 - 1)
        out.append(mix(state))
    assert out == REFERENCE


def test_next_u32_is_the_high_half_and_advances_the_shared_word() -> None:
    p = Prandom(1234567)
    assert [p.next_u32() for _ in REFERENCE] == [v >> 32 for v in REFERENCE]
    assert p.state == (1234567 + 3 * GAMMA) & (2**64 - 1)


def test_seeds_give_reproducible_streams() -> None:
    a, b, c = Prandom(5), Prandom(5), Prandom(6)
    sa = [a.next_u32() for _ in range(8)]
    assert sa == [b.next_u32() for _ in range(8)]
    assert sa != [c.next_u32() for _ in range(8)]
    assert all(0 <= v < 1 << 32 for v in sa)
