"""Attaching loaded programs to kernel hooks: one module per attach kind, all returning `AttachedLink`s
(or `LinkGroup`s of them) that own what they made and detach on close, garbage collection or exit.

    with attach_tracepoint(prog, "syscalls:sys_enter_getpid") as link: ...
    with attach_uprobe(prog, "libc", "malloc", pid=1234): ...
    with attach_all(collection): ...          # by section name, as libbpf's skeletons do

Submodules are imported on first use, so `import bpfkit.kernel.attach` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttachedLink": "base", "LinkGroup": "base", "close_all": "base", "live_links": "base",
    "attach_tracepoint": "tracepoint",
    "attach_raw_tracepoint": "raw_tracepoint", "attach_tp_btf": "raw_tracepoint",
    "attach_uprobe": "uprobe", "attach_uprobe_multi": "uprobe",
    "attach_usdt": "usdt", "read_usdt_probes": "usdt",
    "attach_perf_event": "perf_event",
    "attach_kprobe": "kprobe", "attach_kprobe_multi": "kprobe",
    "attach_xdp": "xdp", "attach_tcx": "tcx", "attach_cgroup": "cgroup",
    "attach_socket_filter": "socket_filter", "attach_reuseport": "socket_filter",
    "attach_netfilter": "netfilter", "attach_iter": "iter", "IterLink": "iter",
    "attach_tracing": "tracing", "attach_fentry": "tracing", "attach_fexit": "tracing",
    "attach_fmod_ret": "tracing", "attach_lsm": "tracing",
    "attach_all": "auto", "attach_program": "auto", "AutoAttachError": "auto",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
