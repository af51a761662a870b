"""Run compiled scripts' BEGIN/END programs in the userspace VM and collect their output as text.

The same `EventPrinter` as the live runtime formats the events and maps, so a test sees what
``bpfkit trace`` would print for a script with only BEGIN/END probes.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from bpfkit.isa.builder import Relocation
from bpfkit.lang.btftypes import BtfLookup
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.resources import EVENTS_MAP, CompiledScript
from bpfkit.lang.semantic import FormatLookup, KfuncLookup
from bpfkit.lang.tracepoint_format import TracepointFormat
from bpfkit.trace.events import EventPrinter
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import Vm


def no_formats(category: str, name: str) -> TracepointFormat | None:
    return None


def run_script(text: str, params: tuple[str, ...] = (), formats: FormatLookup = no_formats,
               ctx: Callable[[str], bytes | None] | None = None, kfuncs: KfuncLookup | None = None,
               btf: BtfLookup | None = None, setup: Callable[[Vm], None] | None = None) -> str:
    """Compile `text`, run BEGIN then every other probe once (with ctx from `ctx(provider)`), then END;
    return the output as ``bpfkit trace -q`` prints it. `setup(vm)` runs first (to map fake kernel
    memory and register helpers such as bpf_get_current_task)."""
    script = compile_script(text, formats, options=Options(ncpus=2, params=params, kfuncs=kfuncs, btf=btf))
    return run_compiled(script, ctx, setup)


def run_compiled(script: CompiledScript, ctx: Callable[[str], bytes | None] | None = None,
                 setup: Callable[[Vm], None] | None = None,
                 cpu_of: Callable[[str], int] | None = None) -> str:
    """Run `script` as `run_script` does; `cpu_of(provider)` picks the VM CPU each probe runs on."""
    out = io.StringIO()
    with Vm() as vm:
        if setup is not None:
            setup(vm)
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
                # bpfkit's verifier checks what it models; it has no BTF for TRACING (kfunc) contexts
                # nor for_each callbacks, which the kernel tests verify instead.
                modelled = probe.program.type is not ProgType.TRACING and not probe.btf
                prog = vm.load(probe.program, maps=maps, relocations=relocs, verify=modelled)
                if cpu_of is not None:
                    vm.cpu = cpu_of(provider)
                prog.test_run(ctx=ctx(provider) if ctx is not None else None)
                drain()
        out.write("\n\n")
        for info in sorted(script.maps, key=lambda i: i.name):
            printer.print_map(info.name)
    return out.getvalue()
