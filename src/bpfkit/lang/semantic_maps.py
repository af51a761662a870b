"""Semantic checks for maps: declaring a map from its assignments, key and value types, aggregation
calls (``count()``, ``lhist()``...) and their parameters, and reading map values.

`MapChecks` is a mixin of the analyzer in `bpfkit.lang.semantic`; it relies on the analyzer's `expr`,
`error`, `const_int`, `check_stack_value` and `result`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._records import replace
from bpfkit.lang import ast
from bpfkit.lang.source import Span
from bpfkit.lang.types import AGGREGATIONS, INT64, Kind, Type, agg, int_type, normalise, tuple_type

if TYPE_CHECKING:
    from bpfkit.lang.semantic import Analysis, MapDecl

#: Aggregation functions and the (fewest, most) arguments each takes.
AGG_ARGS = {"count": (0, 0), "sum": (1, 1), "min": (1, 1), "max": (1, 1), "avg": (1, 1), "stats": (1, 1),
            "hist": (1, 1), "lhist": (4, 4)}


class MapChecks:
    """Analyzer methods for map declarations, keys, aggregations and map reads."""

    result: Analysis

    if TYPE_CHECKING:
        def expr(self, e: ast.Expr, statement: bool = False, record_ok: bool = False) -> Type: ...

        def error(self, message: str, span: Span, hint: str | None = None) -> None: ...

        def const_int(self, e: ast.Expr) -> int: ...

        def check_stack_value(self, t: Type, span: Span, what: str = "variable",
                              value: ast.Expr | None = None) -> None: ...

    def declare_map(self, m: ast.Map, key: Type | None, value: Type, lhist: tuple[int, int, int] | None,
                    span: Span) -> None:
        old = self.result.maps.get(m.name)
        if old is None:
            from bpfkit.lang.semantic import MapDecl

            self.result.maps[m.name] = MapDecl(m.name, key, value, span, lhist)
            return
        self.check_key(m, old, key)
        if not old.value.same_shape(value):
            self.error(f"Type mismatch for @{m.name}: trying to assign value of type '{value}' when map "
                       f"already contains a value of type '{old.value}'", span)
        elif lhist is not None and old.lhist is not None and lhist != old.lhist:
            self.error(f"Different lhist bounds in a single map unsupported: @{m.name}", span)

    def check_key(self, m: ast.Map, decl: MapDecl, key: Type | None) -> None:
        if (decl.key is None) != (key is None) or (key is not None and decl.key is not None
                                                   and not decl.key.same_shape(key)):
            self.error(f"Argument mismatch for @{m.name}: trying to access with arguments: "
                       f"[{_show_key(key)}] when map expects arguments: [{_show_key(decl.key)}]", m.span)

    def map_key(self, m: ast.Map) -> Type | None:
        if not m.keys:
            return None
        elems = []
        for k in m.keys:
            t = normalise(self.expr(k))
            if t.kind is Kind.NONE or t.kind in AGGREGATIONS:
                self.error(f"Invalid map key type: {t}", k.span)
            self.check_stack_value(t, k.span, "map key")
            elems.append(t)
        return elems[0] if len(elems) == 1 else tuple_type(tuple(elems))

    def aggregation(self, call: ast.Call) -> Type:
        lo, hi = AGG_ARGS[call.name]
        if not lo <= len(call.args) <= hi:
            want = "no" if hi == 0 else f"{lo}" if lo == hi else f"{lo}-{hi}"
            self.error(f"{call.name}() requires {want} argument{'s' if hi != 1 else ''} "
                       f"({len(call.args)} provided)", call.span)
        signed = True
        for i, a in enumerate(call.args):
            t = self.expr(a)
            if not t.is_int:
                self.error(f"{call.name}() only supports integer arguments ({t} provided)", a.span)
            elif i == 0:
                signed = t.signed
            if call.name == "lhist" and i > 0 and not isinstance(a, ast.Int | ast.Positional):
                self.error(f"lhist() argument {i + 1} must be an integer literal", a.span)
        if call.name == "sum":  # as bpftrace: a sum of unsigned values (uprobe args) is unsigned
            return replace(agg(Kind.SUM), signed=signed)
        return agg(Kind(call.name))

    def lhist_params(self, call: ast.Call) -> tuple[int, int, int] | None:
        if len(call.args) != 4:
            return None
        lo, hi, step = (self.const_int(a) for a in call.args[1:])
        if step <= 0:
            self.error("lhist() step must be >= 1", call.args[3].span)
            return None
        if hi <= lo:
            self.error("lhist() max must be greater than min", call.args[2].span)
            return None
        if (hi - lo) // step > 1000:
            self.error("lhist() too many buckets, max is 1000", call.span)
            return None
        return lo, hi, step

    def map_read(self, e: ast.Map) -> Type:
        key = self.map_key(e)
        decl = self.result.maps.get(e.name)
        if decl is None:
            self.error(f"Undefined map: @{e.name}", e.span)
            return INT64
        self.check_key(e, decl, key)
        if decl.value.kind in (Kind.STATS, Kind.HIST, Kind.LHIST):
            self.error(f"the value of a {decl.value.kind.value}() map cannot be read in a probe (only "
                       "count, sum, min, max and avg maps can)", e.span)
            return INT64
        if decl.value.kind in AGGREGATIONS:
            return int_type(8, decl.value.signed)
        return decl.value


def _show_key(t: Type | None) -> str:
    if t is None:
        return ""
    if t.kind is Kind.TUPLE:
        return ", ".join(str(e) for e in t.elems)
    return str(t)
