"""What a refusal tells the user (`Report`), and the kernel-style verifier log.

A report names the instruction (slot index and text), the source line when line info was given, the
path that led there (instruction slots and the branch decisions), the registers at the fault, the
reason in the kernel's words and one sentence on what to change. The log mimics the kernel's
`log_level` 1 and 2 output: `0: (b7) r0 = 0 ; R0_w=0`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from bpfkit._records import record
from bpfkit.errors import AsmError
from bpfkit.isa.disasm import format_insn
from bpfkit.vm.verifier.cfg import Op, Program
from bpfkit.vm.verifier.liveness import uses_defs
from bpfkit.vm.verifier.state import FP, NREGS, Edge, RegType, State

LineInfo = Mapping[int, tuple[str, int, str]]
"""Instruction slot -> (file, line, source text); a record covers the slots up to the next one."""

MAX_PATH = 256
"""Instruction slots kept at the end of a report's path."""


@record
class SourceLine:
    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text.strip()}"


@record
class Report:
    """Why bpfkit's verifier refused a program.

    `insn` is the slot index of the refused instruction (-1 when the whole program is at fault),
    `path` the slots executed on the way there (the last MAX_PATH of them; `path_omitted` earlier
    ones), `decisions` the branches taken on that path, `registers` the register state of the
    innermost frame at the fault (name -> kernel-style description), `stack` its initialised stack
    slots (offset -> description). `needs_btf` is set when the refusal is for want of the target
    kernel's BTF (verify(btf=None) and the program needs it): a caller that can supply one may.
    """

    insn: int
    message: str
    hint: str
    instruction: str = ""
    source: SourceLine | None = None
    path: tuple[int, ...] = ()
    path_omitted: int = 0
    decisions: tuple[Edge, ...] = ()
    registers: tuple[tuple[str, str], ...] = ()
    stack: tuple[tuple[int, str], ...] = ()
    frame: int = 0
    log: str = ""
    needs_btf: bool = False

    def __str__(self) -> str:
        where = f"insn {self.insn}" if self.insn >= 0 else "program"
        if self.instruction:
            where += f" ({self.instruction})"
        lines = [f"{where}: {self.message}"]
        if self.source is not None:
            lines.append(f"  source: {self.source}")
        if self.path:
            prefix = f"... ({self.path_omitted} earlier) " if self.path_omitted else ""
            lines.append(f"  path: {prefix}{' '.join(map(str, self.path))}")
        branches = [e for e in self.decisions if e.kind in ("taken", "not taken")]
        if branches:
            shown = branches[-8:]
            text = ", ".join(f"{e.src} {e.kind}" for e in shown)
            more = f" (and {len(branches) - len(shown)} before)" if len(branches) > len(shown) else ""
            lines.append(f"  branches: {text}{more}")
        if self.registers:
            frame = f" (frame {self.frame})" if self.frame else ""
            regs = " ".join(f"{n}={d}" for n, d in self.registers)
            lines.append(f"  registers{frame}: {regs}")
        if self.stack:
            lines.append("  stack: " + " ".join(f"fp{off}={d}" for off, d in self.stack))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def insn_text(op: Op) -> str:
    try:
        return format_insn(op.insn, helper_names=True)
    except AsmError:
        return repr(op.insn)


def source_line(line_info: LineInfo | None, insn: int) -> SourceLine | None:
    if not line_info or insn < 0:
        return None
    keys = sorted(line_info)
    i = bisect.bisect_right(keys, insn) - 1
    if i < 0:
        return None
    file, line, text = line_info[keys[i]]
    return SourceLine(file, line, text)


def expand_path(prog: Program, edges: list[Edge], end: int) -> tuple[list[int], int]:
    """The slots a path executed, from its edges; (last MAX_PATH slots, how many were dropped)."""
    out: list[int] = []
    dropped = 0
    cur = 0

    def walk(stop: int) -> None:
        nonlocal cur, dropped
        slot = cur
        while 0 <= slot < prog.nslots:
            out.append(slot)
            if slot == stop:
                break
            op = prog.ops[slot]
            if op is None:
                break
            slot = op.next
        if len(out) > 4 * MAX_PATH:
            dropped += len(out) - MAX_PATH
            del out[:-MAX_PATH]

    for edge in edges:
        walk(edge.src)
        cur = edge.dst
    if end >= 0:
        walk(end)
    if len(out) > MAX_PATH:
        dropped += len(out) - MAX_PATH
        del out[:-MAX_PATH]
    return out, dropped


def registers(st: State) -> tuple[tuple[str, str], ...]:
    regs = st.regs
    return tuple((f"R{i}", regs[i].describe()) for i in range(NREGS) if regs[i].type is not RegType.NOT_INIT)


def stack_slots(st: State) -> tuple[tuple[int, str], ...]:
    out = []
    for index in sorted(st.frame.stack):
        slot = st.frame.stack[index]
        out.append((-(index + 1) * 8, slot.describe()))
    return tuple(out)


def build_report(prog: Program, insn: int, message: str, hint: str, st: State | None,
                 line_info: LineInfo | None, log: str = "", *, needs_btf: bool = False) -> Report:
    op = prog.ops[insn] if 0 <= insn < prog.nslots else None
    path: list[int] = []
    dropped = 0
    edges: list[Edge] = []
    regs: tuple[tuple[str, str], ...] = ()
    stack: tuple[tuple[int, str], ...] = ()
    frame = 0
    if st is not None:
        edges = st.path.edges() if st.path is not None else []
        path, dropped = expand_path(prog, edges, insn)
        regs = registers(st)
        stack = stack_slots(st)
        frame = len(st.frames) - 1
    return Report(insn, message, hint, insn_text(op) if op is not None else "",
                  source_line(line_info, insn), tuple(path), dropped, tuple(edges), regs, stack, frame,
                  log, needs_btf)


class Log:
    """Collects kernel-style log lines while the exploration runs."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.lines: list[str] = []

    def insn(self, slot: int, op: Op, st: State | None) -> None:
        """Before an instruction (`st` None) its text; after it, at level 2, the registers it wrote."""
        if st is None:
            self.lines.append(f"{slot}: ({op.insn.opcode:02x}) {insn_text(op)}")
            return
        if self.level < 2:
            return
        _, written = uses_defs(op)
        regs = st.regs
        shown = [f"R{r}_w={regs[r].describe()}" for r in range(NREGS)
                 if r != FP and written >> r & 1 and regs[r].type is not RegType.NOT_INIT]
        if shown:
            self.lines[-1] = f"{self.lines[-1]:<40} ; {' '.join(shown)}"

    def branch(self, src: int, dst: int) -> None:
        self.lines.append(f"from {src} to {dst}:")

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")
