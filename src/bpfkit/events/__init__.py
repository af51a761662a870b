"""Pure decoders of event streams: ring buffer and perf buffer records, trace_pipe lines, and typed
decoding of record bytes (struct formats, ctypes, BTF). The kernel readers live in `bpfkit.kernel`
(`ringbuf`, `perfbuf`, `trace_pipe`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bpfkit._lazy import lazy_attributes

if TYPE_CHECKING:
    from bpfkit.events.decode import DecodeError, btf_decoder, ctypes_decoder, struct_decoder
    from bpfkit.events.trace_pipe import LostEvents, TraceEvent, TraceParseError, parse_line

# Imported on first use (PEP 562): the ring buffer reader imports `bpfkit.events.ringbuf` on the start-up
# path of `bpfkit trace`, and must not pull in the BTF decoder with it.
_LAZY = {
    "DecodeError": "bpfkit.events.decode",
    "btf_decoder": "bpfkit.events.decode",
    "ctypes_decoder": "bpfkit.events.decode",
    "struct_decoder": "bpfkit.events.decode",
    "LostEvents": "bpfkit.events.trace_pipe",
    "TraceEvent": "bpfkit.events.trace_pipe",
    "TraceParseError": "bpfkit.events.trace_pipe",
    "parse_line": "bpfkit.events.trace_pipe",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "DecodeError",
    "LostEvents",
    "TraceEvent",
    "TraceParseError",
    "btf_decoder",
    "ctypes_decoder",
    "parse_line",
    "struct_decoder",
]
