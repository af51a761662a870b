"""`AttachedLink`: a program attached by bpfkit, owning everything the attachment made.

An attachment may be a BPF link fd (BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN), a perf event fd the
program was attached to (tracepoints, probes, perf events), or a hook with no fd at all (a socket
filter). `AttachedLink` owns all of them and releases them exactly once: on `close()`, at the end of a
`with` block, when garbage collected (warning ResourceWarning: the owner forgot), or at interpreter exit
(every live attachment is in a process-wide registry that an `atexit` hook empties), so a crashed or
interrupted script does not leave probes behind.
"""

from __future__ import annotations

import _thread
import atexit
import ctypes
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bpfkit.errors import KernelError, NotSupportedError
from bpfkit.kernel import objects
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.uapi.attr import LinkCreateAttr, LinkDetachAttr
from bpfkit.uapi.enums import AttachType, Cmd

if TYPE_CHECKING:
    from bpfkit.kernel.links import LinkInfo

Cleanup = Callable[[], None]


def fileno_of(obj: Any) -> int:
    """The fd number of a Program, Map, Fd, socket, or an int."""
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "fileno"):
        return int(obj.fileno())
    raise TypeError(f"expected an fd or an object with fileno(), got {type(obj).__name__}")


def syscalls_of(obj: Any) -> Syscalls:
    """The `Syscalls` a Program (or Fd) was made with, or the current ones."""
    fd = getattr(obj, "fd", obj)
    sys = getattr(fd, "syscalls", None)
    return sys if isinstance(sys, Syscalls) else current()


def program_label(program: Any) -> str:
    name = getattr(program, "name", "")
    return f"program {name!r}" if name else "program"


class _Registry:
    """The live attachments of this process, closed at exit (weak: garbage collection still works)."""

    def __init__(self) -> None:
        self._links: weakref.WeakSet[AttachedLink] = weakref.WeakSet()
        # threading.Lock is this function; importing `threading` for it alone costs start-up time.
        self._lock = _thread.allocate_lock()
        self._hooked = False

    def add(self, link: AttachedLink) -> None:
        with self._lock:
            self._links.add(link)
            if not self._hooked:
                atexit.register(self.close_all)
                self._hooked = True

    def discard(self, link: AttachedLink) -> None:
        with self._lock:
            self._links.discard(link)

    def live(self) -> list[AttachedLink]:
        with self._lock:
            return list(self._links)

    def close_all(self) -> None:
        """Close every live attachment (newest first), ignoring failures: called at exit."""
        for link in reversed(self.live()):
            try:
                link.close()
            except Exception:
                pass


registry = _Registry()


def live_links() -> list[AttachedLink]:
    """The attachments this process holds open (what `close_all` would close)."""
    return registry.live()


def close_all() -> None:
    """Close every attachment this process holds (also run automatically at interpreter exit)."""
    registry.close_all()


class AttachedLink:
    """A program attached to a hook. `link` is the BPF link fd when the kernel made one; `perf` the perf
    event fd behind tracepoint, probe and perf event attachments; `cleanups` undo the rest (a socket
    filter's setsockopt), run in reverse order on close.

    `kind` names the attach kind (``tracepoint``, ``xdp``...), `target` what it is attached to
    (``syscalls:sys_enter_getpid``, ``ifindex 7``).
    """

    unclosed: int = 0
    """How many attachments were garbage collected while still attached (tests check it stays put)."""

    def __init__(self, kind: str, target: str, *, link: Fd | None = None, perf: Iterable[Fd] = (),
                 cleanups: Iterable[Cleanup] = (), program: Any = None) -> None:
        self.kind = kind
        self.target = target
        self._link = link
        self._perf = list(perf)
        self._cleanups = list(cleanups)
        self._closed = False
        self._pins: list[str] = []
        self.program_name: str = getattr(program, "name", "") or ""
        registry.add(self)

    # --- ownership -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def link_fd(self) -> Fd | None:
        """The BPF link fd (None for attachments the kernel made no link for)."""
        return self._link

    @property
    def perf_fds(self) -> tuple[Fd, ...]:
        """The perf event fds this attachment opened."""
        return tuple(self._perf)

    def fileno(self) -> int:
        """The link fd number (or the first perf event fd when there is no link)."""
        if self._link is not None:
            return self._link.fileno()
        if self._perf:
            return self._perf[0].fileno()
        raise KernelError(f"{self.kind} attachment", 9, "it has no file descriptor")  # EBADF

    def close(self) -> None:
        """Detach: close the link, then the perf events, then run the cleanups; later calls do nothing.

        Every step runs even if an earlier one fails; the first failure is raised at the end.
        """
        if self._closed:
            return
        self._closed = True
        registry.discard(self)
        first: BaseException | None = None
        steps: list[Cleanup] = []
        if self._link is not None:
            steps.append(self._link.close)
        steps.extend(fd.close for fd in reversed(self._perf))
        steps.extend(reversed(self._cleanups))
        for step in steps:
            try:
                step()
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    def __enter__(self) -> AttachedLink:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        AttachedLink.unclosed += 1
        try:
            warnings.warn(f"{self!r} was never closed (detaching it now)", ResourceWarning, stacklevel=2,
                          source=self)
        except Exception:
            pass
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "attached"
        prog = f" {self.program_name!r}" if self.program_name else ""
        return f"<AttachedLink {self.kind}{prog} -> {self.target} ({state})>"

    # --- the link ------------------------------------------------------------------------------------

    def _require_link(self, what: str) -> Fd:
        if self._link is None:
            raise NotSupportedError(f"{what} of a {self.kind} attachment", None,
                                    detail="it was attached without a BPF link")
        return self._link

    def info(self) -> LinkInfo:
        """The kernel's view of the link (struct bpf_link_info). Minimum kernel: 5.8."""
        from bpfkit.kernel.links import read_info  # its decoders are not needed to attach (start-up)

        return read_info(self._require_link("info"))

    @property
    def id(self) -> int:
        """The link's kernel id."""
        return self.info().id

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link at `path` on a bpf file system: it then outlives this object and the process
        (until `unpin()` or the file is removed). Minimum kernel: 5.7."""
        objects.pin(self._require_link("pin"), path)
        self._pins.append(os.fsdecode(path))

    def unpin(self) -> None:
        """Remove the pins `pin` made (those still there)."""
        while self._pins:
            path = self._pins.pop()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @property
    def pins(self) -> tuple[str, ...]:
        return tuple(self._pins)

    def detach(self) -> None:
        """Cut the link from its hook now (BPF_LINK_DETACH), even if pinned or held elsewhere, then close.
        Minimum kernel: 5.9."""
        fd = self._require_link("detach")
        attr = LinkDetachAttr(link_fd=fd.fileno())
        try:
            fd.syscalls.bpf(Cmd.LINK_DETACH, attr)
        except KernelError as e:
            raise bpf_error(Cmd.LINK_DETACH, e.errno or 0, attr, f"{self.kind} link") from None
        self.close()

    def update(self, program: Any, *, old_program: Any = None) -> None:
        """Run `program` instead of the current one, atomically (BPF_LINK_UPDATE); with `old_program`,
        only if that one is still attached (BPF_F_REPLACE). Minimum kernel: 5.7."""
        fd = self._require_link("update")
        from bpfkit.uapi.attr import LinkUpdateAttr  # a lazy layout (uapi._attr_lazy): start-up is a hot path

        attr = LinkUpdateAttr(link_fd=fd.fileno(), new_prog_fd=fileno_of(program))
        if old_program is not None:
            from bpfkit.uapi.flags import AttachFlags  # flag classes cost start-up; few links need it

            attr.flags = AttachFlags.REPLACE
            attr.old_prog_fd = fileno_of(old_program)
        try:
            fd.syscalls.bpf(Cmd.LINK_UPDATE, attr)
        except KernelError as e:
            raise bpf_error(Cmd.LINK_UPDATE, e.errno or 0, attr, f"{self.kind} link") from None
        self.program_name = getattr(program, "name", "") or ""


class LinkGroup:
    """Several attachments made together (a perf event on every CPU, `attach_all`), closed together."""

    def __init__(self, links: Iterable[AttachedLink] = ()) -> None:
        self.links: list[AttachedLink] = list(links)

    def add(self, link: AttachedLink) -> AttachedLink:
        self.links.append(link)
        return link

    def __iter__(self) -> Iterator[AttachedLink]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __getitem__(self, index: int) -> AttachedLink:
        return self.links[index]

    @property
    def closed(self) -> bool:
        return all(link.closed for link in self.links)

    def close(self) -> None:
        """Close every attachment (newest first); every one is closed even if one fails."""
        first: BaseException | None = None
        for link in reversed(self.links):
            try:
                link.close()
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    def __enter__(self) -> LinkGroup:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LinkGroup of {len(self.links)}>"


def link_create(program: Any, attach_type: AttachType, *, target_fd: int = 0, flags: int = 0,
                fill: Callable[[LinkCreateAttr], None] | None = None,
                keep: Iterable[object] = (), what: str = "") -> Fd:
    """BPF_LINK_CREATE for `program` at `target_fd` with `attach_type`; `fill` sets the attach type's
    union fields (pointing into buffers listed in `keep`, alive until the call returns).

    Returns the link fd; failures name the program, the attach type and `what` it was attached to.
    """
    sys = syscalls_of(program)
    attr = LinkCreateAttr(prog_fd=fileno_of(program), target_fd=target_fd, attach_type=attach_type,
                          flags=flags)
    if fill is not None:
        fill(attr)
    held = list(keep)
    try:
        fd = sys.bpf(Cmd.LINK_CREATE, attr)
    except KernelError as e:
        where = f"{program_label(program)} as {attach_type.c_name}" + (f" to {what}" if what else "")
        raise bpf_error(Cmd.LINK_CREATE, e.errno or 0, attr, where) from None
    finally:
        del held
    return Fd(fd, f"{attach_type.name.lower()} link" + (f" ({what})" if what else ""), sys)


def ifindex_of(interface: int | str) -> int:
    """The ifindex of network interface `interface` (a name in this network namespace, or an index)."""
    if isinstance(interface, int):
        if interface <= 0:
            raise ValueError(f"invalid ifindex {interface}")
        return interface
    import socket

    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise KernelError(f"if_nametoindex({interface})", 19,  # ENODEV
                          f"no network interface {interface!r} in this network namespace") from None


def c_buffer(data: bytes) -> tuple[ctypes.Array[ctypes.c_char], int]:
    """A NUL-terminated C copy of `data` and its address."""
    buf = ctypes.create_string_buffer(data)
    return buf, ctypes.addressof(buf)
