"""The runtime of the bpftrace-compatible language: load a compiled script, attach, stream, print maps."""
