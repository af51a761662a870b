"""Record classes: the part of `dataclasses` bpfkit uses (frozen, slotted data classes), cheap to define.

Start-up is a hot path (`bpfkit trace` with a cached script): with `dataclasses`, defining classes was
over half of bpfkit's own start-up. That module imports `inspect` (~4 ms) and compiles six methods for
each frozen slotted class, then builds the class twice (~0.3-0.45 ms a class). `record` makes the same
classes with one compiled function, `__init__` (as fast as the dataclass one; compiled on the class's
first instantiation, since most classes a run defines are never instantiated), and shares the rest
(`__eq__`, `__hash__`, `__repr__`, frozen `__setattr__`) between classes.

Semantics follow `dataclasses`: fields come from the class's annotations in order (ClassVar excluded),
base-class record fields first; `field()` takes a default or default factory and `compare`, `repr`,
`kw_only`; `__post_init__` runs after `__init__`; methods the class defines itself are kept. Records
are always slotted; frozen unless `frozen=False`; `eq=False` keeps identity comparison. As with
`dataclass(slots=True)`, the class is built anew, so zero-argument `super()` in its methods does not
work (name the class). Imports nothing from bpfkit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_kwargs: Any) -> Callable[[Any], Any]:
        return lambda f: f


T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""No default (the value of `Field.default` / `Field.default_factory` when there is none)."""


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    """One field of a record: its name, default or default factory, and how it takes part in the
    generated methods."""

    __slots__ = ("compare", "default", "default_factory", "kw_only", "name", "repr")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, compare: bool = True,
                 repr: bool = True, kw_only: bool = False, name: str = "") -> None:
        self.name = name
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr
        self.kw_only = kw_only

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING or self.default_factory is not MISSING

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, default={self.default!r}, "
                f"default_factory={self.default_factory!r}, compare={self.compare}, repr={self.repr}, "
                f"kw_only={self.kw_only})")


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, compare: bool = True,
          repr: bool = True, kw_only: bool = False) -> Any:
    """A field with options, as a class attribute's value: ``x: list[int] = field(default_factory=list)``."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr, kw_only)


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True, eq: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True) -> Any:
    """Make `cls` a record class: ``@record`` (frozen) or ``@record(frozen=False)`` / ``(eq=False)``."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen, eq)

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in `__init__` order of definition."""
    try:
        return obj.__record_fields__  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError(f"{obj!r} is not a record or a record class") from None


def field_names(obj: Any) -> tuple[str, ...]:
    """The names of the fields of a record class or instance."""
    try:
        return obj.__record_names__  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError(f"{obj!r} is not a record or a record class") from None


def is_record(obj: Any) -> bool:
    """Whether `obj` is a record class or a record."""
    cls = obj if isinstance(obj, type) else type(obj)
    return "__record_fields__" in cls.__dict__


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record `obj` with the named fields changed (`__init__` and `__post_init__` run again)."""
    try:
        names = obj.__record_names__  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError("replace() should be called on a record") from None
    for name in names:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)


# -- building the class -------------------------------------------------------------------------------


def _is_classvar(annotation: object) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))
    typing = sys.modules.get("typing")
    return typing is not None and (annotation is typing.ClassVar
                                   or getattr(annotation, "__origin__", None) is typing.ClassVar)


def _slots_of(cls: type) -> set[str]:
    out: set[str] = set()
    for base in cls.__mro__[1:-1]:
        slots = base.__dict__.get("__slots__", ())
        out.update((slots,) if isinstance(slots, str) else slots)
    return out


def _collect(cls: type) -> tuple[dict[str, Field], list[str]]:
    """Every field (bases first) and the names `cls` itself annotates."""
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:-1]):
        for f in base.__dict__.get("__record_fields__", ()):
            found[f.name] = f
    own: list[str] = []
    # Not inspect.get_annotations: importing inspect is the cost this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            f = Field(value.default, value.default_factory, value.compare, value.repr, value.kw_only, name)
        else:
            f = Field(value, name=name)
        if type(f.default) in (list, dict, set):
            raise ValueError(f"mutable default {type(f.default).__name__} for field {name} of "
                             f"{cls.__qualname__} is not allowed: use default_factory")
        found[name] = f
        own.append(name)
    return found, own


def _build(cls: type[T], frozen: bool, eq: bool) -> type[T]:
    found, own = _collect(cls)
    all_fields = tuple(found.values())
    positional = [f for f in all_fields if not f.kw_only]
    keyword = [f for f in all_fields if f.kw_only]
    seen_default = None
    for f in positional:
        if f.has_default:
            seen_default = f
        elif seen_default is not None:
            raise TypeError(f"non-default argument {f.name!r} follows default argument "
                            f"{seen_default.name!r} in {cls.__qualname__}")
    names = tuple(f.name for f in all_fields)
    defined = cls.__dict__
    inherited = _slots_of(cls)
    ns = {k: v for k, v in defined.items() if k not in own and k not in ("__dict__", "__weakref__")}
    ns["__qualname__"] = cls.__qualname__  # a type attribute, not in the class dict: Outer.Inner stays so
    ns["__slots__"] = tuple(n for n in own if n not in inherited)
    ns["__record_fields__"] = all_fields
    ns["__record_names__"] = names
    if "__match_args__" not in defined:
        ns["__match_args__"] = tuple(f.name for f in positional)
    made: list[type] = []
    if "__init__" not in defined:
        ns["__init__"] = _first_init(made, positional, keyword, frozen)
    if "__repr__" not in defined:
        ns["__repr__"] = _make_repr(cls.__qualname__, tuple(f.name for f in all_fields if f.repr))
    key = _key([f.name for f in all_fields if f.compare])
    if eq and "__eq__" not in defined:
        ns["__eq__"] = _make_eq(key)
    class_hash = defined.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in defined))
    if eq and not explicit_hash:
        ns["__hash__"] = _make_hash(key) if frozen else None
    if frozen:
        for name in ("__setattr__", "__delattr__"):
            if name in defined:
                raise TypeError(f"cannot overwrite attribute {name} in frozen record {cls.__qualname__}")
        ns["__setattr__"] = _frozen_setattr
        ns["__delattr__"] = _frozen_delattr
        ns.setdefault("__getstate__", _getstate)
        ns.setdefault("__setstate__", _setstate)
    made.append(type(cls)(cls.__name__, cls.__bases__, ns))  # type: ignore[misc]
    return made[0]  # type: ignore[return-value]


def _first_init(made: list[type], positional: list[Field], keyword: list[Field], frozen: bool) -> Any:
    """An `__init__` that compiles the real one on the first call and puts it in its place: most record
    classes a run defines are never instantiated, and compiling is most of the cost of defining one."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        cls = made[0]
        init = _make_init(cls, positional, keyword, frozen)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    return __init__


def _make_init(cls: type, positional: list[Field], keyword: list[Field], frozen: bool) -> Any:
    env: dict[str, Any] = {"__set": object.__setattr__, "__FACTORY": MISSING}
    params, body = ["self"], []
    for i, f in enumerate(positional + keyword):
        if f is (keyword[0] if keyword else None):
            params.append("*")
        value = f.name
        if f.default is not MISSING:
            env[f"__d{i}"] = f.default
            params.append(f"{f.name}=__d{i}")
        elif f.default_factory is not MISSING:
            env[f"__f{i}"] = f.default_factory
            params.append(f"{f.name}=__FACTORY")
            value = f"__f{i}() if {f.name} is __FACTORY else {f.name}"
        else:
            params.append(f.name)
        body.append(f"__set(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    src = f"def __init__({', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _key(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda self: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda self: (get(self),)
    return attrgetter(*names)


def _make_eq(key: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _make_hash(key: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _make_repr(qualname: str, names: tuple[str, ...]) -> Any:
    def __repr__(self: Any) -> str:
        return f"{qualname}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    return __repr__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, n) for n in self.__record_names__]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self.__record_names__, state, strict=True):
        object.__setattr__(self, name, value)
