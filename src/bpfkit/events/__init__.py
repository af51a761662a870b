"""Pure decoders of event streams: ring buffer and perf buffer records, trace_pipe lines, and typed
decoding of record bytes (struct formats, ctypes, BTF). The kernel readers live in `bpfkit.kernel`
(`ringbuf`, `perfbuf`, `trace_pipe`)."""

from bpfkit.events.decode import DecodeError, btf_decoder, ctypes_decoder, struct_decoder
from bpfkit.events.trace_pipe import LostEvents, TraceEvent, TraceParseError, parse_line

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
