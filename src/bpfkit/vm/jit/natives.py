"""The helper calls the JIT emits natively (`Compiler.natives`), chosen per program and VM.

Ring buffer helpers (`native_ringbuf`) run natively in programs bpfkit's verifier accepted, since
native code trusts their record pointers; tail calls (`native_tailcall`) in any program, since they
only jump to code the prog array's table names. `JitOptions.native_helpers=False` turns all of it off
(every helper goes through the Python trampoline, for comparison).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit.uapi.enums import Helper
from bpfkit.vm import helpers
from bpfkit.vm.jit.compile import NativeHelper
from bpfkit.vm.program import LoadedProgram

if TYPE_CHECKING:
    from bpfkit.vm.jit.runner import JitOptions, JitRuntime


def native_helpers(loaded: LoadedProgram, runtime: JitRuntime, options: JitOptions,
                   keep: list[object]) -> dict[int, NativeHelper]:
    """Helper id -> native emitter for `loaded` compiled for `runtime`'s VM; objects the code points
    to are appended to `keep` (they must live as long as the code)."""
    if not options.native_helpers:
        return {}
    from bpfkit.vm.jit.fastcalls import fast_helpers
    from bpfkit.vm.jit.native_ringbuf import ringbuf_helpers
    from bpfkit.vm.jit.native_tailcall import tailcall_helpers

    out: dict[int, NativeHelper] = {}
    out.update(fast_helpers(loaded, runtime, keep))  # maps, ktime, prandom, cpu (`fastcalls`)
    events = dict(tailcall_helpers(loaded, runtime, keep))
    if options.verified and not options.unsafe:
        events.update(ringbuf_helpers(loaded, runtime, keep))
    own = {int(Helper.TAIL_CALL): helpers.tail_call, int(Helper.RINGBUF_RESERVE): helpers.ringbuf_reserve,
           int(Helper.RINGBUF_SUBMIT): helpers.ringbuf_submit,
           int(Helper.RINGBUF_DISCARD): helpers.ringbuf_discard,
           int(Helper.RINGBUF_OUTPUT): helpers.ringbuf_output}
    # A helper the user replaced keeps running in Python.
    out.update({hid: emit for hid, emit in events.items() if loaded.helpers.get(hid) is own.get(hid)})
    return out
