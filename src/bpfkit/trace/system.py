"""What the compiler needs to know about this system: tracepoint formats, wildcard expansion, probe lists.

The compiler is pure and asks through callbacks (`FormatLookup`, `Expander`); these implementations
read tracefs. Formats are cached per process since scripts often name the same tracepoint twice.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bpfkit._records import replace
from bpfkit.errors import BpfkitError, CompileError, KernelError
from bpfkit.kernel import tracefs
from bpfkit.lang import ast
from bpfkit.lang.diagnostics import error
from bpfkit.lang.semantic import KfuncInfo
from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format
from bpfkit.lang.types import UINT64, Type, int_type
from bpfkit.uapi.btf import IntEncoding

if TYPE_CHECKING:
    from bpfkit.kernel.attach.usdt import UsdtProbe
    from bpfkit.kernel.attach.usdt_args import UsdtArg

#: Software events: bpftrace's names and aliases -> (perf config, default sample period).
SOFTWARE_EVENTS: dict[str, tuple[int, int]] = {
    "cpu-clock": (0, 1_000_000), "cpu": (0, 1_000_000), "task-clock": (1, 1_000_000),
    "page-faults": (2, 100), "faults": (2, 100), "context-switches": (3, 1000), "cs": (3, 1000),
    "cpu-migrations": (4, 1), "minor-faults": (5, 100), "major-faults": (6, 1),
    "alignment-faults": (7, 1), "emulation-faults": (8, 1), "dummy": (9, 1), "bpf-output": (10, 1),
}
_WILD = "*?["


def _root() -> Path | None:
    try:
        return tracefs.tracefs(mount=False)
    except KernelError:
        return None


def tracefs_root() -> Path | None:
    """Where tracefs is mounted (None when it is not): the files the lookups below read."""
    return _root()


@functools.lru_cache(maxsize=512)
def tracepoint_format(category: str, name: str) -> TracepointFormat | None:
    """The format of tracepoint `category:name` from tracefs (None when it does not exist)."""
    root = _root()
    if root is None or "/" in category or "/" in name or category.startswith(".") or name.startswith("."):
        return None
    try:
        text = (root / "events" / category / name / "format").read_text()
    except OSError:
        return None
    try:
        return parse_format(text, category, name)
    except BpfkitError:
        return None


def tracepoints() -> Iterator[tuple[str, str]]:
    """Every (category, name) listed in tracefs available_events."""
    root = _root()
    if root is None:
        return
    try:
        text = (root / "available_events").read_text()
    except OSError:
        return
    for line in text.splitlines():
        cat, _, name = line.partition(":")
        if name:
            yield cat, name


def expand(ap: ast.AttachPoint) -> list[ast.AttachPoint]:
    """Concrete attach points for one with wildcards (tracepoints only); others unchanged."""
    if ap.provider != "tracepoint" or not any(c in ap.target + ap.func for c in _WILD):
        return [ap]
    found = [replace(ap, target=c, func=n, raw=f"tracepoint:{c}:{n}", span=ap.span)
             for c, n in sorted(set(tracepoints()))
             if fnmatch.fnmatchcase(c, ap.target) and fnmatch.fnmatchcase(n, ap.func)]
    if not found:
        raise CompileError([error(f"No probes to attach: no tracepoint matches {ap.raw}", ap.span)])
    return found


def list_probes(pattern: str | None = None, *, verbose: bool = False) -> list[str]:
    """Lines of ``bpftrace -l [PATTERN]``: tracepoints and software events (with -v, tracepoint args);
    functions and USDT probes of a binary for ``uprobe:BINARY:*`` and ``usdt:BINARY:*``."""
    from bpfkit.trace.listing import is_user_pattern, list_user_probes

    if pattern is not None and is_user_pattern(pattern):
        return list_user_probes(pattern)
    names = [f"tracepoint:{c}:{n}" for c, n in sorted(set(tracepoints()))]
    names += ["iter:task", "iter:task_file"]  # the iterators bpftrace lists (bpfkit runs any iter:NAME)
    names += [f"software:{e}:" for e in SOFTWARE_EVENTS]
    if pattern:
        if ":" in pattern:
            pat = pattern
        else:  # a bare name matches the last part of any probe, as in bpftrace
            pat = f"*:{pattern}" if any(c in pattern for c in _WILD) else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(n.rstrip(":"), pat)]
    if not verbose:
        return names
    out: list[str] = []
    for n in names:
        out.append(n)
        if n.startswith("tracepoint:"):
            _, cat, name = n.split(":", 2)
            fmt = tracepoint_format(cat, name)
            if fmt is not None:
                out += [f"    {f.declaration()}" for f in fmt.args]
    return out


@functools.lru_cache(maxsize=1)
def _vmlinux() -> Any:
    from bpfkit.btf import load_btf

    return load_btf("/sys/kernel/btf/vmlinux")


@functools.lru_cache(maxsize=256)
def kernel_symbol(name: str) -> int | None:
    """The address of kernel symbol `name` from /proc/kallsyms (None if hidden or unknown)."""
    from bpfkit.kernel.collection import kallsyms_addresses

    try:
        return kallsyms_addresses([name]).get(name)
    except BpfkitError:
        return None


def vmlinux_btf() -> Any:
    """The running kernel's BTF (`bpfkit.lang.btftypes.BtfLookup`), or None when it has none."""
    try:
        return _vmlinux()
    except (BpfkitError, OSError):
        return None


def _lang_type(spec: Any, type_id: int) -> Type:
    from bpfkit.btf.layout import resolve
    from bpfkit.btf.types import EnumBase, Int, Ptr

    t = resolve(spec, type_id)
    if isinstance(t, Int):
        return int_type(t.size if t.size in (1, 2, 4, 8) else 8, bool(t.encoding & IntEncoding.SIGNED))
    if isinstance(t, EnumBase):
        return int_type(t.size if t.size in (1, 2, 4, 8) else 8, t.signed)
    if isinstance(t, Ptr):  # typed, so kfunc arguments can be followed: args->file->f_path
        from bpfkit.lang.btftypes import lang_type

        return lang_type(spec, type_id) or UINT64
    return UINT64  # structs passed by value: their first 8 bytes (rare in kernel functions)


@functools.lru_cache(maxsize=256)
def kfunc_info(name: str) -> KfuncInfo | None:
    """The BTF id, parameters and return type of kernel function `name` (None if BTF lacks it)."""
    from bpfkit.btf.types import Func, FuncProto

    try:
        spec = _vmlinux()
        ids = spec.find_ids(name, Func)
    except (BpfkitError, OSError):
        return None
    if not ids:
        return None
    func = spec.type_by_id(ids[0])
    proto = spec.type_by_id(func.type_id)
    if not isinstance(proto, FuncProto):
        return None
    params = tuple((p.name, _lang_type(spec, p.type_id)) for p in proto.params)
    ret = _lang_type(spec, proto.return_type_id) if proto.return_type_id else None
    return KfuncInfo(ids[0], params, ret)


@functools.lru_cache(maxsize=64)
def usdt_sites(binary: str, provider: str, name: str) -> tuple[UsdtProbe, ...]:
    """The sites (`bpfkit.kernel.attach.usdt.UsdtProbe`) of USDT probe `provider:name` in `binary`; an
    empty `provider` matches any, as bpftrace's ``usdt:BINARY:NAME``, but must not be ambiguous."""
    from bpfkit.kernel.attach.usdt import find_usdt, read_usdt_probes

    if provider:
        return tuple(find_usdt(binary, provider, name))
    sites = [p for p in read_usdt_probes(binary) if p.name == name]
    providers = sorted({p.provider for p in sites})
    if not providers:
        return tuple(find_usdt(binary, "", name))  # raises, listing the probes there are
    if len(providers) > 1:
        raise CompileError(f"{binary}: USDT probe name {name!r} is ambiguous: providers "
                           f"{', '.join(providers)} have it (name one: usdt:{binary}:PROVIDER:{name})")
    return tuple(sites)


def usdt_args(ap: ast.AttachPoint) -> list[tuple[UsdtArg, ...]]:
    """The parsed arguments of each site of the usdt probe at `ap`, in the order `attach_usdt` attaches
    them, which gives each site its index as cookie (a `bpfkit.lang.semantic.UsdtLookup`)."""
    return [site.args for site in usdt_sites(ap.target, ap.ns, ap.func)]
