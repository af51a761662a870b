"""Fuzz: arbitrary bytecode, loaded and run, only ever raises BpfkitError (never a crash)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfkit.errors import BpfkitError
from bpfkit.isa import decode
from bpfkit.isa.opcodes import OPCODES
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import ENGINES, Vm

_OPCODES = sorted(OPCODES)


@st.composite
def slots(draw: st.DrawFn) -> bytes:
    """8-byte slots, most with a valid opcode byte so the VM gets past decoding."""
    n = draw(st.integers(1, 12))
    out = bytearray()
    for _ in range(n):
        raw = bytearray(draw(st.binary(min_size=8, max_size=8)))
        if draw(st.booleans()):
            raw[0] = draw(st.sampled_from(_OPCODES))
            raw[2:4] = draw(st.integers(-4, 4)).to_bytes(2, "little", signed=True)
        out += raw
    return bytes(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slots(), st.sampled_from([None, ProgType.XDP, ProgType.SOCKET_FILTER]),
       st.binary(min_size=14, max_size=40))
def test_arbitrary_bytecode_only_raises_bpfkit_errors(code: bytes, prog_type: ProgType | None,
                                                      data: bytes) -> None:
    try:
        insns = decode(code, check=False)
    except BpfkitError:
        return
    for engine in ENGINES:
        try:
            # Opt-out: wild programs exercise the run-time checks (the verifier would refuse most).
            Vm(budget=2000).load(insns, prog_type=prog_type, verify=False).test_run(
                data, engine=engine)  # type: ignore[arg-type]
        except BpfkitError as err:
            assert "internal error" not in str(err)
