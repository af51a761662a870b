"""bpfkit._records: record classes behave as the standard library's frozen slotted dataclasses do.

The oracle is `dataclasses` itself: each class body below is made once as a dataclass and once as a
record, and the two are compared on construction, defaults, equality, hashing, repr, pattern matching,
replace, pickling and copying, and on the errors they give.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from bpfkit._records import FrozenInstanceError, field, field_names, fields, is_record, record, replace


def _twins(body: dict[str, Any], annotations: dict[str, str], *, frozen: bool = True,
           eq: bool = True) -> tuple[type, type]:
    """The same class made by dataclasses and by record."""
    out = []
    for make in ("dataclass", "record"):
        ns: dict[str, Any] = {"__annotations__": dict(annotations), "__module__": __name__,
                              "__qualname__": "Point", "__doc__": "A point."}
        for k, v in body.items():
            if isinstance(v, _Opt):
                v = dataclasses.field(**v.kw) if make == "dataclass" else field(**v.kw)
            ns[k] = v
        cls = type("Point", (), ns)
        if make == "dataclass":
            out.append(dataclasses.dataclass(frozen=frozen, eq=eq, slots=True)(cls))
        else:
            out.append(record(frozen=frozen, eq=eq)(cls))
    return out[0], out[1]


class _Opt:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw


FIELDS = {"x": "int", "y": "int", "label": "str", "tags": "list[str]", "scale": "int"}
BODY = {"label": "p", "tags": _Opt(default_factory=list), "scale": _Opt(default=1, compare=False, repr=False)}


@pytest.fixture
def twins() -> tuple[type, type]:
    return _twins(BODY, FIELDS)


CALLS = [((1, 2), {}), ((1, 2, "q"), {}), ((1,), {"y": 5}), ((), {"x": 0, "y": 0, "tags": ["a"], "scale": 3}),
         ((1, 2, "q", ["t"], 9), {})]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_construction_repr_and_fields_match_dataclasses(twins: tuple[type, type], args: tuple[Any, ...],
                                                        kwargs: dict[str, Any]) -> None:
    dc, rc = twins
    d, r = dc(*args, **kwargs), rc(*args, **kwargs)
    assert repr(d).replace(dc.__qualname__, "X") == repr(r).replace(rc.__qualname__, "X")
    names = [f.name for f in dataclasses.fields(d)]
    assert list(field_names(r)) == names == [f.name for f in fields(rc)]
    assert [getattr(d, n) for n in names] == [getattr(r, n) for n in names]
    assert rc.__match_args__ == dc.__match_args__


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), ((1, 2, 3, 4, 5, 6), {}), ((1,), {"x": 2}),
                                             ((1, 2), {"nope": 1})])
def test_bad_calls_fail_as_for_dataclasses(twins: tuple[type, type], args: tuple[Any, ...],
                                           kwargs: dict[str, Any]) -> None:
    dc, rc = twins
    with pytest.raises(TypeError) as want:
        dc(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        rc(*args, **kwargs)
    assert str(got.value) == str(want.value)


def test_default_factory_makes_a_new_value_each_time(twins: tuple[type, type]) -> None:
    _, rc = twins
    a, b = rc(1, 2), rc(1, 2)
    assert a.tags == [] and a.tags is not b.tags


def test_equality_and_hash_ignore_fields_not_compared(twins: tuple[type, type]) -> None:
    dc, rc = twins
    for cls in (dc, rc):
        a, b = cls(1, 2, scale=1), cls(1, 2, scale=7)
        assert a == b
        assert a != cls(1, 3)
        assert (a == (1, 2)) is False  # another type: NotImplemented, then identity
    # Hashing a record hashes its compared fields (a list field makes it unhashable, as for dataclasses).
    with pytest.raises(TypeError):
        hash(dc(1, 2))
    with pytest.raises(TypeError):
        hash(rc(1, 2))
    plain_dc, plain_rc = _twins({"label": "p"}, {"x": "int", "label": "str"})
    assert hash(plain_rc(1)) == hash(plain_rc(1)) and {plain_rc(1), plain_rc(1), plain_rc(2)} == {
        plain_rc(1), plain_rc(2)}
    assert len({plain_dc(1), plain_dc(1)}) == 1


def test_frozen_records_refuse_assignment_like_dataclasses(twins: tuple[type, type]) -> None:
    dc, rc = twins
    for cls, error in ((dc, dataclasses.FrozenInstanceError), (rc, FrozenInstanceError)):
        p = cls(1, 2)
        with pytest.raises(error):
            p.x = 5
        with pytest.raises(error):
            del p.x
        with pytest.raises(AttributeError):  # slotted: no attribute outside the fields
            object.__setattr__(p, "other", 1)
    assert issubclass(FrozenInstanceError, AttributeError)


def test_mutable_records_are_assignable_and_unhashable() -> None:
    dc, rc = _twins({}, {"x": "int"}, frozen=False)
    for cls in (dc, rc):
        p = cls(1)
        p.x = 2
        assert p == cls(2) and cls.__hash__ is None


def test_eq_false_keeps_identity() -> None:
    dc, rc = _twins({}, {"x": "int"}, frozen=False, eq=False)
    for cls in (dc, rc):
        a = cls(1)
        assert a != cls(1)
        assert a == a
        assert hash(a) == object.__hash__(a)


def test_replace_pickle_copy(twins: tuple[type, type]) -> None:
    _, rc = twins
    p = rc(1, 2, "q", ["t"], 4)
    assert replace(p, y=9) == rc(1, 9, "q", ["t"]) and replace(p, y=9).scale == 4
    assert replace(p) == p and replace(p) is not p
    for clone in (copy.copy(p), copy.deepcopy(p)):
        assert clone == p and clone.scale == 4
    with pytest.raises(TypeError, match="record"):
        replace(object())


@record
class Pickled:
    """A module-level record (pickle finds classes by name)."""

    a: int
    b: tuple[int, ...] = ()


def test_pickle_round_trip() -> None:
    p = Pickled(1, (2, 3))
    assert pickle.loads(pickle.dumps(p)) == p


@record
class Base:
    """Base fields come first; a keyword-only field stays keyword-only in subclasses."""

    span: str = field(default="?", kw_only=True, compare=False, repr=False)
    kind: ClassVar[str] = "base"


@record
class Child(Base):
    """A subclass adding positional fields after a base's keyword-only one."""

    name: str
    count: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("negative count")


def test_inheritance_kw_only_classvar_and_post_init() -> None:
    c = Child("n", 2, span="here")
    assert (c.name, c.count, c.span) == ("n", 2, "here")
    assert field_names(Child) == ("span", "name", "count")
    assert Child.__match_args__ == ("name", "count")
    assert "kind" not in field_names(Child) and Child.kind == "base"
    assert c == Child("n", 2, span="elsewhere") and repr(c) == "Child(name='n', count=2)"
    assert Child("n").span == "?"
    with pytest.raises(ValueError, match="negative"):
        Child("n", -1)
    with pytest.raises(ValueError, match="negative"):
        replace(c, count=-1)  # replace runs __init__ and __post_init__ again
    assert Child.__slots__ == ("name", "count") and not hasattr(c, "__dict__")
    assert is_record(c) and is_record(Child) and not is_record(object())
    match c:
        case Child(name, count):
            assert (name, count) == ("n", 2)
        case _:
            pytest.fail("no match")


def test_methods_a_class_defines_are_kept() -> None:
    @record
    class Own:
        """Own repr and eq."""

        x: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    assert repr(Own(1)) == "own" and Own(1) == Own(2) and hash(Own(1)) == 7


def test_definition_errors() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument 'a'"):
        @record
        class Order:
            a: int = 0
            b: int

    with pytest.raises(ValueError, match="mutable default list"):
        @record
        class Mutable:
            a: list[int] = []

    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=int)

    with pytest.raises(TypeError, match="__setattr__"):
        @record
        class Setter:
            a: int

            def __setattr__(self, name: str, value: object) -> None:
                pass


def test_importing_records_does_not_import_dataclasses_or_inspect() -> None:
    code = ("import sys, bpfkit._records; "
            "print(' '.join(m for m in ('dataclasses', 'inspect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.stdout.strip() == ""


class Outer:
    """Holds a nested record (pickle and the trace cache find classes by qualified name)."""

    @record
    class Inner:
        """A nested record."""

        a: int


def test_nested_records_keep_their_qualified_name() -> None:
    assert Outer.Inner.__qualname__ == "Outer.Inner"
    assert repr(Outer.Inner(1)) == "Outer.Inner(a=1)"
    assert pickle.loads(pickle.dumps(Outer.Inner(1))) == Outer.Inner(1)


def test_init_is_compiled_on_first_use_whichever_class_comes_first() -> None:
    @record
    class Top:
        a: int

    @record
    class Sub(Top):
        b: int = 2

    class Plain(Top):
        pass

    stub = Top.__dict__["__init__"]
    assert Plain(1).a == 1  # a plain subclass runs Top's first __init__, which replaces itself on Top
    assert Top.__dict__["__init__"] is not stub
    compiled = Top.__dict__["__init__"]
    assert (Sub(1).a, Sub(1).b) == (1, 2) and Top(5) == Top(5) and Top.__dict__["__init__"] is compiled
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Sub()
