"""Pure parts of `bpfkit.kernel.btf`: re-encoding BTF for kernels that lack newer kinds."""

from __future__ import annotations

from pathlib import Path

from bpfkit.btf import Const, Enum64, Float, Int, Struct, Typedef, TypeTag, Union, load_btf
from bpfkit.kernel.btf import sanitize_btf
from bpfkit.obj import load_object
from bpfkit.uapi.btf import Kind

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"


def test_sanitize_replaces_kinds_and_keeps_ids() -> None:
    obj = load_object(OBJ / "global_data.o")
    assert obj.btf is not None
    before = list(obj.btf.types())
    drop = {Kind.DATASEC, Kind.FUNC, Kind.FLOAT, Kind.DECL_TAG, Kind.TYPE_TAG, Kind.ENUM64}
    after = list(load_btf(sanitize_btf(obj.btf, drop)).types())
    assert len(after) == len(before)
    gone = {Kind.DATASEC, Kind.VAR, Kind.FUNC, Kind.FUNC_PROTO} | drop
    assert not {t.kind for t in after} & gone
    for b, a in zip(before, after, strict=True):
        if b.kind not in gone:
            assert a == b  # untouched types are equal, at the same id
        if b.kind == Kind.DATASEC:
            assert isinstance(a, Struct) and a.size == getattr(b, "size", None)


def test_sanitize_small_kinds() -> None:
    from bpfkit.btf import marshal

    spec = load_btf(marshal([Int("int", 4), Float("double", 8), TypeTag("user", 1), Enum64("e", 8),
                             Typedef("t", 3)]))
    out = list(load_btf(sanitize_btf(spec, {Kind.FLOAT, Kind.TYPE_TAG, Kind.ENUM64})).types())
    assert out[1] == Struct("double", 8) and out[2] == Const(1) and out[3] == Union("e", 8)
    assert out[4] == Typedef("t", 3)
