"""Control-flow graphs of a loaded program's subprograms: reachable slots, block leaders and the
properties the JIT needs (may_goto, stack use). Shared by the compiler (`compile`) and the map value
analyses (`map_values`, `value_origins`), and built once per program (`function_graphs`)."""

from __future__ import annotations

from bpfkit.isa.opcodes import Kind
from bpfkit.vm.program import LoadedProgram, Step


class Function:
    """Reachable slots, block leaders and properties of one subprogram (its control-flow graph, which
    the compiler and the map value analyses share: `function_graphs`)."""

    def __init__(self, program: LoadedProgram, entry: int) -> None:
        self.entry = entry
        self.leaders: set[int] = {entry}
        self.reach: set[int] = set()
        self.may_goto = False
        self.uses_stack = False
        todo = [entry]
        while todo:
            slot = todo.pop()
            if slot in self.reach or slot >= program.nslots:
                continue
            self.reach.add(slot)
            step = program.steps[slot]
            assert step is not None
            insn = step.insn
            if insn.dst == 10 or insn.src == 10:
                self.uses_stack = True
            if step.kind is Kind.JCOND:
                self.may_goto = True
            succ = successors(step)
            if step.kind in (Kind.JUMP, Kind.JCOND, Kind.JA):
                self.leaders.update(succ)
            todo.extend(succ)
        self.order = sorted(self.reach)


def function_graphs(program: LoadedProgram) -> dict[int, Function]:
    """Entry slot -> `Function` of each subprogram of `program`, built once and kept in its `cache`
    (the graph depends only on the instructions, which never change)."""
    graphs = program.cache.get("jit_functions")
    if not isinstance(graphs, dict):
        graphs = program.cache["jit_functions"] = {entry: Function(program, entry)
                                                   for entry in program.functions}
    return graphs


def successors(step: Step) -> list[int]:
    """The slots control can reach right after `step` (none for EXIT; target first for jumps)."""
    kind = step.kind
    if kind is Kind.EXIT:
        return []
    if kind is Kind.JA:
        assert step.target is not None
        return [step.target]
    if kind in (Kind.JUMP, Kind.JCOND):
        assert step.target is not None
        return [step.target, step.next]
    return [step.next]
