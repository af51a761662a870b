"""Run a compiled script: create maps, load and attach programs, stream events, print maps at exit.

Order of a run, as in bpftrace: create every map and load every program (a verifier refusal is reported
against the script line), print ``Attaching N probes...``, run BEGIN (BPF_PROG_TEST_RUN of its raw
tracepoint program), attach the other probes, then read the event ring buffer until exit(), Ctrl-C,
the ``-c`` child's exit or the ``-p`` process's exit. Then detach, run END, drain the remaining events
and print the maps. Everything opened is closed on every path.
"""

from __future__ import annotations

import re
import signal
import struct
import sys
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, TextIO

from bpfkit._records import record, replace
from bpfkit.errors import CompileError, KernelError, VerifierError
from bpfkit.kernel.attach.base import AttachedLink, LinkGroup
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.kernel.ringbuf import RingBuffer
from bpfkit.lang.resources import (
    EVENTS_MAP,
    KSTACK_MAP,
    USTACK_MAP,
    CompiledProbe,
    CompiledScript,
)
from bpfkit.trace.attach import attach_count, attach_probe
from bpfkit.trace.events import EventPrinter
from bpfkit.trace.stacks import StackResolver

if TYPE_CHECKING:
    from bpfkit.isa import Instruction
    from bpfkit.trace.child import HeldChild

_ID = struct.Struct("<Q")
_IMM = struct.Struct("<i")
_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW: the opcode of a map fd load
_INSN_LINE = r"^(\d+): \("
"""A verifier log line about an instruction (compiled by `re` on first use: start-up is a hot path)."""


@record
class RunOptions:
    """How to run: the bpftrace flags that matter at run time."""

    pid: int | None = None
    quiet: bool = False
    json: bool = False
    child: HeldChild | None = None
    """The -c command: released once the probes are attached; tracing ends when it exits."""


def patch_maps(probe: CompiledProbe, fds: dict[str, int]) -> bytes | tuple[Instruction, ...]:
    """The program's instructions with each map load's imm set to that map's fd.

    A program from the compiled-script cache holds bytecode (`bpfkit.trace.cache`): its lddw slots are
    patched in place, so running a cached script does not import the instruction set package.
    """
    code = probe.program.insns
    if isinstance(code, bytes):
        patched = bytearray(code)
        for at, name in probe.map_refs:
            if patched[at * 8] != _LD_IMM64 or (at + 2) * 8 > len(patched):
                raise TypeError(f"patch_maps: slot {at} of {probe.name} is not a 64-bit load")
            _IMM.pack_into(patched, at * 8 + 4, fds[name])
            _IMM.pack_into(patched, at * 8 + 12, 0)  # the fd's upper 32 bits
        return bytes(patched)
    from bpfkit.isa import Instruction

    insns: list[Instruction] = [i for i in code if isinstance(i, Instruction)]
    if len(insns) != len(code):
        raise TypeError("patch_maps: the program must hold Instruction objects or bytecode")
    index_of: dict[int, int] = {}
    slot = 0
    for i, insn in enumerate(insns):
        index_of[slot] = i
        slot += insn.width
    for at, name in probe.map_refs:
        i = index_of[at]
        insns[i] = replace(insns[i], imm=fds[name])
    return tuple(insns)


def verifier_error(probe: CompiledProbe, err: VerifierError) -> CompileError:
    """A diagnostic at the script code the verifier complained about (its last instruction line)."""
    from bpfkit.lang.diagnostics import Note, error

    lines = [ln for ln in err.log.splitlines() if ln.strip()]
    index = None
    for ln in lines:
        m = re.match(_INSN_LINE, ln)
        if m is not None:
            index = int(m[1])
    span = probe.span_at(index) if index is not None else None
    reason = [ln for ln in lines if not re.match(_INSN_LINE, ln) and not ln.startswith(
        ("processed ", "verification time", "stack depth", ";"))]
    why = reason[-1] if reason else "(no reason given)"
    where = f" at instruction {index}" if index is not None else ""
    return CompileError([error(f"the kernel verifier rejected {probe.name}{where}: {why}", span,
                               notes=[Note("verifier log (last lines):\n" + "\n".join(lines[-8:]))])])


class Tracer:
    """A loaded script: maps and programs; `run()` attaches and streams until the end."""

    def __init__(self, script: CompiledScript, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.script = script
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.maps: dict[str, Map] = {}
        self.programs: list[tuple[CompiledProbe, Program]] = []
        self.links: list[AttachedLink | LinkGroup] = []
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        self.maps[EVENTS_MAP] = Map.create(self.script.events_map)
        for info in self.script.maps:
            self.maps[info.name] = Map.create(info.spec)
        for name, aux in self.script.aux_maps:
            self.maps[name] = Map.create(aux)
        fds = {name: m.fileno() for name, m in self.maps.items()}
        for probe in self.script.probes:
            spec = replace(probe.program, insns=patch_maps(probe, fds))
            btf = None
            if probe.btf:
                from bpfkit.kernel.btf import BtfHandle  # only scripts with BTF pay for the BTF package

                btf = BtfHandle.load(probe.btf)
            try:
                prog = Program.load(spec, btf=btf)
            except VerifierError as e:
                raise verifier_error(probe, e) from None
            finally:
                if btf is not None:
                    btf.close()
            self.programs.append((probe, prog))

    def close(self) -> None:
        """Detach every probe and close every program and map (idempotent)."""
        for link in self.links:
            link.close()
        self.links.clear()
        for _, prog in self.programs:
            prog.close()
        self.programs.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------------
    def _run_special(self, provider: str) -> None:
        for probe, prog in self.programs:
            if probe.attach.provider == provider:
                prog.test_run(repeat=0)

    def run(self, options: RunOptions = RunOptions()) -> int:
        """Trace until the end; returns the exit status for the command line."""
        stacks = StackResolver(self.maps.get(KSTACK_MAP), self.maps.get(USTACK_MAP))
        printer = EventPrinter(self.script, self.maps, self.out, self.err, json=options.json, stacks=stacks)
        n = sum(attach_count(probe.attach) for probe, _ in self.programs)
        if not options.quiet:
            if options.json:
                import json

                self.out.write(json.dumps({"type": "attached_probes", "data": {"probes": n}}) + "\n")
            else:
                self.out.write(f"Attaching {n} probe{'s' if n != 1 else ''}...\n")
            self.out.flush()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            with RingBuffer(self.maps[EVENTS_MAP], printer.handle) as rb:
                self._run_special("BEGIN")
                rb.consume()
                iters = []
                pinned: list[AttachedLink] = []
                try:
                    for probe, prog in self.programs:
                        if probe.attach.provider not in ("BEGIN", "END") and not printer.exiting:
                            self.links.append(attach_probe(prog, probe.attach, options.pid))
                            if probe.attach.provider == "iter" and probe.attach.pin:
                                pinned.append(self._pin_iterator(self.links[-1], probe))
                            elif probe.attach.provider == "iter":
                                iters.append(self.links[-1])
                except BaseException:
                    for made in pinned:  # a run that fails to start leaves nothing on bpffs
                        made.unpin()
                    raise
                for made in pinned:  # said once every probe is in place (a failed start pins nothing)
                    self.out.write("".join(f"Program pinned to {path}\n" for path in made.pins))
                self.out.flush()
                if options.child is not None:
                    options.child.release()
                try:
                    if any(probe.attach.provider == "iter" for probe, _ in self.programs):
                        # as bpftrace: each iterator runs once (reading it runs it; a pinned one is read
                        # by whoever reads its pin), then the end
                        self._run_iterators(iters, rb)
                    else:
                        self._loop(rb, printer, options)
                except KeyboardInterrupt:
                    pass
                for link in self.links:
                    link.close()
                self.links.clear()
                rb.consume()
                printer.exiting = False
                self._run_special("END")
                rb.consume()
                self.out.write("\n\n")  # bpftrace prints these in json mode too
                for info in sorted(self.script.maps, key=lambda i: i.name):
                    printer.print_map(info.name)
                self.out.flush()
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0

    def _pin_iterator(self, link: AttachedLink | LinkGroup, probe: CompiledProbe) -> AttachedLink:
        """iter:NAME:PIN: pin the iterator link instead of running it (as bpftrace); reading the pin runs
        it. The pin outlives this process (the link closed at the end stays alive through it)."""
        assert isinstance(link, AttachedLink)
        path = iter_pin_path(probe.attach.pin)
        try:
            link.pin(path)
        except KernelError as e:
            raise _pin_error(probe, path, e.errno or 0, str(e)) from None
        return link

    def _run_iterators(self, links: list[AttachedLink | LinkGroup], rb: RingBuffer) -> None:
        """Run each iterator once. The programs print through the ring buffer (not the iterator's
        seq_file), so it is drained while a second thread reads the iterator (which runs it): a long
        walk does not overflow the buffer."""
        import threading

        from bpfkit.kernel.attach.iter import IterLink

        for link in links:
            assert isinstance(link, IterLink)
            failure: list[BaseException] = []

            def walk(it: IterLink = link, failure: list[BaseException] = failure) -> None:
                try:
                    it.read()
                except BaseException as e:  # handed to the main thread
                    failure.append(e)

            thread = threading.Thread(target=walk, name="bpfkit-iter", daemon=True)
            thread.start()
            while thread.is_alive():
                rb.poll(20)
            thread.join()
            rb.consume()
            if failure:
                raise failure[0]

    def _loop(self, rb: RingBuffer, printer: EventPrinter, options: RunOptions) -> None:
        while not printer.exiting:
            rb.poll(100)
            self.out.flush()
            if options.child is not None and options.child.poll() is not None:
                rb.consume()
                return
            if options.pid is not None and not _alive(options.pid):
                rb.consume()
                return


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def iter_pin_path(pin: str) -> str:
    """Where iter:NAME:PIN pins its link: PIN itself when absolute, else PIN on the bpf file system
    (/sys/fs/bpf/PIN, as bpftrace; mounted there first when missing)."""
    if pin.startswith("/"):
        return pin
    from bpfkit.kernel.bpffs import bpffs

    return f"{bpffs()}/{pin}"


def _pin_error(probe: CompiledProbe, path: str, err: int, detail: str) -> CompileError:
    """A caret error at the attach point for an iterator pin the kernel (or a check) refused."""
    import errno

    from bpfkit.lang.diagnostics import error

    why = {errno.EEXIST: "the path exists already: remove it or choose another",
           errno.ENOENT: "its directory does not exist",
           errno.EPERM: "the path is not on a bpf file system (pin under /sys/fs/bpf), or a name in it "
                        "contains '.'",
           errno.EACCES: "permission denied"}.get(err, detail)
    return CompileError([error(f"cannot pin iter probe at {path}: {why}", probe.attach.span)])


def _check_pin(probe: CompiledProbe) -> None:
    """Refuse, before anything is loaded, a pin path that exists or is not on a bpf file system."""
    import errno
    import os

    from bpfkit.kernel.bpffs import is_bpffs

    try:
        path = iter_pin_path(probe.attach.pin)
    except KernelError as e:  # no bpffs, and not root to mount one
        raise _pin_error(probe, probe.attach.pin, e.errno or 0, str(e)) from None
    parent = os.path.dirname(path) or "/"
    if os.path.lexists(path):
        raise _pin_error(probe, path, errno.EEXIST, "")
    if not os.path.isdir(parent):
        raise _pin_error(probe, path, errno.ENOENT, "")
    if not is_bpffs(parent):
        raise _pin_error(probe, path, 0, "the path is not on a bpf file system (pin under /sys/fs/bpf)")


def check_probes_supported(script: CompiledScript) -> None:
    """Refuse, before loading anything, probes this kernel cannot attach (kprobes here) and iterator
    pins that cannot be made, pointing at the attach point in the script."""
    pins: set[str] = set()
    for probe in script.probes:
        if probe.attach.provider == "iter" and probe.attach.pin:
            _check_pin(probe)
            path = iter_pin_path(probe.attach.pin)
            if path in pins:
                import errno

                raise _pin_error(probe, path, errno.EEXIST, "")  # another probe of the script pins there
            pins.add(path)
        # The feature modules are imported only for the probe kinds that need them (start-up cost).
        if probe.attach.provider in ("fentry", "fexit"):
            from bpfkit.kernel.features import probe_tracing_programs

            if not probe_tracing_programs():
                from bpfkit.lang.diagnostics import error

                msg = ("kfunc probes cannot be attached here: this kernel refuses BPF_PROG_TYPE_TRACING "
                       "(fentry/fexit) programs")
                raise CompileError([error(msg, probe.attach.span)])
        if probe.attach.provider == "hardware":
            from bpfkit.kernel.attach.perf_event import probe_hardware_events

            why = probe_hardware_events()
            if why is not None:
                from bpfkit.lang.diagnostics import error

                raise CompileError([error("hardware probes cannot be attached here: this machine's perf has "
                                          f"no hardware events (no PMU, as in most VMs): {why}",
                                          probe.attach.span)])
        if probe.attach.provider in ("kprobe", "kretprobe"):
            from bpfkit.kernel.attach.kprobe import probe_kprobes

            why = probe_kprobes()
            if why is not None:
                from bpfkit.lang.diagnostics import error

                raise CompileError([error(f"{probe.attach.provider} probes cannot be attached here: {why}",
                                          probe.attach.span)])
