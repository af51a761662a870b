"""`BPF`: a BCC-style Python API over bpfkit's compiler and kernel layers.

    b = BPF(text=r'''
        BPF_HASH(counts, u32, u64);
        TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
            counts.increment(bpf_get_current_pid_tgid() >> 32);
            return 0;
        }
    ''')
    for pid, n in b["counts"].items(): ...

Sources are libbpf-style C (``SEC()``, BTF maps) or BCC's macro dialect (`bpfkit.cc.bcc_source`).
The object is loaded whole at construction (`bpfkit.kernel.collection.Collection`); programs made by
``TRACEPOINT_PROBE``/``RAW_TRACEPOINT_PROBE`` are attached at once, as BCC does; the rest are attached by
the ``attach_*`` methods. Everything is detached and closed by `cleanup()` (or the ``with`` block).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bpfkit.cc import bcc_source
from bpfkit.cc.driver import compile as compile_c
from bpfkit.errors import BpfkitError
from bpfkit.uapi.enums import MapType, ProgType


class BPFError(BpfkitError):
    """Misuse of the `BPF` API: unknown program or map, wrong program type, nothing to poll."""


def _read_format(cat: str, event: str) -> str:
    from bpfkit.kernel import tracefs

    return (tracefs.tracefs() / "events" / cat / event / "format").read_text()


def _generated_header(text: str) -> Path:
    """`text` as a header file in the cache, named by its content (so it is part of the cache key)."""
    import hashlib

    from bpfkit.cc.cache import cache_dir, write_atomic

    data = text.encode()
    path = cache_dir() / "gen" / f"bcc-{hashlib.sha256(data).hexdigest()[:24]}.h"
    if not path.is_file():
        write_atomic(path, data)
    return path


class BPF:
    """A compiled and loaded BPF C program, in BCC's shape (see the module docstring)."""

    SOCKET_FILTER = ProgType.SOCKET_FILTER
    KPROBE = ProgType.KPROBE
    SCHED_CLS = ProgType.SCHED_CLS
    SCHED_ACT = ProgType.SCHED_ACT
    TRACEPOINT = ProgType.TRACEPOINT
    XDP = ProgType.XDP
    PERF_EVENT = ProgType.PERF_EVENT
    RAW_TRACEPOINT = ProgType.RAW_TRACEPOINT
    CGROUP_SKB = ProgType.CGROUP_SKB
    XDP_FLAGS_UPDATE_IF_NOEXIST = 1
    XDP_FLAGS_SKB_MODE = 2
    XDP_FLAGS_DRV_MODE = 4
    XDP_FLAGS_HW_MODE = 8

    def __init__(self, src_file: str | os.PathLike[str] | None = None, hdr_file: str = "",
                 text: str | None = None, cflags: Sequence[str] = (), debug: int = 0, *,
                 compiler: str | None = None, cache: bool = True) -> None:
        from bpfkit.kernel.collection import Collection

        self._links: dict[tuple[str, str], Any] = {}
        self._readers: list[Any] = []
        self._ringbuf: Any = None
        self._perf: dict[str, Any] = {}
        self._trace: Any = None
        self._ksyms: Any = None
        self._closed = False
        self._typed: set[str] = set()
        self._pending: list[Any] = []
        self.coll: Any = None
        if (text is None) == (src_file is None):
            raise BPFError("BPF(): give exactly one of text= or src_file=")
        name = "<text>"
        if src_file is not None:
            try:
                text = Path(src_file).read_text()
            except OSError as e:
                raise BPFError(f"BPF(src_file={os.fspath(src_file)!r}): {e.strerror}") from None
            name = os.fspath(src_file)
        assert text is not None
        flags = ["-include", hdr_file] if hdr_file else []
        self.bcc_dialect = bcc_source.is_bcc_dialect(text)
        source: str | Path = text
        if self.bcc_dialect:
            prepared = bcc_source.prepare(text, _read_format, name)
            source = prepared.body
            flags = ["-include", str(_generated_header(prepared.header)), *flags]
        elif src_file is not None:
            source = Path(src_file)
        if src_file is not None:
            flags += ["-I", str(Path(src_file).resolve().parent)]
        flags += list(cflags)
        self.spec = compile_c(source, cflags=flags, compiler=compiler, cache=cache, name=name)
        self.debug = debug
        self.coll = Collection.load(self.spec)
        try:
            self._auto_attach()
        except BaseException:
            self.cleanup()
            raise

    # ------------------------------------------------------------------------------------ programs

    def _auto_attach(self) -> None:
        """BCC attaches ``tracepoint__<cat>__<event>`` and ``raw_tracepoint__<event>`` at load."""
        from bpfkit.kernel.attach.auto import attach_program

        for name, pspec in self.spec.programs.items():
            if name.startswith(("tracepoint__", "raw_tracepoint__")):
                self._links[("auto", name)] = attach_program(self.coll.programs[name], pspec.section)

    def attach_all(self) -> list[str]:
        """Attach every program whose section names its target (libbpf's auto-attach); the names."""
        from bpfkit.kernel.attach.auto import attach_program, why_not_auto

        done = []
        for name, pspec in self.spec.programs.items():
            if ("auto", name) in self._links or why_not_auto(pspec.section) is not None:
                continue
            self._links[("auto", name)] = attach_program(self.coll.programs[name], pspec.section)
            done.append(name)
        return done

    def load_func(self, func_name: str | bytes, prog_type: int | None = None) -> Any:
        """The loaded program `func_name` (a `bpfkit.kernel.Program`; ``.fd``/``fileno()`` give its fd).

        Programs are loaded with the type their section gives; asking for another type raises `BPFError`
        (declare the section, e.g. ``SEC("xdp")``, or use the context type BCC infers from)."""
        name = func_name.decode() if isinstance(func_name, bytes) else func_name
        prog = self.coll.programs.get(name)
        if prog is None:
            known = ", ".join(sorted(self.coll.programs)) or "none"
            raise BPFError(f"no program {name!r} in the object; programs: {known} (a function becomes a "
                           "program with a SEC() or, in BCC style, a context-typed first parameter)")
        if prog_type is not None and int(prog.type) != int(prog_type):
            raise BPFError(f"program {name!r} was loaded as {ProgType(prog.type).name}, not "
                           f"{ProgType(prog_type).name}: give it a section of that type")
        return prog

    def _prog(self, fn_name: str | bytes, want: ProgType | None = None) -> Any:
        return self.load_func(fn_name, want)

    def _keep(self, kind: str, key: str, link: Any) -> Any:
        old = self._links.pop((kind, key), None)
        if old is not None:
            old.close()
        self._links[(kind, key)] = link
        return link

    def _detach(self, kind: str, key: str) -> None:
        link = self._links.pop((kind, key), None)
        if link is None:
            raise BPFError(f"nothing attached as {kind} {key!r}")
        link.close()

    # ------------------------------------------------------------------------------------ attaching

    def attach_tracepoint(self, tp: str | bytes = b"", tp_re: str = "", fn_name: str | bytes = b"") -> Any:
        """Attach `fn_name` to tracepoint ``category:event``."""
        from bpfkit.kernel.attach.tracepoint import attach_tracepoint, split_tracepoint

        if tp_re:
            raise BPFError("attach_tracepoint(tp_re=...) is not supported: name the tracepoint")
        spec = tp.decode() if isinstance(tp, bytes) else tp
        try:
            cat, event = split_tracepoint(spec)
        except ValueError as e:
            raise BPFError(f"attach_tracepoint: {e}") from None
        return self._keep("tracepoint", spec, attach_tracepoint(self._prog(fn_name), cat, event))

    def detach_tracepoint(self, tp: str | bytes = b"") -> None:
        self._detach("tracepoint", tp.decode() if isinstance(tp, bytes) else tp)

    def attach_raw_tracepoint(self, tp: str | bytes = b"", fn_name: str | bytes = b"") -> Any:
        """Attach `fn_name` to raw tracepoint `tp` (``sched_switch``)."""
        from bpfkit.kernel.attach.raw_tracepoint import attach_raw_tracepoint

        name = tp.decode() if isinstance(tp, bytes) else tp
        return self._keep("raw_tracepoint", name, attach_raw_tracepoint(self._prog(fn_name), name))

    def detach_raw_tracepoint(self, tp: str | bytes = b"") -> None:
        self._detach("raw_tracepoint", tp.decode() if isinstance(tp, bytes) else tp)

    def attach_kprobe(self, event: str | bytes = b"", event_off: int = 0, fn_name: str | bytes = b"",
                      event_re: str = "") -> Any:
        """Attach `fn_name` at kernel function `event` (raises `NotSupportedError` where the kernel has
        no kprobes)."""
        return self._kprobe(event, event_off, fn_name, event_re, retprobe=False)

    def attach_kretprobe(self, event: str | bytes = b"", fn_name: str | bytes = b"",
                         event_re: str = "") -> Any:
        return self._kprobe(event, 0, fn_name, event_re, retprobe=True)

    def _kprobe(self, event: str | bytes, off: int, fn_name: str | bytes, event_re: str, *,
                retprobe: bool) -> Any:
        from bpfkit.kernel.attach.kprobe import attach_kprobe

        if event_re:
            raise BPFError("attach_kprobe(event_re=...) is not supported: name the function")
        func = event.decode() if isinstance(event, bytes) else event
        prog = self._prog(fn_name)
        kind = "kretprobe" if retprobe else "kprobe"
        return self._keep(kind, func, attach_kprobe(prog, func, off, retprobe=retprobe))

    def attach_uprobe(self, name: str | bytes = b"", sym: str | bytes = b"", sym_re: str = "",
                      addr: int | None = None, fn_name: str | bytes = b"", pid: int = -1,
                      sym_off: int = 0) -> Any:
        """Attach `fn_name` at the entry of `sym` (or `addr`) in binary/library `name` (``"c"`` is libc),
        in process `pid` only when given."""
        return self._uprobe(name, sym, sym_re, addr, fn_name, pid, sym_off, retprobe=False)

    def attach_uretprobe(self, name: str | bytes = b"", sym: str | bytes = b"", sym_re: str = "",
                         addr: int | None = None, fn_name: str | bytes = b"", pid: int = -1) -> Any:
        return self._uprobe(name, sym, sym_re, addr, fn_name, pid, 0, retprobe=True)

    def _uprobe(self, name: str | bytes, sym: str | bytes, sym_re: str, addr: int | None,
                fn_name: str | bytes, pid: int, sym_off: int, *, retprobe: bool) -> Any:
        from bpfkit.kernel.attach.uprobe import attach_uprobe

        if sym_re:
            raise BPFError("attach_uprobe(sym_re=...) is not supported: name the symbol")
        binary = name.decode() if isinstance(name, bytes) else name
        if "/" not in binary and not binary.startswith("lib"):
            binary = "lib" + binary  # BCC's "c" means libc
        symbol = sym.decode() if isinstance(sym, bytes) else sym
        if symbol and sym_off:
            symbol = f"{symbol}+{sym_off:#x}"
        prog = self._prog(fn_name)
        link = attach_uprobe(prog, binary, symbol or None, address=addr if not symbol else None,
                             retprobe=retprobe, pid=pid if pid >= 0 else None)
        kind = "uretprobe" if retprobe else "uprobe"
        return self._keep(kind, f"{binary}:{symbol or addr}:{pid}", link)

    def detach_uprobe(self, name: str | bytes = b"", sym: str | bytes = b"", addr: int | None = None,
                      pid: int = -1) -> None:
        self._detach_probe("uprobe", name, sym, addr, pid)

    def detach_uretprobe(self, name: str | bytes = b"", sym: str | bytes = b"", addr: int | None = None,
                         pid: int = -1) -> None:
        self._detach_probe("uretprobe", name, sym, addr, pid)

    def _detach_probe(self, kind: str, name: str | bytes, sym: str | bytes, addr: int | None,
                      pid: int) -> None:
        binary = name.decode() if isinstance(name, bytes) else name
        if "/" not in binary and not binary.startswith("lib"):
            binary = "lib" + binary
        symbol = sym.decode() if isinstance(sym, bytes) else sym
        self._detach(kind, f"{binary}:{symbol or addr}:{pid}")

    def attach_perf_event(self, ev_type: int = -1, ev_config: int = -1, fn_name: str | bytes = b"",
                          sample_period: int = 0, sample_freq: int = 0, pid: int = -1, cpu: int = -1) -> Any:
        """Run `fn_name` on samples of perf event (`ev_type`, `ev_config`) on every CPU (or `cpu`)."""
        from bpfkit.kernel.attach.perf_event import attach_perf_event

        prog = self._prog(fn_name)
        link = attach_perf_event(prog, ev_type, ev_config, sample_period=sample_period,
                                 sample_freq=sample_freq, cpus=[cpu] if cpu >= 0 else None, pid=pid)
        return self._keep("perf_event", f"{ev_type}:{ev_config}:{pid}:{cpu}", link)

    def detach_perf_event(self, ev_type: int = -1, ev_config: int = -1, pid: int = -1, cpu: int = -1) -> None:
        self._detach("perf_event", f"{ev_type}:{ev_config}:{pid}:{cpu}")

    def attach_xdp(self, dev: str | bytes, fn: Any = None, flags: int = 0) -> Any:
        """Attach XDP program `fn` (from `load_func`, or its name) to interface `dev`;
        ``XDP_FLAGS_SKB_MODE``/``DRV_MODE``/``HW_MODE`` pick the mode."""
        from bpfkit.kernel.attach.xdp import attach_xdp

        prog = self._prog(fn, ProgType.XDP) if isinstance(fn, (str, bytes)) else fn
        if prog is None:
            raise BPFError("attach_xdp: give the program (fn=b.load_func(name, BPF.XDP))")
        device = dev.decode() if isinstance(dev, bytes) else dev
        mode = "generic" if flags & self.XDP_FLAGS_SKB_MODE else "driver" if flags & self.XDP_FLAGS_DRV_MODE \
            else "offload" if flags & self.XDP_FLAGS_HW_MODE else "auto"
        return self._keep("xdp", device, attach_xdp(prog, device, mode=mode))  # type: ignore[arg-type]

    def remove_xdp(self, dev: str | bytes, flags: int = 0) -> None:
        """Detach the XDP program this object attached to `dev`."""
        self._detach("xdp", dev.decode() if isinstance(dev, bytes) else dev)

    # ------------------------------------------------------------------------------------ maps

    def __getitem__(self, name: str | bytes) -> Any:
        """Map `name` as a `bpfkit.kernel.Map` (dict semantics), with keys and values decoded from the
        object's BTF: integers as ints, structures as dicts, per-CPU values as lists."""
        key = name.decode() if isinstance(name, bytes) else name
        m = self.coll.maps.get(key)
        if m is None:
            raise KeyError(f"no map {key!r} in the object; maps: {', '.join(sorted(self.coll.maps))}")
        if key not in self._typed:
            from bpfkit.cc.btfcodec import apply_btf_codecs

            apply_btf_codecs(m, self.spec.btf, self.spec.maps.get(key))
            self._typed.add(key)
        return m

    def get_table(self, name: str | bytes) -> Any:
        return self[name]

    def __contains__(self, name: object) -> bool:
        key = name.decode() if isinstance(name, bytes) else name
        return key in self.coll.maps

    def __iter__(self) -> Any:
        return iter(self.coll.maps)

    def event_decoder(self, type_name: str) -> Callable[[Any], Any]:
        """A function decoding an event record as the object's BTF type `type_name` (``struct event``
        or ``event``) into a dict, for ring/perf buffer callbacks."""
        from bpfkit.cc.btfcodec import decoder_for

        return decoder_for(self.spec.btf, type_name)

    # ------------------------------------------------------------------------------------ events

    def open_ring_buffer(self, name: str | bytes, fn: Callable[..., Any], ctx: Any = None) -> None:
        """Call ``fn(ctx, data, size)`` for each record of ring buffer map `name` (`data` is bytes)."""
        from bpfkit.kernel.ringbuf import RingBuffer

        m = self[name]
        if m.type != MapType.RINGBUF:
            raise BPFError(f"map {m.name!r} is not a ring buffer")

        def call(rec: memoryview) -> None:
            data = bytes(rec)
            fn(ctx, data, len(data))

        if self._ringbuf is None:
            self._ringbuf = RingBuffer()
        self._ringbuf.add(m, call)

    def ring_buffer_poll(self, timeout: int = -1) -> int:
        """Wait up to `timeout` ms (-1: forever) for ring buffer records and run their callbacks."""
        if self._ringbuf is None:
            raise BPFError("ring_buffer_poll: no ring buffer opened (open_ring_buffer first)")
        return int(self._ringbuf.poll(timeout))

    def ring_buffer_consume(self) -> int:
        if self._ringbuf is None:
            raise BPFError("ring_buffer_consume: no ring buffer opened (open_ring_buffer first)")
        return int(self._ringbuf.consume())

    def open_perf_buffer(self, name: str | bytes, callback: Callable[..., Any], page_cnt: int = 8,
                         lost_cb: Callable[[int], Any] | None = None) -> None:
        """Call ``callback(cpu, data, size)`` for each sample written to perf event array `name`."""
        from bpfkit.kernel.perfbuf import PerfBuffer

        m = self[name]

        def call(cpu: int, data: memoryview | bytes) -> None:
            raw = bytes(data)
            callback(cpu, raw, len(raw))

        lost = (lambda _cpu, count: lost_cb(count)) if lost_cb is not None else None
        self._perf[m.name] = PerfBuffer(m, call, lost_callback=lost, page_count=page_cnt)

    def perf_buffer_poll(self, timeout: int = -1) -> int:
        """Wait up to `timeout` ms for samples on every opened perf buffer and run the callbacks."""
        if not self._perf:
            raise BPFError("perf_buffer_poll: no perf buffer opened (open_perf_buffer first)")
        from bpfkit.kernel.epoll import Poller

        bufs = list(self._perf.values())
        if len(bufs) == 1:
            return int(bufs[0].poll(timeout))
        total = sum(int(b.consume()) for b in bufs)
        if total:
            return total
        poller = Poller()
        try:
            for i, b in enumerate(bufs):
                poller.register(b.fileno(), i)
            poller.wait(timeout)
        finally:
            poller.close()
        return sum(int(b.consume()) for b in bufs)

    def trace_open(self) -> Any:
        from bpfkit.kernel.trace_pipe import TracePipe

        if self._trace is None:
            self._trace = TracePipe()
        return self._trace

    def trace_fields(self, nonblocking: bool = False) -> tuple[Any, ...]:
        """The next bpf_trace_printk line as BCC gives it: (task, pid, cpu, flags, timestamp, message)."""
        pipe = self.trace_open()
        while True:
            self._pending.extend(pipe.read(0 if nonblocking else 1000))
            if self._pending:
                e = self._pending.pop(0)
                return (e.task.encode(), e.pid, e.cpu, e.flags.encode(), e.timestamp, e.message.encode())
            if nonblocking:
                return (None, None, None, None, None, None)

    def trace_print(self, fmt: str | None = None) -> None:
        """Print bpf_trace_printk lines until interrupted (`fmt` as BCC: ``{1} {5}`` fields)."""
        while True:
            fields = self.trace_fields()
            if fmt:
                vals = [f.decode() if isinstance(f, bytes) else f for f in fields]
                print(fmt.format("", *vals), flush=True)
            else:
                task, pid, cpu, flags, ts, msg = fields
                print(f"{(task or b'').decode():>16}-{pid} [{cpu:03d}] {(flags or b'').decode()} {ts:.6f}: "
                      f"{(msg or b'').decode()}", flush=True)

    # ------------------------------------------------------------------------------------ symbols

    @staticmethod
    def get_syscall_fnname(name: str | bytes) -> bytes:
        """The kernel function of syscall `name` on this architecture (``__x64_sys_openat``)."""
        from bpfkit.kernel.attach.kprobe import syscall_function

        return syscall_function(name.decode() if isinstance(name, bytes) else name).encode()

    def _kernel_symbols(self) -> Any:
        from bpfkit.kernel.ksyms import KernelSymbols

        if self._ksyms is None:
            self._ksyms = KernelSymbols.load()
        return self._ksyms

    def ksym(self, addr: int, show_module: bool = False, show_offset: bool = False) -> bytes:
        """The kernel symbol containing `addr` (``b"[unknown]"`` when none)."""
        s = self._kernel_symbols().resolve(addr)
        if s is None:
            return b"[unknown]"
        text = str(s.name) + (f"+{s.offset:#x}" if show_offset and s.offset else "")
        if show_module and s.module:
            text += f" [{s.module}]"
        return text.encode()

    def ksymname(self, name: str | bytes) -> int:
        """The address of kernel symbol `name` (-1 when unknown)."""
        try:
            return int(self._kernel_symbols().address(name.decode() if isinstance(name, bytes) else name))
        except KeyError:
            return -1

    @staticmethod
    def sym(addr: int, pid: int, show_module: bool = False, show_offset: bool = False) -> bytes:
        """The symbol of user address `addr` in process `pid` (``b"[unknown]"`` when none)."""
        from bpfkit.kernel.usyms import ProcessSymbols

        s = ProcessSymbols(pid).resolve(addr)
        if s is None:
            return b"[unknown]"
        text = str(s.name) + (f"+{s.offset:#x}" if show_offset and s.offset else "")
        if show_module and s.module:
            text += f" [{s.module}]"
        return text.encode()

    # ------------------------------------------------------------------------------------ lifetime

    def cleanup(self) -> None:
        """Detach everything, close readers, programs and maps (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for link in reversed(list(self._links.values())):
            link.close()
        self._links.clear()
        if self._ringbuf is not None:
            self._ringbuf.close()
        for pb in self._perf.values():
            pb.close()
        self._perf.clear()
        if self._trace is not None:
            self._trace.close()
        if self.coll is not None:
            self.coll.close()

    close = cleanup

    def __enter__(self) -> BPF:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn("BPF object was never cleaned up (use cleanup() or a with block)", ResourceWarning,
                          stacklevel=1)
            self.cleanup()


__all__ = ["BPF", "BPFError"]
