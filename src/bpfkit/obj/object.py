"""`ObjectSpec`: everything an ELF object defines (programs, maps, variables, externs, BTF), as specs.

An ObjectSpec is what `load_object` returns and what a loader turns into kernel objects. It is mutable
only through `set_global` (and the `rodata`/`data`/`bss` views), which rewrite the initial contents of
a global data map before load, the way a libbpf skeleton's `skel->rodata->x = 5` does.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from bpfkit._records import field, record, replace
from bpfkit.btf import Spec
from bpfkit.errors import BpfkitError, BtfError

from .data import ZERO_KEY, VariableSpec
from .externs import ExternSpec
from .spec import MapSpec, ProgramSpec
from .values import decode_value, encode_value


@record(frozen=False)
class ObjectSpec:
    """The specs of one BPF object file.

    `programs` and `maps` are keyed by name (a program's function name; a map's variable name, or the
    section name for global data: `.rodata`, `.data.foo`, `.kconfig`). `variables` are the global
    data variables, `externs` the `__kconfig`/`__ksym` symbols left for the loader. `btf` is the object's
    BTF, fixed up as libbpf does (DATASEC sizes and offsets), ready for BPF_BTF_LOAD. `notes` say where
    bpfkit accepted something libbpf would refuse.
    """

    name: str
    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    maps: dict[str, MapSpec] = field(default_factory=dict)
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    externs: dict[str, ExternSpec] = field(default_factory=dict)
    btf: Spec | None = None
    license: str = ""
    kern_version: int = 0
    byteorder: str = "little"
    path: str = ""
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ global variables

    def variable(self, name: str) -> VariableSpec:
        """The global variable `name`; `KeyError` naming the known ones if there is none."""
        try:
            return self.variables[name]
        except KeyError:
            known = ", ".join(sorted(self.variables)) or "none"
            raise KeyError(f"{self.name}: no global variable {name!r} (variables: {known})") from None

    def _value_of(self, var: VariableSpec) -> bytes:
        spec = self.maps[var.section]
        value = spec.contents[0][1] if spec.contents else bytes(spec.value_size)
        return value[var.offset : var.offset + var.size]

    def get_global(self, name: str, *, raw: bool = False) -> Any:
        """The initial value of variable `name`: decoded from its BTF type (int, bool, float, bytes for
        char arrays, list, dict), or its bytes when `raw` or when the object has no BTF."""
        var = self.variable(name)
        data = self._value_of(var)
        if raw or self.btf is None or not var.type_id:
            return data
        return decode_value(self.btf, var.type_id, data, self.byteorder)

    def set_global(self, name: str, value: object) -> None:
        """Set the initial value of variable `name` (written into its map's contents before load).

        `value` is encoded from the variable's BTF type (see `bpfkit.obj.values`); raw `bytes` of the
        variable's size always work. Raises `BtfError` when the value does not fit the type.
        """
        var = self.variable(name)
        current = self._value_of(var)
        if self.btf is not None and var.type_id:
            new = encode_value(self.btf, var.type_id, value, current, self.byteorder)
        elif isinstance(value, (bytes, bytearray)) and len(value) == var.size:
            new = bytes(value)
        else:
            raise BtfError(f"{self.name}: variable {name!r} has no BTF type; give exactly {var.size} bytes")
        spec = self.maps[var.section]
        whole = bytearray(spec.contents[0][1] if spec.contents else bytes(spec.value_size))
        whole[var.offset : var.offset + var.size] = new
        self.maps[var.section] = replace(spec, contents=((ZERO_KEY, bytes(whole)),))

    def datasec(self, section: str) -> DataSection:
        """A dict-like view of the variables of one global data section (`.rodata`, `.data.foo`)."""
        if section not in self.maps:
            raise KeyError(f"{self.name}: no data section {section!r}")
        return DataSection(self, section)

    @property
    def rodata(self) -> DataSection:
        """Variables of `.rodata`: `obj.rodata["cfg"] = 5`."""
        return self.datasec(".rodata")

    @property
    def data(self) -> DataSection:
        """Variables of `.data`."""
        return self.datasec(".data")

    @property
    def bss(self) -> DataSection:
        """Variables of `.bss`."""
        return self.datasec(".bss")


class DataSection(MutableMapping[str, Any]):
    """The variables of one data section of an ObjectSpec, by name; assigning calls `set_global`."""

    def __init__(self, obj: ObjectSpec, section: str) -> None:
        self._obj = obj
        self.section = section

    def _names(self) -> list[str]:
        return [n for n, v in self._obj.variables.items() if v.section == self.section]

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(f"{self._obj.name}: no variable {name!r} in {self.section}")
        return self._obj.get_global(name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._names():
            raise KeyError(f"{self._obj.name}: no variable {name!r} in {self.section}")
        self._obj.set_global(name, value)

    def __delitem__(self, name: str) -> None:
        raise BpfkitError("variables of an object cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"<DataSection {self.section} of {self._obj.name}: {', '.join(self._names())}>"
