"""The base of every syntax tree node and the attach point of a probe (re-exported by `bpfkit.lang.ast`).

They have a module of their own because a compiled script (`bpfkit.lang.resources.CompiledProbe`) keeps
its attach points: running a cached script (`bpfkit.trace.cache`) needs these two classes, not the ~40
others of the tree, whose creation is a sizeable share of start-up.
"""

from __future__ import annotations

from bpfkit._records import field, record
from bpfkit.lang.source import NOWHERE, Span


@record
class Node:
    """Base of every node."""

    span: Span = field(default=NOWHERE, kw_only=True, compare=False, repr=False)



@record
class AttachPoint(Node):
    """One attach point of a probe, split by provider.

    `provider` is the canonical provider name (``k`` becomes ``kprobe``); `raw` is the text as written.
    The meaning of the other fields depends on the provider:

    - kprobe/kretprobe, kfunc/kretfunc (fentry/fexit), rawtracepoint: `target` module (may be empty),
      `func`, `offset` (``vfs_read+16``).
    - uprobe/uretprobe: `target` binary, `func` or `address`, `offset`, `lang` (``cpp``).
    - usdt: `target` binary, `ns` provider (may be empty), `func` probe name.
    - tracepoint: `target` category, `func` event.
    - profile/interval: `unit` (``hz``, ``s``, ``ms``, ``us``, ``ns``) and `freq`.
    - software/hardware: `target` event, `freq` the optional count.
    - iter: `target` iterator, `pin` path.
    - watchpoint/asyncwatchpoint: `address` or `func`+``argN`` in `target`, `length`, `mode`.
    - BEGIN/END: nothing.
    """

    provider: str
    raw: str
    target: str = ""
    func: str = ""
    ns: str = ""
    lang: str = ""
    offset: int | None = None
    address: int | None = None
    unit: str = ""
    freq: int | None = None
    pin: str = ""
    length: int | None = None
    mode: str = ""
