"""Run compiled scripts' BEGIN/END programs in the userspace VM and collect their output as text.

The same `EventPrinter` as the live runtime formats the events and maps, so a test sees what
``bpfkit trace`` would print for a script with only BEGIN/END probes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from bpfkit.isa.builder import Relocation
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.resources import EVENTS_MAP, CompiledScript
from bpfkit.lang.semantic import FormatLookup, KfuncLookup
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.trace.events import EventPrinter
from bpfkit.vm import Vm


def no_formats(category: str, name: str) -> TracepointFormat | None:
    return None


def run_script(text: str, params: tuple[str, ...] = (), formats: FormatLookup = no_formats,
               ctx: Callable[[str], bytes | None] | None = None, kfuncs: KfuncLookup | None = None) -> str:
    """Compile `text`, run BEGIN then every other probe once (with ctx from `ctx(provider)`), then END;
    return the output as ``bpfkit trace -q`` prints it."""
    script = compile_script(text, formats, options=Options(ncpus=2, params=params, kfuncs=kfuncs))
    return run_compiled(script, ctx)


def run_compiled(script: CompiledScript, ctx: Callable[[str], bytes | None] | None = None) -> str:
    out = io.StringIO()
    with Vm() as vm:
        maps = {EVENTS_MAP: vm.create_map(script.events_map)}
        for info in script.maps:
            maps[info.name] = vm.create_map(info.spec)
        for name, spec in script.aux_maps:
            maps[name] = vm.create_map(spec)
        printer = EventPrinter(script, maps, out, out)
        ring = maps[EVENTS_MAP]

        def drain() -> None:
            for record in ring.drain():  # type: ignore[attr-defined]
                printer.handle(record)

        order = ["BEGIN", *sorted({p.attach.provider for p in script.probes} - {"BEGIN", "END"}), "END"]
        for provider in order:
            if provider == "END":
                printer.exiting = False
            elif printer.exiting:
                continue
            for probe in script.probes:
                if probe.attach.provider != provider:
                    continue
                relocs = [Relocation(slot, name) for slot, name in probe.map_refs]
                prog = vm.load(probe.program, maps=maps, relocations=relocs)
                prog.test_run(ctx=ctx(provider) if ctx is not None else None)
                drain()
        out.write("\n\n")
        for info in sorted(script.maps, key=lambda i: i.name):
            printer.print_map(info.name)
    return out.getvalue()
